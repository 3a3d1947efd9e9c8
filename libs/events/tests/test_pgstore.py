"""Our recorders' one-statement insert on real PostgreSQL: order, lock, NOTIFY, conflicts."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.errors import LockNotAvailable

from smartid_events.pgstore import PgApplicationRecorder, PgProcessRecorder
from smartid_events.store import event_store_env

TOPIC = "tests:Thing.Happened"
Insert = Callable[[Sequence[StoredEvent]], Sequence[int] | None]


class Things(Application[UUID]):
    pass


class TrackedThings(Application[UUID]):
    def construct_recorder(self) -> Any:
        return self.factory.process_recorder()


@pytest.fixture
def things(database_url: str) -> Iterator[Things]:
    app = Things(env=event_store_env(database_url, pool_size=4))
    yield app
    app.close()


@pytest.fixture
def tracked(database_url: str) -> Iterator[TrackedThings]:
    app = TrackedThings(env=event_store_env(database_url, pool_size=2))
    yield app
    app.close()


def recorder_of(app: Application[UUID]) -> PgApplicationRecorder:
    recorder = app.recorder
    assert isinstance(recorder, PgApplicationRecorder)
    return recorder


def events(count: int, version: int = 1, state: bytes = b'{"n": 1}') -> list[StoredEvent]:
    return [StoredEvent(uuid4(), version, TOPIC, state) for _ in range(count)]


def logged(app: Application[UUID]) -> list[tuple[int, Any, int]]:
    notes = app.recorder.select_notifications(None, 100_000)  # type: ignore[attr-defined]
    return [(n.id, n.originator_id, n.originator_version) for n in notes]


positions = iter(range(1, 1_000_000))


@pytest.fixture(params=["alone", "with tracking"])
def insert(request: pytest.FixtureRequest) -> tuple[Application[UUID], Insert]:
    """Both insert paths: events alone (one statement), events with tracking (a transaction)."""
    if request.param == "alone":
        app: Application[UUID] = request.getfixturevalue("things")
        return app, recorder_of(app).insert_events
    app = request.getfixturevalue("tracked")
    recorder = recorder_of(app)

    def with_tracking(stored: Sequence[StoredEvent]) -> Sequence[int] | None:
        # One upstream per thread: each one's positions only go up.
        upstream = f"upstream-{threading.get_ident()}"
        return recorder.insert_events(stored, tracking=Tracking(upstream, next(positions)))

    return app, with_tracking


def test_event_store_env_gives_applications_and_process_applications_our_recorders(
    things: Things, tracked: TrackedThings
) -> None:
    assert type(things.recorder) is PgApplicationRecorder
    assert type(tracked.recorder) is PgProcessRecorder


def test_the_librarys_lock_less_insert_function_is_refused(database_url: str) -> None:
    env = {**event_store_env(database_url), "POSTGRES_ENABLE_DB_FUNCTIONS": "y"}
    with pytest.raises(ProgrammingError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
        Things(env=env)


def test_a_batch_gets_consecutive_notification_ids_in_insert_order(
    insert: tuple[Application[UUID], Insert],
) -> None:
    app, insert_events = insert
    first = events(1)
    assert insert_events(first) == [1]
    batch = [*events(3), StoredEvent(first[0].originator_id, 2, TOPIC, b"{}"), *events(2)]
    assert insert_events(batch) == [2, 3, 4, 5, 6, 7]
    assert logged(app)[1:] == [
        (n, e.originator_id, e.originator_version) for n, e in zip(range(2, 8), batch, strict=True)
    ]
    stored = app.recorder.select_events(first[0].originator_id)
    assert [(s.originator_version, s.topic, s.state) for s in stored] == [
        (1, TOPIC, b'{"n": 1}'),
        (2, TOPIC, b"{}"),
    ]


def test_concurrent_batches_get_gap_free_ids_in_commit_order(
    insert: tuple[Application[UUID], Insert],
) -> None:
    app, insert_events = insert
    recorder = recorder_of(app)
    done = threading.Event()
    seen: list[int] = []

    def tail() -> None:
        # Ids are issued in commit order: a reader that passed an id never meets a lower one.
        last = 0
        while True:
            finished = done.is_set()
            page = recorder.select_notifications(last, 500, inclusive_of_start=False)
            seen.extend(n.id for n in page)
            if page:
                last = page[-1].id
            elif finished:
                return

    def writer(_: int) -> list[list[int]]:
        return [list(insert_events(events(5)) or []) for _ in range(20)]

    reader = threading.Thread(target=tail)
    reader.start()
    with ThreadPoolExecutor(4) as pool:
        batches = [ids for per_writer in pool.map(writer, range(4)) for ids in per_writer]
    done.set()
    reader.join(timeout=30)

    for ids in batches:
        assert ids == list(range(ids[0], ids[0] + 5))  # one batch, one consecutive run
    assert sorted(i for ids in batches for i in ids) == list(range(1, 401))
    assert seen == list(range(1, 401))


def test_a_duplicate_version_fails_the_whole_batch_with_the_librarys_integrity_error(
    insert: tuple[Application[UUID], Insert],
) -> None:
    app, insert_events = insert
    existing = events(1)
    insert_events(existing)
    fresh = events(2)
    with pytest.raises(IntegrityError):
        insert_events([*fresh, existing[0]])
    assert [(i, v) for i, _, v in logged(app)] == [(1, 1)]
    assert not app.recorder.select_events(fresh[0].originator_id)


def test_an_insert_notifies_the_channel_listeners(
    insert: tuple[Application[UUID], Insert], database_url: str
) -> None:
    app, insert_events = insert
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f'LISTEN "{recorder_of(app).channel_name}"')
        insert_events(events(2))
        heard = list(listener.notifies(timeout=10, stop_after=1))
    assert [n.channel for n in heard] == [recorder_of(app).channel_name]


def waiting_exclusive_locks(database_url: str, table: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass"
            " AND mode = 'ExclusiveLock' AND NOT granted",
            (table,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_an_insert_waits_for_the_tables_exclusive_lock(
    insert: tuple[Application[UUID], Insert], database_url: str
) -> None:
    app, insert_events = insert
    table = recorder_of(app).events_table_name
    inserted: list[Sequence[int] | None] = []
    with psycopg.connect(database_url) as holder:
        # ROW EXCLUSIVE, what a plain INSERT takes: it blocks EXCLUSIVE, not other inserts.
        holder.execute(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE')
        worker = threading.Thread(target=lambda: inserted.append(insert_events(events(2))))
        worker.start()
        deadline = time.monotonic() + 10
        while not waiting_exclusive_locks(database_url, table) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert waiting_exclusive_locks(database_url, table) == 1
        assert worker.is_alive() and not inserted
    worker.join(timeout=10)  # leaving the block committed the holder's transaction
    assert inserted == [[1, 2]]


def test_a_lock_wait_longer_than_lock_timeout_fails_and_is_retried(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Things(env=event_store_env(database_url, lock_timeout_s=1, pool_size=2))
    table = recorder_of(app).events_table_name
    retried_after: list[BaseException | None] = []
    retrying = threading.Event()

    def no_sleep(_: float) -> None:  # the library's retry sleeps inside its `except`
        retried_after.append(sys.exc_info()[1])
        retrying.set()

    monkeypatch.setattr("eventsourcing.utils.sleep", no_sleep)
    inserted: list[Sequence[int] | None] = []
    try:
        with psycopg.connect(database_url) as holder:
            holder.execute(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE')
            worker = threading.Thread(
                target=lambda: inserted.append(app.recorder.insert_events(events(1)))
            )
            worker.start()
            assert retrying.wait(timeout=10)
        worker.join(timeout=10)
    finally:
        app.close()
    assert inserted == [[1]]
    assert isinstance(retried_after[0], OperationalError)
    assert isinstance(retried_after[0].__cause__, LockNotAvailable)


def test_an_insert_on_dropped_connections_is_retried_on_a_new_one(database_url: str) -> None:
    app = Things(env=event_store_env(database_url, pool_size=1))
    recorder = recorder_of(app)
    try:
        recorder.insert_events(events(1))
        with psycopg.connect(database_url, autocommit=True) as admin:
            terminated = admin.execute(
                "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert terminated is not None and terminated[0] >= 1  # every pooled connection
        assert recorder.insert_events(events(1)) == [2]
    finally:
        app.close()


def test_the_tracking_path_records_tracking_and_events_together(tracked: TrackedThings) -> None:
    recorder = tracked.recorder
    assert isinstance(recorder, PgProcessRecorder)
    first = events(2)
    assert recorder.insert_events(first, tracking=Tracking("upstream", 5)) == [1, 2]
    assert recorder.max_tracking_id("upstream") == 5
    with pytest.raises(IntegrityError):
        recorder.insert_events([first[0]], tracking=Tracking("upstream", 6))
    assert recorder.max_tracking_id("upstream") == 5
    with pytest.raises(IntegrityError):  # a position already recorded
        recorder.insert_events(events(1), tracking=Tracking("upstream", 5))
    assert len(logged(tracked)) == 2


def test_events_with_tracking_are_one_call_of_our_function(
    tracked: TrackedThings, database_url: str
) -> None:
    recorder = tracked.recorder
    assert isinstance(recorder, PgProcessRecorder)
    assert recorder.insert_events(events(1), tracking=Tracking("upstream", 1)) == [1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP FUNCTION {recorder.events_table_name}_insert_tracked")
    with pytest.raises(ProgrammingError):  # no such function: the path needs it
        recorder.insert_events(events(1), tracking=Tracking("upstream", 2))
    # A tracking alone keeps the library's transaction.
    assert recorder.insert_events([], tracking=Tracking("upstream", 3)) is None
    assert recorder.max_tracking_id("upstream") == 3


def test_the_librarys_recorder_and_ours_store_the_same_rows(database_url: str) -> None:
    ours = Things(env=event_store_env(database_url))
    env = {**event_store_env(database_url)}
    del env["APPLICATION_RECORDER_TOPIC"]
    library = Things(env=env)
    try:
        assert type(library.recorder) is PostgresApplicationRecorder
        batch = events(3, state=b"\x00\xff binary")
        assert recorder_of(ours).insert_events(batch[:2]) == [1, 2]
        assert library.recorder.insert_events(batch[2:]) == [3]
        assert logged(ours) == logged(library)
        assert [s.state for e in batch for s in ours.recorder.select_events(e.originator_id)] == [
            b"\x00\xff binary"
        ] * 3
    finally:
        ours.close()
        library.close()
