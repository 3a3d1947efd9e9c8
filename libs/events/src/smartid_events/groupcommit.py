"""Group commit: concurrent commands applied by one writer and saved in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate, CanMutateAggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg.sql import SQL, Composed, Identifier

from smartid_events.correlation import stamp
from smartid_events.logs import current_correlation_id

R = TypeVar("R")
A = TypeVar("A", bound=BaseAggregate[UUID])

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


class UnreadableSnapshotError(Exception):
    """A mapper cannot read this snapshot (e.g. it was sealed with a destroyed key).

    Loaders then rebuild the aggregate from its events instead.
    """


@runtime_checkable
class Prefetching(Protocol):
    """A mapper that can prepare, in one go, for decoding many stored events (e.g. their keys)."""

    def prefetch(self, stored_events: Iterable[StoredEvent]) -> None: ...


class CommitterClosedError(RuntimeError):
    """The committer is closed (or closing) and takes no more commands."""


class CommitterOverloadedError(RuntimeError):
    """The committer's queue stayed full for the whole submit timeout (HTTP 503)."""


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

    __slots__ = ("_done", "_future", "_loop", "command", "correlation_id", "error", "result")

    def __init__(
        self,
        command: Command[Any],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.command = command
        # Taken in the submitter's thread: the writer thread has no request context.
        self.correlation_id = current_correlation_id()
        self.result: Any = None
        self.error: BaseException | None = None
        self._loop = loop
        self._future: asyncio.Future[Any] | None = None
        self._done: threading.Lock | None = None
        if loop is None:
            # A bare lock is the cheapest one-shot signal between threads.
            self._done = threading.Lock()
            self._done.acquire()
        else:
            self._future = loop.create_future()

    def resolve(self) -> None:
        if self._done is not None:
            self._done.release()
        else:
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the submitter's loop is closed
                self._loop.call_soon_threadsafe(self._set_future)

    def _set_future(self) -> None:
        assert self._future is not None
        if self._future.done():  # the awaiting task was cancelled
            return
        if self.error is not None:
            self._future.set_exception(self.error)
        else:
            self._future.set_result(self.result)

    def wait(self, timeout: float | None) -> Any:
        assert self._done is not None
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("the command was not committed in time; it may still commit")
        if self.error is not None:
            raise self.error
        return self.result

    async def wait_async(self) -> Any:
        assert self._future is not None
        return await self._future


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
                self.aggregate = _project(base)
            except Exception as projecting:
                self.error = projecting

    def rebuild(self) -> None:
        # A failed command may have mutated the object and left pending events on it: replay
        # from the loaded events plus those of the commands accepted so far instead.
        self.aggregate = _project([*self.base, *self.accepted])


def _project(events: Iterable[Event]) -> AnyAggregate | None:
    # The library's project_aggregate() checks a runtime Protocol on every event, which
    # costs more than the mutation itself.
    aggregate: AnyAggregate | None = None
    for event in events:
        aggregate = cast(CanMutateAggregate[UUID], event).mutate(aggregate)
    return aggregate


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
        max_wait_s: float = 0.002,
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
        self._loader = _Loader(app)
        self._writer = threading.Thread(target=self._run, name="group-committer", daemon=True)
        self._writer.start()

    def submit(self, command: Command[R], *, timeout: float | None = None) -> R:
        """Run `command` in the next batch; block until it committed, or raise its error."""
        timeout = self.submit_timeout_s if timeout is None else timeout
        ticket = _Ticket(command)
        self._enqueue(ticket, timeout)
        return cast(R, ticket.wait(timeout))

    async def submit_async(self, command: Command[R]) -> R:
        """`submit` for a coroutine: awaits the commit without blocking the event loop.

        Cancelling the wait (`asyncio.timeout`) does not withdraw the command.
        """
        ticket = _Ticket(command, asyncio.get_running_loop())
        # Never block the loop on a full queue: fail fast instead.
        self._enqueue(ticket, 0.0)
        async with asyncio.timeout(self.submit_timeout_s):
            return cast(R, await ticket.wait_async())

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
            self._not_full.notify_all()
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            try:
                self._commit(batch)
            except BaseException as error:  # every submitter must hear of it, whatever it is
                for ticket in batch:
                    ticket.result, ticket.error = None, error
            self.batches += 1
            self.commands += len(batch)
            for ticket in batch:
                ticket.resolve()

    def _commit(self, batch: list[_Ticket]) -> None:
        ids = {t.command.aggregate_id for t in batch if t.command.aggregate_id is not None}
        working = self._loader.load(ids)
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
            for ticket in batch:
                ticket.result, ticket.error = None, None
                self._commit_alone(ticket)

    def _commit_alone(self, ticket: _Ticket) -> None:
        try:
            ids = {ticket.command.aggregate_id} - {None}
            working = self._loader.load(cast(set[UUID], ids))
            events = self._apply([ticket], working)
            if events:
                try:
                    self._save(events, working)
                except IntegrityError:
                    if not self._already_stored(events):
                        raise
        except Exception as error:
            ticket.result, ticket.error = None, error

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
        stored = self._loader.select_stored({e.originator_id for e in events})
        for event in events:
            found = stored.get((event.originator_id, event.originator_version))
            if found is None:
                return False
            ours = mapper.to_domain_event(mapper.to_stored_event(event))
            if mapper.to_domain_event(found) != ours:
                return False
        return True


class _Loader:
    """Reads the current state of many aggregates at once."""

    def __init__(self, app: Application[UUID]) -> None:
        self.app = app
        recorder = app.recorder
        self._events_sql: Composed | None = None
        self._snapshots_sql: Composed | None = None
        if isinstance(recorder, PostgresAggregateRecorder):
            datastore = recorder.datastore
            self._datastore = datastore
            id_type = SQL(datastore.originator_id_type)
            self._events_sql = SQL(
                # LATERAL keeps the plan on the primary key; a plain join on unnest() can
                # pick a hash join over a sequential scan of the whole table.
                "SELECT e.originator_id, e.originator_version, e.topic, e.state"
                " FROM unnest(%s::{id_type}[], %s::bigint[]) AS k(id, gt)"
                " CROSS JOIN LATERAL (SELECT * FROM {schema}.{table} AS s"
                "  WHERE s.originator_id = k.id AND s.originator_version > k.gt"
                "  ORDER BY s.originator_version) AS e"
            ).format(
                id_type=id_type,
                schema=Identifier(datastore.schema),
                table=Identifier(recorder.events_table_name),
            )
            snapshots = app.snapshots.recorder if app.snapshots is not None else None
            if isinstance(snapshots, PostgresAggregateRecorder):
                self._snapshots_sql = SQL(
                    "SELECT DISTINCT ON (originator_id)"
                    " originator_id, originator_version, topic, state"
                    " FROM {schema}.{table} WHERE originator_id = ANY(%s::{id_type}[])"
                    " ORDER BY originator_id, originator_version DESC"
                ).format(
                    id_type=id_type,
                    schema=Identifier(snapshots.datastore.schema),
                    table=Identifier(snapshots.events_table_name),
                )

    def load(self, ids: set[UUID]) -> dict[UUID, _Working]:
        """Each aggregate's latest readable snapshot and later events, decoded.

        An unreadable snapshot is skipped (the aggregate is replayed from its events); an
        aggregate that cannot be decoded at all fails only the commands naming it.
        """
        if not ids:
            return {}
        if self._events_sql is None or (
            self.app.snapshots is not None and self._snapshots_sql is None
        ):
            return {i: self._load_one(i) for i in ids}
        id_list = list(ids)
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            snapshots: dict[UUID, StoredEvent] = {}
            if self._snapshots_sql is not None:
                curs.execute(self._snapshots_sql, (id_list,), prepare=True)
                snapshots = {row["originator_id"]: _stored(row) for row in curs.fetchall()}
            gts = [snapshots[i].originator_version if i in snapshots else 0 for i in id_list]
            curs.execute(self._events_sql, (id_list, gts), prepare=True)
            events = [_stored(row) for row in curs.fetchall()]
            mapper = self.app.mapper
            if isinstance(mapper, Prefetching):
                mapper.prefetch([*snapshots.values(), *events])
            loaded: dict[UUID, list[Event]] = {i: [] for i in id_list}
            unreadable: list[UUID] = []
            for aggregate_id, snapshot in snapshots.items():
                try:
                    loaded[aggregate_id].append(mapper.to_domain_event(snapshot))
                except UnreadableSnapshotError:
                    unreadable.append(aggregate_id)
            if unreadable:
                # Their snapshots' versions bounded the query above: read their whole history.
                curs.execute(self._events_sql, (unreadable, [0] * len(unreadable)), prepare=True)
                replayed: dict[UUID, list[StoredEvent]] = {i: [] for i in unreadable}
                for row in curs.fetchall():
                    replayed[row["originator_id"]].append(_stored(row))
                events = [e for e in events if e.originator_id not in replayed]
                events += [e for history in replayed.values() for e in history]
        failed: dict[UUID, Exception] = {}
        for stored in events:
            aggregate_id = cast(UUID, stored.originator_id)
            if aggregate_id in failed:
                continue
            try:
                loaded[aggregate_id].append(mapper.to_domain_event(stored))
            except Exception as error:  # this aggregate's commands fail with it, not the batch
                failed[aggregate_id] = error
        return {i: _Working(events, failed.get(i)) for i, events in loaded.items()}

    def _load_one(self, aggregate_id: UUID) -> _Working:
        app = self.app
        try:
            snapshots: list[Event] = []
            if app.snapshots is not None:
                with contextlib.suppress(UnreadableSnapshotError):
                    snapshots = list(app.snapshots.get(aggregate_id, desc=True, limit=1))
            gt = snapshots[0].originator_version if snapshots else None
            return _Working([*snapshots, *app.events.get(aggregate_id, gt=gt)])
        except Exception as error:  # this aggregate's commands fail with it, not the batch
            return _Working([], error)

    def select_stored(self, ids: set[UUID]) -> dict[tuple[UUID, int], StoredEvent]:
        recorder = self.app.recorder
        return {
            (s.originator_id, s.originator_version): s  # type: ignore[misc]
            for i in ids
            for s in recorder.select_events(i)
        }


def _stored(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )
