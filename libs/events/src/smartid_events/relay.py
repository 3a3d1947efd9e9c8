"""The outbox relay: publishes a service's event log to its JetStream stream, in order, once.

One active relay per service holds a PostgreSQL advisory lock; it reads the notification log
after its position, publishes a bounded window of messages without waiting for each ack, and
records the position only after the acks (docs/adr/0003-relay-from-the-event-log.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge

from smartid_events.envelope import (
    HEADER_POSITION,
    stream_name,
    subjects_of_service,
)
from smartid_events.log import Translator, log_head, read_log
from smartid_events.natsconn import inbox_prefix_for
from smartid_events.store import asyncpg_dsn
from smartid_events.tracking import advance_position, ensure_positions_table, get_position

log = logging.getLogger(__name__)

RELAY_LAG = Gauge("smartid_relay_lag", "Log head minus the published position", ["service"])
RELAY_PUBLISHED = Counter("smartid_relay_published_total", "Events published", ["service"])

# The stream rejects a message unless its last sequence is the one we expect: after any lost
# or reordered publish every later one in the window fails too, so the stream stays in log order.
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"

LAG_SAMPLE_S = 1.0


def relay_lock_key(service: str) -> int:
    """The advisory lock key of a service's relay (stable across processes and versions)."""
    return zlib.crc32(f"smartid-relay:{service}".encode())


def relay_position_name(service: str) -> str:
    return f"relay:{service}"


def stream_config(service: str, duplicate_window_s: float = 300.0) -> StreamConfig:
    """File storage, full history (no max age), de-duplication by `Nats-Msg-Id`."""
    return StreamConfig(
        name=stream_name(service),
        subjects=[subjects_of_service(service)],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=0,
        duplicate_window=duplicate_window_s,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)


async def stream_tail(js: JetStreamContext, stream: str) -> tuple[int, int]:
    """(last stream sequence, position header of the last message); zeros when empty."""
    info = await js.stream_info(stream)
    last_seq = int(info.state.last_seq or 0)
    if last_seq == 0 or int(info.state.messages or 0) == 0:
        return last_seq, 0
    try:
        msg = await js.get_msg(stream, seq=last_seq)
    except NotFoundError:
        return last_seq, 0
    headers = msg.headers or {}
    return last_seq, int(headers.get(HEADER_POSITION, 0))


@dataclass
class RelaySettings:
    service: str
    database_url: str
    nats_url: str
    table: str
    translator: Translator
    batch_size: int = 1000
    poll_interval_s: float = 5.0
    ack_timeout_s: float = 5.0
    retry_delay_s: float = 0.2
    max_retry_delay_s: float = 5.0
    duplicate_window_s: float = 300.0
    nats_options: dict[str, Any] = field(default_factory=dict)
    # The service's own connect (user, password, inbox prefix: `natsconn.connect`); when None,
    # `connect_nats(nats_url, **nats_options)`.
    nats_connect: Callable[[], Awaitable[NatsClient]] | None = None

    async def connect(self, stop: asyncio.Event) -> NatsClient:
        if self.nats_connect is not None:
            return await self.nats_connect()
        return await connect_nats(self.nats_url, stop, **self.nats_options)


class PublishError(Exception):
    """A publish in the window failed; the relay resumes from the last contiguous ack."""


@dataclass
class Relay:
    settings: RelaySettings
    # Called with the position reached after each recorded batch (tests, progress bars).
    on_progress: Callable[[int], None] | None = None
    # Stop once this position is published (a catch-up run); None: run until stopped.
    until: int | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    @property
    def service(self) -> str:
        return self.settings.service

    @property
    def stream(self) -> str:
        return stream_name(self.settings.service)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Stand by until leader, then relay until `stop` is set; rides out NATS outages."""
        stop = stop or asyncio.Event()
        dsn = asyncpg_dsn(self.settings.database_url)
        lock_conn = await asyncpg.connect(dsn)
        try:
            if not await self._lead(lock_conn, stop):
                return
            log.info("relay for %s is the leader", self.service)
            await self._relay(dsn, lock_conn, stop)
        finally:
            await lock_conn.close()

    async def _lead(self, lock_conn: asyncpg.Connection[Any], stop: asyncio.Event) -> bool:
        key = relay_lock_key(self.service)
        while not stop.is_set():
            if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                return True
            await _wait(stop, self.settings.poll_interval_s)
        return False

    async def _relay(
        self, dsn: str, lock_conn: asyncpg.Connection[Any], stop: asyncio.Event
    ) -> None:
        # The position row is a hint, not the truth: on start and after every error the relay
        # resumes from max(position, the stream's last `Smartid-Position`), and fencing keeps
        # the stream a prefix of the log. A position lost in a PostgreSQL crash only re-reads
        # rows that publish nothing, so its commit need not wait for a WAL flush (an fsync per
        # batch, milliseconds of latency for every event behind it).
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=2, server_settings={"synchronous_commit": "off"}
        )
        listen_conn = await asyncpg.connect(dsn)
        nc = await self.settings.connect(stop)
        try:
            await ensure_positions_table(pool)
            await listen_conn.add_listener(self.settings.table, self._on_notify)
            await self._loop(pool, lock_conn, nc, stop)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
            await listen_conn.close()
            await pool.close()

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def _loop(
        self,
        pool: asyncpg.Pool[Any],
        lock_conn: asyncpg.Connection[Any],
        nc: NatsClient,
        stop: asyncio.Event,
    ) -> None:
        js = nc.jetstream()
        acks = AckInbox()
        await acks.subscribe(nc)
        name = relay_position_name(self.service)
        position = await get_position(pool, name)
        last_seq: int | None = None
        delay = self.settings.retry_delay_s
        batch = self.settings.batch_size
        prefetch: Prefetch | None = None
        lag_checked = 0.0
        try:
            while not stop.is_set():
                try:
                    if last_seq is None:
                        await ensure_stream(
                            js, stream_config(self.service, self.settings.duplicate_window_s)
                        )
                        last_seq, stream_position = await stream_tail(js, self.stream)
                        position = max(position, stream_position)
                    if self.until is not None and position >= self.until:
                        return
                    outgoing = await self._next(prefetch, pool, position, batch)
                    prefetch = None
                    if not outgoing:
                        RELAY_LAG.labels(self.service).set(0)
                        # The leader's connection must stay alive, or another relay may lead.
                        await lock_conn.execute("SELECT 1")
                        await _wait_any(stop, self._wake, self.settings.poll_interval_s)
                        continue
                    published, error = await self._send(nc, acks, outgoing, last_seq)
                    if error is not None:
                        raise error
                    # Read and translate the next batch while this one's ack is on its way:
                    # the translation's CPU overlaps nats-server's work on the window.
                    after = outgoing[-1].position
                    prefetch = (after, asyncio.ensure_future(self._read(pool, after, batch)))
                    reached, last_seq, error = await self._confirm(
                        acks, outgoing, published, position, last_seq
                    )
                    if reached > position:
                        await advance_position(pool, name, reached)
                        position = reached
                        if self.on_progress is not None:
                            self.on_progress(position)
                    if error is not None:
                        raise error
                    delay = self.settings.retry_delay_s
                    now = time.monotonic()
                    # A round trip per batch would cost throughput and, when following the log
                    # at a trickle, latency: the gauge is sampled (and set to 0 when idle).
                    if now - lag_checked >= LAG_SAMPLE_S:
                        lag_checked = now
                        RELAY_LAG.labels(self.service).set(
                            max(0, await log_head(pool, self.settings.table) - position)
                        )
                except (PublishError, nats.errors.Error, OSError, TimeoutError) as e:
                    log.warning("relay %s: %s; resuming from %d", self.service, e, position)
                    last_seq = None
                    await _wait(stop, delay)
                    delay = min(delay * 2, self.settings.max_retry_delay_s)
        finally:
            if prefetch is not None:
                prefetch[1].cancel()
                with contextlib.suppress(BaseException):
                    await prefetch[1]

    async def _read(self, pool: asyncpg.Pool[Any], after: int, limit: int) -> list[Outgoing]:
        """The rows after `after`, each translated into the message it becomes (if any)."""
        # Cleared before the read: a NOTIFY for a row committed after it keeps the wake-up set.
        self._wake.clear()
        rows = await read_log(pool, self.settings.table, after, limit)
        translate = self.settings.translator
        outgoing: list[Outgoing] = []
        append = outgoing.append
        for row in rows:
            event = translate(row)
            if event is None:
                append(Outgoing(row.notification_id, None, b"", {}))
            else:
                append(Outgoing(row.notification_id, *event.wire()))
        return outgoing

    async def _next(
        self, prefetch: Prefetch | None, pool: asyncpg.Pool[Any], position: int, batch: int
    ) -> list[Outgoing]:
        """The messages after `position`: the prefetched ones if read after exactly there."""
        if prefetch is not None:
            after, future = prefetch
            if after == position:
                return await future
            future.cancel()
            with contextlib.suppress(BaseException):
                await future
        return await self._read(pool, position, batch)

    async def _send(
        self, nc: NatsClient, acks: AckInbox, outgoing: list[Outgoing], last_seq: int
    ) -> tuple[int, PublishError | None]:
        """Publish the window without waiting: (messages published, error).

        Only the window's last message asks for an ack: each message is fenced on the stream
        sequence before it, so that ack, at `last_seq + published`, proves every message of
        the window was stored once and in order. An ack per message would double nats-server's
        and our work per event for no more certainty.
        """
        count = sum(1 for m in outgoing if m.subject is not None)
        last = acks.open(1 if count else 0)
        reply = f"{acks.prefix}{last}"
        publish = nc.publish
        expected = last_seq
        sent = 0
        for message in outgoing:
            if message.subject is None:
                continue
            headers = message.headers
            headers[EXPECTED_LAST_SEQUENCE] = str(expected)
            sent += 1
            try:
                # Not yielding here lets the client write the whole window in one go.
                await publish(
                    message.subject, message.payload, reply if sent == count else "", headers
                )
            except Exception as e:  # the window is unconfirmed: resync from the stream's tail
                acks.close()
                return sent - 1, PublishError(f"publish failed: {e!r}")
            expected += 1
        return count, None

    async def _confirm(
        self,
        acks: AckInbox,
        outgoing: list[Outgoing],
        published: int,
        position: int,
        last_seq: int,
    ) -> tuple[int, int, PublishError | None]:
        """Await the window's ack: (position reached, stream seq, error). Unconfirmed, nothing
        is assumed: the relay resyncs from the stream's tail, where whatever landed shows."""
        if not published:
            return outgoing[-1].position, last_seq, None
        first = acks.open_index
        await acks.wait(self.settings.ack_timeout_s)
        result = acks.result(first)
        acks.close()
        if result == last_seq + published:
            RELAY_PUBLISHED.labels(self.service).inc(published)
            return outgoing[-1].position, last_seq + published, None
        why = result if isinstance(result, str) else f"stored at {result} (a duplicate?)"
        error = PublishError(
            f"window of {published} after stream seq {last_seq} not confirmed: {why}"
        )
        return position, last_seq, error

    async def catch_up(self, stop: asyncio.Event | None = None) -> int:
        """Lead, publish everything up to the log's current head, and return that head."""
        dsn = asyncpg_dsn(self.settings.database_url)
        async with _pool(dsn) as pool:
            target = await log_head(pool, self.settings.table)
        await Relay(self.settings, on_progress=self.on_progress, until=target).run(stop)
        return target


@dataclass(slots=True)
class Outgoing:
    """A log row as the message it becomes; `subject` None when the row is not published."""

    position: int
    subject: str | None
    payload: bytes
    headers: dict[str, str]


Prefetch = tuple[int, "asyncio.Future[list[Outgoing]]"]

# What an ack slot holds: the stream sequence, or why there is none.
AckResult = int | str


class AckInbox:
    """The acks of the relay's publishes, collected per window by one subscription.

    Each publish's reply subject is `<inbox>.<n>`, n counting up for the life of the
    connection, so acks of an abandoned window (after a timeout) are told apart and dropped.
    Instead of a future, a semaphore slot and a `PubAck` dataclass per message (nats-py's
    `publish_async`), an ack is one slot in a list and the window has one event.
    """

    def __init__(self) -> None:
        self.prefix = ""
        self._first = 0
        self._next = 0
        self._results: list[AckResult | None] = []  # None: no ack yet
        self._waiting = 0
        self._done = asyncio.Event()

    async def subscribe(self, nc: NatsClient) -> None:
        # `new_inbox` honours the connection's inbox prefix (a service user's own, natsconn).
        self.prefix = f"{nc.new_inbox()}."
        await nc.subscribe(f"{self.prefix}*", cb=self._on_ack)

    def open(self, size: int) -> int:
        """Start a window of `size` publishes; the index of its first."""
        self._first = self._next
        self._next += size
        self._results = [None] * size
        self._waiting = size
        if size:
            self._done.clear()
        else:
            self._done.set()
        return self._first

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), seconds)

    @property
    def open_index(self) -> int:
        """The index of the open window's first publish."""
        return self._first

    def result(self, index: int) -> AckResult:
        result = self._results[index - self._first]
        return "timed out" if result is None else result

    def close(self) -> None:
        """Acks still to come for this window are dropped."""
        self._first = self._next
        self._results = []
        self._waiting = 0

    async def _on_ack(self, msg: Msg) -> None:
        try:
            slot = int(msg.subject[len(self.prefix) :]) - self._first
        except ValueError:
            return
        if not 0 <= slot < len(self._results) or self._results[slot] is not None:
            return
        self._results[slot] = _ack_result(msg)
        self._waiting -= 1
        if self._waiting == 0:
            self._done.set()


def _ack_result(msg: Msg) -> AckResult:
    """The stream sequence a JetStream ack gives (a duplicate's too), or why it is no ack."""
    headers = msg.headers
    if headers and headers.get("Status"):  # e.g. 503: no stream is listening
        return f"status {headers.get('Status')} {headers.get('Description', '')}".strip()
    try:
        body = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return f"not an ack: {msg.data[:100]!r}"
    if not isinstance(body, dict) or "error" in body or "seq" not in body:
        return f"refused: {body!r}"[:300]
    return int(body["seq"])


async def rebuild_stream(
    settings: RelaySettings, on_progress: Callable[[int], None] | None = None
) -> int:
    """Delete the service's stream and republish its whole log from the event store.

    Takes the relay's lock (fails if a relay is active: stop it first) and resets its position.
    """
    dsn = asyncpg_dsn(settings.database_url)
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval(
            "SELECT pg_try_advisory_lock($1)", relay_lock_key(settings.service)
        ):
            raise RuntimeError(f"a relay for {settings.service} is running: stop it first")
        nc = await settings.connect(asyncio.Event())
        try:
            js = nc.jetstream()
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream_name(settings.service))
            await ensure_stream(js, stream_config(settings.service, settings.duplicate_window_s))
        finally:
            await nc.close()
        await ensure_positions_table(conn)
        await conn.execute(
            "DELETE FROM smartid_positions WHERE name = $1", relay_position_name(settings.service)
        )
        # Released so that the catch-up relay below can take it.
        await conn.execute("SELECT pg_advisory_unlock($1)", relay_lock_key(settings.service))
    finally:
        await conn.close()
    return await Relay(settings, on_progress=on_progress).catch_up()


async def connect_nats(url: str, stop: asyncio.Event, **options: Any) -> NatsClient:
    """Connect, retrying until NATS answers (it may be down when the relay starts)."""
    defaults: dict[str, Any] = {
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.2,
        "allow_reconnect": True,
        "connect_timeout": 2,
    }
    if options.get("user"):
        # A service user may subscribe only to its own inbox prefix (see natsconn).
        defaults["inbox_prefix"] = inbox_prefix_for(options["user"])
    delay = 0.2
    while True:
        try:
            return await nats.connect(url, **{**defaults, **options})
        except (nats.errors.Error, OSError, TimeoutError) as e:
            if stop.is_set():
                raise
            log.warning("NATS at %s not reachable (%s); retrying", url, e)
            await _wait(stop, delay)
            delay = min(delay * 2, 5.0)


@contextlib.asynccontextmanager
async def _pool(dsn: str) -> Any:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    tasks = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
