"""The consumer kit: durable pull consumers with exactly-once effects, per-contract order, parking.

One in-order loop per partition. Each message: decode (upcast to the latest version), then,
unless the contract has parked messages, apply the handler and record the position in one
transaction, and ack after the commit (docs/adr/0004-consumers-exactly-once.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
import jsonschema
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge

from smartid_events.envelope import (
    CloudEvent,
    parse_event_type,
    partition_token,
    stream_name,
    subjects_of_partition,
)
from smartid_events.parked import ParkedMessage, ParkedStore
from smartid_events.registry import REGISTRY, EventSpec, Registry, UnknownEventTypeError
from smartid_events.relay import connect_nats
from smartid_events.tracking import Handler, Tracker

log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "smartid_consumer_lag", "Messages in the stream not yet delivered", ["consumer", "partition"]
)
CONSUMER_HANDLED = Counter("smartid_consumer_handled_total", "Events applied", ["consumer"])
CONSUMER_DUPLICATES = Counter(
    "smartid_consumer_duplicates_total", "Redeliveries found already handled", ["consumer"]
)
CONSUMER_PARKED = Counter("smartid_consumer_parked_total", "Messages parked", ["consumer"])
CONSUMER_PARKED_NOW = Gauge("smartid_consumer_parked_messages", "Messages parked now", ["consumer"])

Ctx = TypeVar("Ctx")

# Failures of the infrastructure rather than of the message: retried until they pass.
OUTAGES = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, nats.errors.Error)

# Crash points for fault tests: the hook is called with one of these names.
AFTER_COMMIT = "after_commit"


class UndecodableError(ValueError):
    """A message that can never be handled as it is: not a valid event of a known shape."""


def decode(raw: bytes, registry: Registry, *, validate: bool = True) -> CloudEvent:
    """Parse a CloudEvent and bring its data up to the latest registered version."""
    try:
        event = CloudEvent.from_json(raw)
    except Exception as e:
        raise UndecodableError(f"not a CloudEvent: {e!r}") from None
    try:
        service, name, _ = parse_event_type(event.type)
    except ValueError as e:
        raise UndecodableError(str(e)) from None
    if not registry.knows(service, name):
        return event  # not in our published language: the handler decides whether it cares
    try:
        latest_type, data = registry.upcast(event.type, event.data)
    except UnknownEventTypeError:
        raise UndecodableError(f"unknown version: {event.type}") from None
    upcast = CloudEvent(**{**event.__dict__, "type": latest_type, "data": data})
    if validate:
        try:
            validate_data(registry, upcast)
        except Exception as e:
            raise UndecodableError(f"does not fit {latest_type}: {e}") from None
    return upcast


# Per registry, per event type: the spec a validator was built for, and the validator.
_VALIDATORS: weakref.WeakKeyDictionary[Registry, dict[str, tuple[EventSpec, Any]]] = (
    weakref.WeakKeyDictionary()
)


def validate_data(registry: Registry, event: CloudEvent) -> None:
    """`registry.validate(event)` with the schema checked and its validator built once per type.

    `jsonschema.validate` checks the schema against its meta-schema and builds a validator on
    every call: measured at half of the consumer's CPU per message. Same errors raised.
    """
    spec = registry.get(event.type)
    validators = _VALIDATORS.setdefault(registry, {})
    cached = validators.get(event.type)
    if cached is None or cached[0] is not spec:
        schema = spec.full_schema()
        cls: Any = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        cached = validators[event.type] = (spec, cls(schema))
    error = jsonschema.exceptions.best_match(cached[1].iter_errors(event.data))
    if error is not None:
        raise error


def contract_of_subject(subject: str) -> str:
    """`smartid.<service>.pNN.<contract_id>.<Event>` → contract id, even for undecodable bodies."""
    parts = subject.split(".")
    return parts[3] if len(parts) >= 5 else subject


@dataclass
class Consumer(Generic[Ctx]):
    """A durable consumer of one upstream service's stream, over the given partitions.

    `name` is the durable name (`billing-contract-events`); each partition gets the durable
    `<name>-pNN` and the tracking name `<name>:pNN`, since positions grow only per partition.
    """

    name: str
    upstream: str
    partitions: Iterable[int]
    handler: Handler[Ctx]
    tracker: Tracker[Ctx]
    parked: ParkedStore
    nats_url: str
    registry: Registry = field(default_factory=lambda: REGISTRY)
    max_attempts: int = 5
    retry_delays_s: tuple[float, ...] = (0.1, 0.5, 2.0, 5.0)
    ack_wait_s: float = 30.0
    max_deliver: int = 20
    fetch_batch: int = 50
    fetch_timeout_s: float = 1.0
    validate: bool = True
    crash_hook: Callable[[str], None] | None = None
    nats_options: dict[str, Any] = field(default_factory=dict)
    # The service's own connect (`natsconn.connect`), else `connect_nats(nats_url, ...)`.
    nats_connect: Callable[[], Awaitable[NatsClient]] | None = None
    # Contracts that may have parked messages of this consumer, loaded by `run`: only the
    # process owning a contract's partition parks its messages, so a contract not in here has
    # none and its messages skip the database's check (a round trip per message). Replays
    # (any process) only release, which the check of a contract in here finds. None: always
    # ask the database.
    _maybe_parked: set[str] | None = field(default=None, init=False, repr=False)

    def tracking_name(self, partition: int) -> str:
        return f"{self.name}:{partition_token(partition)}"

    def durable_name(self, partition: int) -> str:
        return f"{self.name}-{partition_token(partition)}"

    def consumer_config(self, partition: int) -> ConsumerConfig:
        # Back-off for redeliveries after a crash; handler failures are retried in process.
        backoff = [self.ack_wait_s * 2**i for i in range(min(self.max_deliver, 6))]
        return ConsumerConfig(
            durable_name=self.durable_name(partition),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            backoff=backoff,
            filter_subject=subjects_of_partition(self.upstream, partition),
            max_ack_pending=self.fetch_batch * 4,
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume every partition until `stop` is set."""
        stop = stop or asyncio.Event()
        await self.parked.setup()
        self._maybe_parked = set(await self.parked.contracts(self.name))
        CONSUMER_PARKED_NOW.labels(self.name).set(await self.parked.count(self.name))
        if self.nats_connect is not None:
            nc = await self.nats_connect()
        else:
            nc = await connect_nats(self.nats_url, stop, **self.nats_options)
        try:
            js = nc.jetstream()
            await asyncio.gather(*(self._partition_loop(js, p, stop) for p in self.partitions))
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _subscribe(self, js: JetStreamContext, partition: int) -> Any:
        """Bind the partition's durable consumer, first rewinding it to its ack floor if a
        previous run left messages unacked: JetStream would otherwise deliver newer messages
        before redelivering those, and the newer positions would make them look handled."""
        stream, durable = stream_name(self.upstream), self.durable_name(partition)
        config = self.consumer_config(partition)
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            info = None
        if info is not None and info.num_ack_pending:
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
            await js.delete_consumer(stream, durable)
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = int(floor or 0) + 1
        return await js.pull_subscribe(
            subjects_of_partition(self.upstream, partition),
            durable=durable,
            stream=stream,
            config=config,
        )

    async def _partition_loop(
        self, js: JetStreamContext, partition: int, stop: asyncio.Event
    ) -> None:
        sub: Any = None
        backlog = True
        waited = 0.0
        while not stop.is_set():
            try:
                if sub is None:
                    sub = await self._subscribe(js, partition)
                # nats-py's waiting pull returns only when the whole batch is there or the
                # request expires, so a trickle of messages would wait up to `fetch_timeout_s`:
                # ask for a batch only while messages are known to be pending.
                size = self.fetch_batch if backlog else 1
                msgs = await sub.fetch(size, timeout=self.fetch_timeout_s)
                for msg in msgs:
                    if stop.is_set():
                        break  # unacked messages come back, in order, on the next subscribe
                    await self.handle(msg, partition)
                    pending = msg.metadata.num_pending
                    backlog = pending > 0
                    CONSUMER_LAG.labels(self.name, partition_token(partition)).set(pending)
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # nothing to fetch yet (or a subscribe that timed out: tried again)
            except NotFoundError:
                # The upstream stream does not exist yet (its relay has not started): wait
                # with back-off, saying so once rather than twice a second.
                if waited == 0:
                    upstream = stream_name(self.upstream)
                    log.info("%s p%02d: waiting for stream %s", self.name, partition, upstream)
                sub = None
                waited = min(waited * 2 or 0.5, 5.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), waited)
            except (nats.errors.Error, OSError, asyncpg.PostgresError) as e:
                # Whatever was not acked is delivered again after the rewind on re-subscribe.
                log.warning("%s p%02d: %r; re-subscribing", self.name, partition, e)
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                sub = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
            else:
                waited = 0.0

    async def handle(self, msg: Msg, partition: int) -> None:
        """Handle one message in order: apply once, or park it; ack in every case but a crash."""
        meta = msg.metadata
        stream_seq = int(meta.sequence.stream)
        contract_id = contract_of_subject(msg.subject)
        if await self._has_parked(contract_id):
            await self._park(
                msg, partition, contract_id, stream_seq, "held behind a parked message"
            )
            return
        if meta.num_delivered >= self.max_deliver:
            await self._park(
                msg,
                partition,
                contract_id,
                stream_seq,
                f"delivered {meta.num_delivered} times without an ack",
            )
            return
        try:
            event = decode(msg.data, self.registry, validate=self.validate)
        except UndecodableError as e:
            await self._park(msg, partition, contract_id, stream_seq, str(e))
            return
        error = await self._apply_with_retries(msg, event, self.tracking_name(partition))
        if error is not None:
            await self._park(msg, partition, contract_id, stream_seq, error)
            return
        if self.crash_hook is not None:
            self.crash_hook(AFTER_COMMIT)
        await msg.ack()

    async def _has_parked(self, contract_id: str) -> bool:
        maybe = self._maybe_parked
        if maybe is not None and contract_id not in maybe:
            return False
        if await self.parked.first_parked_seq(self.name, contract_id) is not None:
            return True
        if maybe is not None:
            maybe.discard(contract_id)  # released by a replay
        return False

    async def _apply_with_retries(
        self, msg: Msg | None, event: CloudEvent, name: str
    ) -> str | None:
        """Apply with in-process retries (keeping the order); the last failure's reason or None."""
        reason = ""
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                applied = await self.tracker.apply(name, event.position, event, self.handler)
            except Exception as e:  # the handler's failure is the message's, parked with it
                last, reason = e, f"{type(e).__name__}: {e}"
                log.warning(
                    "%s: %s failed (attempt %d): %s", self.name, event.id, attempt + 1, reason
                )
                if attempt + 1 < self.max_attempts:
                    delay = self.retry_delays_s[min(attempt, len(self.retry_delays_s) - 1)]
                    if msg is not None:
                        await msg.in_progress()
                    await asyncio.sleep(delay)
                continue
            (CONSUMER_HANDLED if applied else CONSUMER_DUPLICATES).labels(self.name).inc()
            return None
        if isinstance(last, OUTAGES):
            raise last  # our own database or bus is away: redeliver later, never park
        return reason

    async def _park(
        self, msg: Msg, partition: int, contract_id: str, stream_seq: int, reason: str
    ) -> None:
        await self.parked.park(
            ParkedMessage(
                consumer=self.name,
                partition=partition,
                contract_id=contract_id,
                stream_seq=stream_seq,
                subject=msg.subject,
                headers=dict(msg.headers or {}),
                body=msg.data,
                reason=reason,
            )
        )
        if self._maybe_parked is not None:
            self._maybe_parked.add(contract_id)
        log.error("%s parked %s (seq %d): %s", self.name, msg.subject, stream_seq, reason)
        CONSUMER_PARKED.labels(self.name).inc()
        CONSUMER_PARKED_NOW.labels(self.name).set(await self.parked.count(self.name))
        await msg.ack()

    async def replay_parked(
        self, contract_id: str | None = None, limit: int = 10_000
    ) -> ReplayResult:
        """Apply parked messages again, oldest first per contract, stopping a contract at its
        first failure. Each replayed message has its own tracking name, so it applies once."""
        await self.parked.setup()
        result = ReplayResult()
        contracts = [contract_id] if contract_id else await self.parked.contracts(self.name)
        for cid in contracts:
            for _ in range(limit):
                parked = await self.parked.oldest_of_contract(self.name, cid)
                if parked is None:
                    break
                try:
                    event = decode(parked.body, self.registry, validate=self.validate)
                except UndecodableError as e:
                    await self.parked.set_reason(self.name, parked.stream_seq, str(e))
                    result.still_parked += 1
                    break
                name = f"{self.tracking_name(parked.partition)}/parked/{parked.stream_seq}"
                error = await self._apply_with_retries(None, event, name)
                if error is not None:
                    await self.parked.set_reason(self.name, parked.stream_seq, error)
                    result.still_parked += 1
                    break
                await self.parked.release(self.name, parked.stream_seq)
                result.replayed += 1
        CONSUMER_PARKED_NOW.labels(self.name).set(await self.parked.count(self.name))
        return result


@dataclass
class ReplayResult:
    replayed: int = 0
    still_parked: int = 0
