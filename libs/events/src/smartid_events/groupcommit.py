"""Group commit: concurrent commands applied by one writer and saved in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, StoredEvent
from prometheus_client import Counter, Gauge, Histogram

from smartid_events.bulkload import BulkLoader, project
from smartid_events.correlation import stamp
from smartid_events.logs import current_correlation_id

R = TypeVar("R")

logger = logging.getLogger(__name__)

# Per application (its `name`): a process may run several committers (tests do).
BATCH_SIZE = Histogram(
    "smartid_group_commit_batch_commands",
    "Commands per group-commit batch.",
    ["application"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
BATCH_SECONDS = Histogram(
    "smartid_group_commit_batch_seconds",
    "Time to load, apply and save one batch (its transaction included).",
    ["application"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
QUEUED = Gauge(
    "smartid_group_commit_queued_commands", "Commands waiting for the writer.", ["application"]
)
REDONE = Counter(
    "smartid_group_commit_redone_batches_total",
    "Batches redone one command at a time after a conflict with another writer.",
    ["application"],
)
A = TypeVar("A", bound=BaseAggregate[UUID])
# How long the writer waits for late arrivals before committing a batch that is not full.
DEFAULT_MAX_WAIT_S = 0.002

AnyAggregate = BaseAggregate[UUID]
Event = DomainEventProtocol[UUID]


class StaleVersionError(IntegrityError):
    """The aggregate is not at the version the command expected (HTTP 412).

    A subclass of the library's `IntegrityError`, which services already report as a stale
    version, so one entry in the error table covers both.
    """

    def __init__(self, aggregate_id: UUID, expected: int, actual: int) -> None:
        super().__init__(f"aggregate {aggregate_id} is at version {actual}, not {expected}")
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual


class CommitterClosedError(RuntimeError):
    """The committer is closed (or closing) and takes no more commands."""


class CommitterOverloadedError(RuntimeError):
    """The committer's queue stayed full for the whole submit timeout (HTTP 503)."""


class CommitPendingError(TimeoutError):
    """The command was not committed within the submit timeout and may still commit.

    `outcome` resolves when the writer is done with it, with its result or its error, so that
    a caller can still settle what depends on it (an Idempotency-Key's record).
    """

    rule = "commit-pending"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}

    def __init__(self, outcome: asyncio.Future[Any]) -> None:
        super().__init__(
            "the command was not committed in time and may still commit: retry with the same "
            "Idempotency-Key to learn its outcome"
        )
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Command(Generic[R]):
    """One command for the group committer.

    `apply` receives the aggregate named by `aggregate_id` (None when `aggregate_id` is None or
    no such aggregate exists) and returns the aggregates to save and the submitter's result.
    The named aggregate is always saved. `apply` runs in the writer thread, may raise (that
    fails this command only) and must not keep references to the aggregate: later commands in
    the batch go on mutating it, so the result has to be computed from it inside `apply`.
    """

    aggregate_id: UUID | None
    apply: Callable[[Any], tuple[Sequence[AnyAggregate], R]]
    expected_version: int | None = None


def create(factory: Callable[[], tuple[A, R]]) -> Command[R]:
    """A command creating a new aggregate: `factory()` returns it and the result."""

    def apply(_: None) -> tuple[Sequence[AnyAggregate], R]:
        aggregate, result = factory()
        return [aggregate], result

    return Command(None, apply)


def update(
    cls: type[A],
    aggregate_id: UUID,
    method: Callable[[A], R],
    *,
    expected_version: int | None = None,
) -> Command[R]:
    """A command on an existing aggregate: `method(aggregate)` mutates it and returns the result.

    Raises `AggregateNotFoundError` when there is no such aggregate of type `cls`.
    """

    def apply(aggregate: AnyAggregate | None) -> tuple[Sequence[AnyAggregate], R]:
        if not isinstance(aggregate, cls):
            raise AggregateNotFoundError(aggregate_id)
        return [aggregate], method(aggregate)

    return Command(aggregate_id, apply, expected_version)


class _Ticket:
    """A submitted command and the way its outcome gets back to the submitter."""

    __slots__ = (
        "_done",
        "_future",
        "_loop",
        "callback",
        "command",
        "correlation_id",
        "error",
        "result",
    )

    def __init__(
        self,
        command: Command[Any],
        loop: asyncio.AbstractEventLoop | None = None,
        callback: Callable[[Any, BaseException | None], None] | None = None,
    ) -> None:
        self.command = command
        self.callback = callback
        # Taken in the submitter's thread: the writer thread has no request context.
        self.correlation_id = current_correlation_id()
        self.result: Any = None
        self.error: BaseException | None = None
        self._loop = loop
        self._future: asyncio.Future[Any] | None = None
        self._done: threading.Lock | None = None
        if loop is not None:
            self._future = loop.create_future()
        elif callback is None:
            # A bare lock is the cheapest one-shot signal between threads.
            self._done = threading.Lock()
            self._done.acquire()

    def settle(self) -> None:
        """On the submitter's loop: hand the outcome over (once)."""
        future = self._future
        assert future is not None
        if future.done():  # only if its loop is closing
            return
        if self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(self.result)

    def wait(self, timeout: float | None) -> Any:
        assert self._done is not None
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("the command was not committed in time; it may still commit")
        if self.error is not None:
            raise self.error
        return self.result

    @property
    def outcome(self) -> asyncio.Future[Any]:
        assert self._future is not None
        return self._future


def _settle_all(tickets: list[_Ticket]) -> None:
    for ticket in tickets:
        ticket.settle()


def _resolve(batch: list[_Ticket]) -> None:
    """Tell every submitter: a lock each for threads, one wake-up per event loop for the rest
    (a `call_soon_threadsafe` per command was a wake-up of the loop per command)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Ticket]] = {}
    for ticket in batch:
        if ticket.callback is not None:
            try:
                ticket.callback(ticket.result, ticket.error)
            except Exception:
                logger.exception("a command's callback failed")
        elif ticket._done is not None:
            ticket._done.release()
        else:
            assert ticket._loop is not None
            by_loop.setdefault(ticket._loop, []).append(ticket)
    for loop, tickets in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the submitter's loop is closed
            loop.call_soon_threadsafe(_settle_all, tickets)


def _relay(waiter: asyncio.Future[Any], outcome: asyncio.Future[Any]) -> None:
    if waiter.done():
        if not outcome.cancelled():
            outcome.exception()  # retrieved: whoever took the CommitPendingError owns it
        return
    if outcome.cancelled():
        waiter.cancel()
    elif (error := outcome.exception()) is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(outcome.result())


def _give_up(waiter: asyncio.Future[Any], outcome: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(CommitPendingError(outcome))


class _Working:
    """The batch's state of one aggregate: what was loaded and what commands have added.

    `error` is why it could not be loaded: its commands fail with it, the batch's others go on.
    """

    __slots__ = ("accepted", "aggregate", "base", "error")

    def __init__(self, base: list[Event], error: Exception | None = None) -> None:
        self.base = base
        self.accepted: list[Event] = []
        self.error = error
        self.aggregate: AnyAggregate | None = None
        if error is None:
            try:
                self.aggregate = project(base)
            except Exception as projecting:
                self.error = projecting

    def rebuild(self) -> None:
        # A failed command may have mutated the object and left pending events on it: replay
        # from the loaded events plus those of the commands accepted so far instead.
        self.aggregate = project([*self.base, *self.accepted])


class GroupCommitter:
    """Collects concurrent commands and commits them in batches from one writer thread.

    All commands for the application's aggregates must go through one committer: it is the
    single writer. A command can commit after its submitter gave up waiting
    (`TimeoutError`); an Idempotency-Key is what makes the client's retry safe.
    """

    def __init__(
        self,
        app: Application[UUID],
        *,
        max_batch: int = 64,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        max_queue: int = 1024,
        submit_timeout_s: float | None = 30.0,
    ) -> None:
        self.app = app
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.submit_timeout_s = submit_timeout_s
        self.batches = 0
        self.commands = 0
        self.retried_batches = 0
        self._queue: deque[_Ticket] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._loader = BulkLoader(app)
        self._batch_size = BATCH_SIZE.labels(app.name)
        self._batch_seconds = BATCH_SECONDS.labels(app.name)
        self._queued = QUEUED.labels(app.name)
        self._redone = REDONE.labels(app.name)
        self._writer = threading.Thread(target=self._run, name="group-committer", daemon=True)
        self._writer.start()

    def submit(self, command: Command[R], *, timeout: float | None = None) -> R:
        """Run `command` in the next batch; block until it committed, or raise its error."""
        timeout = self.submit_timeout_s if timeout is None else timeout
        ticket = _Ticket(command)
        self._enqueue(ticket, timeout)
        return cast(R, ticket.wait(timeout))

    def submit_then(
        self, command: Command[R], done: Callable[[R | None, BaseException | None], None]
    ) -> None:
        """Queue `command`; `done(result, error)` is called on the writer thread once it is
        decided. Blocks while the queue is full: for a feeder thread, not an event loop."""
        self._enqueue(_Ticket(command, callback=done), None)

    async def submit_async(self, command: Command[R]) -> R:
        """`submit` for a coroutine: awaits the commit without blocking the event loop.

        Past `submit_timeout_s` raises `CommitPendingError`, whose `outcome` still resolves.
        Cancelling the wait does not withdraw the command, nor lose its outcome.
        """
        loop = asyncio.get_running_loop()
        ticket = _Ticket(command, loop)
        # Never block the loop on a full queue: fail fast instead.
        self._enqueue(ticket, 0.0)
        # The waiter, not the outcome, is what a timeout or a cancellation ends; a timer and a
        # callback cost less than an `asyncio.timeout` block per command.
        outcome = ticket.outcome
        waiter: asyncio.Future[Any] = loop.create_future()
        outcome.add_done_callback(functools.partial(_relay, waiter))
        timer = None
        if self.submit_timeout_s is not None:
            timer = loop.call_later(self.submit_timeout_s, _give_up, waiter, outcome)
        try:
            return cast(R, await waiter)
        finally:
            if timer is not None:
                timer.cancel()

    def close(self, timeout: float | None = None) -> None:
        """Stop taking commands, commit those already queued, stop the writer."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        self._writer.join(timeout)

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enqueue(self, ticket: _Ticket, timeout: float | None) -> None:
        with self._lock:
            if self._closed:
                raise CommitterClosedError("the group committer is closed")
            if len(self._queue) >= self.max_queue:
                deadline = None if timeout is None else time.monotonic() + timeout
                while len(self._queue) >= self.max_queue and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise CommitterOverloadedError("the group committer's queue is full")
                    self._not_full.wait(remaining)
                if self._closed:
                    raise CommitterClosedError("the group committer is closed")
            self._queue.append(ticket)
            if len(self._queue) == 1 or len(self._queue) >= self.max_batch:
                self._not_empty.notify()

    def _take_batch(self) -> list[_Ticket] | None:
        """The next batch: what is queued, plus up to `max_wait_s` of late arrivals."""
        with self._lock:
            while not self._queue:
                if self._closed:
                    return None
                self._not_empty.wait()
            if len(self._queue) < self.max_batch and self.max_wait_s > 0 and not self._closed:
                deadline = time.monotonic() + self.max_wait_s
                while len(self._queue) < self.max_batch and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._not_empty.wait(remaining)
            n = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(n)]
            self._queued.set(len(self._queue))
            self._not_full.notify_all()
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            started = time.perf_counter()
            try:
                self._commit(batch)
            except BaseException as error:  # every submitter must hear of it, whatever it is
                for ticket in batch:
                    ticket.result, ticket.error = None, error
            self.batches += 1
            self.commands += len(batch)
            _resolve(batch)
            self._batch_seconds.observe(time.perf_counter() - started)
            self._batch_size.observe(len(batch))

    def _commit(self, batch: list[_Ticket]) -> None:
        ids = {t.command.aggregate_id for t in batch if t.command.aggregate_id is not None}
        working = self._load(ids)
        events = self._apply(batch, working)
        if not events:
            return
        try:
            self._save(events, working)
        except IntegrityError:
            if self._already_stored(events):
                return
            # A writer outside this committer got there first, or two commands collided:
            # redo each command alone on freshly loaded state so each gets its own outcome.
            self.retried_batches += 1
            self._redone.inc()
            for ticket in batch:
                ticket.result, ticket.error = None, None
                self._commit_alone(ticket)

    def _commit_alone(self, ticket: _Ticket) -> None:
        try:
            ids = {ticket.command.aggregate_id} - {None}
            working = self._load(cast(set[UUID], ids))
            events = self._apply([ticket], working)
            if events:
                try:
                    self._save(events, working)
                except IntegrityError:
                    if not self._already_stored(events):
                        raise
        except Exception as error:
            ticket.result, ticket.error = None, error

    def _load(self, ids: set[UUID]) -> dict[UUID, _Working]:
        # An aggregate that cannot be read fails only the commands naming it.
        return {i: _Working(h.events, h.error) for i, h in self._loader.histories(ids).items()}

    def _apply(self, batch: Iterable[_Ticket], working: dict[UUID, _Working]) -> list[Event]:
        """Apply the commands in order; return the events of those that succeeded."""
        events: list[Event] = []
        for ticket in batch:
            command = ticket.command
            state = None if command.aggregate_id is None else working[command.aggregate_id]
            aggregate = None if state is None else state.aggregate
            if state is not None and state.error is not None:
                ticket.result, ticket.error = None, state.error
                continue
            applied = False
            try:
                if command.expected_version is not None:
                    if aggregate is None:
                        raise AggregateNotFoundError(command.aggregate_id)
                    if aggregate.version != command.expected_version:
                        assert command.aggregate_id is not None
                        raise StaleVersionError(
                            command.aggregate_id, command.expected_version, aggregate.version
                        )
                applied = True
                to_save, result = command.apply(aggregate)
            except Exception as error:
                ticket.result, ticket.error = None, error
                if applied and state is not None:
                    state.rebuild()
                continue
            saved = [aggregate] if aggregate is not None else []
            saved += [a for a in to_save if a is not aggregate]
            for saved_aggregate in saved:
                new_events = saved_aggregate.collect_events()
                for new_event in new_events:
                    stamp(new_event, ticket.correlation_id)
                events.extend(new_events)
                known = working.get(saved_aggregate.id)
                if known is None:
                    known = working[saved_aggregate.id] = _Working([])
                known.aggregate = saved_aggregate
                known.accepted.extend(new_events)
            ticket.result, ticket.error = result, None
        return events

    def _save(self, events: list[Event], working: dict[UUID, _Working]) -> None:
        """`Application.save` (eventsourcing 9.5.6) for events already collected.

        `save()` checks runtime Protocols on every object it is given, which costs more per
        command than the insert; the events and aggregates are known here, so hand them over.
        """
        app = self.app
        processing = ProcessingEvent[UUID]()
        processing.events = events
        processing.aggregates = {
            i: w.aggregate for i, w in working.items() if w.accepted and w.aggregate
        }
        recordings = app._record(processing)
        app._take_snapshots(processing)
        app._notify(recordings)
        app.notify(processing.events)

    def _already_stored(self, events: list[Event]) -> bool:
        """Whether these very events are stored: a retried insert whose first try committed."""
        mapper = self.app.mapper
        stored = self._select_stored({e.originator_id for e in events})
        for event in events:
            found = stored.get((event.originator_id, event.originator_version))
            if found is None:
                return False
            ours = mapper.to_domain_event(mapper.to_stored_event(event))
            if mapper.to_domain_event(found) != ours:
                return False
        return True

    def _select_stored(self, ids: set[UUID]) -> dict[tuple[UUID, int], StoredEvent]:
        recorder = self.app.recorder
        return {
            (s.originator_id, s.originator_version): s  # type: ignore[misc]
            for i in ids
            for s in recorder.select_events(i)
        }
