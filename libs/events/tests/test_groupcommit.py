"""The group committer against a real PostgreSQL: outcomes, order, conflicts, the log."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import psycopg
import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from smartid_events.groupcommit import (
    Command,
    CommitPendingError,
    CommitterClosedError,
    GroupCommitter,
    StaleVersionError,
    create,
    update,
)
from smartid_events.store import event_store_env


class NegativeStepError(Exception):
    pass


class Counter(Aggregate):
    @event("Created")
    def __init__(self, tag: str = "") -> None:
        self.value = 0
        self.tags = [tag]

    def increment(self, by: int, tag: str = "") -> int:
        if by < 0:
            raise NegativeStepError(by)
        self._incremented(by, tag)
        return self.version

    def increment_then_fail(self) -> None:
        self._incremented(1000, "must-not-be-stored")
        raise NegativeStepError(-1)

    @event("Incremented")
    def _incremented(self, by: int, tag: str) -> None:
        self.value += by
        self.tags.append(tag)


class Named(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/named/{name}")


class Counters(Application[UUID]):
    pass


@pytest.fixture
def app(database_url: str) -> Iterator[Counters]:
    counters = Counters(env=event_store_env(database_url, pool_size=2))
    yield counters
    counters.close()


def a_counter(app: Counters, tag: str = "") -> UUID:
    counter = Counter(tag)
    app.save(counter)
    return counter.id


def increment(counter_id: UUID, by: int, tag: str = "", **kw: Any) -> Command[int]:
    return update(Counter, counter_id, lambda c: c.increment(by, tag), **kw)


def in_one_batch(committer: GroupCommitter, commands: Sequence[Command[Any]]) -> list[Future[Any]]:
    """Submit concurrently; the committer is built with max_batch=len(commands)."""
    pool = ThreadPoolExecutor(len(commands))
    futures = [pool.submit(committer.submit, c) for c in commands]
    pool.shutdown(wait=True)
    return futures


def stored_tags(app: Counters, counter_id: UUID) -> list[tuple[int, str]]:
    return [
        (e.originator_version, getattr(e, "tag", ""))
        for e in app.events.get(counter_id)
        if e.originator_version > 1
    ]


def test_concurrent_creates_and_updates_are_each_stored_once_in_submission_order(
    app: Counters,
) -> None:
    shared = [a_counter(app) for _ in range(3)]
    acked: dict[str, tuple[UUID, int]] = {}
    lock = threading.Lock()

    def client(n: int) -> None:
        own = committer.submit(create(lambda: (c := Counter(f"c{n}"), c.id)))
        for seq in range(30):
            target = own if seq % 3 == 0 else shared[(n + seq) % len(shared)]
            tag = f"t{n}.{seq:02d}"
            version = committer.submit(increment(target, 1, tag))
            with lock:
                acked[tag] = (target, version)

    with (
        GroupCommitter(app, max_batch=16, max_wait_s=0.001) as committer,
        ThreadPoolExecutor(8) as pool,
    ):
        for f in [pool.submit(client, n) for n in range(8)]:
            f.result()

    assert len(acked) == 8 * 30
    stored: dict[str, tuple[UUID, int]] = {}
    for aggregate_id in {target for target, _ in acked.values()}:
        history = stored_tags(app, aggregate_id)
        assert [v for v, _ in history] == list(range(2, len(history) + 2))  # contiguous
        for version, tag in history:
            assert tag not in stored, f"{tag} stored twice"
            stored[tag] = (aggregate_id, version)
        for n in range(8):
            mine = [t for _, t in history if t.startswith(f"t{n}.")]
            assert mine == sorted(mine)
    assert stored == acked
    assert committer.batches < committer.commands


def test_a_domain_error_fails_only_its_own_command_and_leaves_nothing_pending(
    app: Counters,
) -> None:
    counter_id = a_counter(app)
    failing = update(Counter, counter_id, lambda c: c.increment_then_fail())
    with GroupCommitter(app, max_batch=3, max_wait_s=10) as committer:
        ok1, bad, ok2 = in_one_batch(
            committer, [increment(counter_id, 1), failing, increment(counter_id, 1)]
        )
        assert committer.batches == 1

    assert sorted([ok1.result(), ok2.result()]) == [2, 3]
    assert isinstance(bad.exception(), NegativeStepError)
    counter: Counter = app.repository.get(counter_id)
    assert (counter.version, counter.value) == (3, 2)
    assert "must-not-be-stored" not in counter.tags


def test_an_aggregate_that_cannot_be_read_fails_only_the_commands_naming_it(
    app: Counters, database_url: str
) -> None:
    broken, intact = a_counter(app), a_counter(app)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE counters_events SET state = 'not json' WHERE originator_id = %s", (broken,)
        )
    with GroupCommitter(app, max_batch=2, max_wait_s=10) as committer:
        on_broken, on_intact = in_one_batch(committer, [increment(broken, 1), increment(intact, 1)])
        assert committer.batches == 1
    assert on_broken.exception() is not None
    assert on_intact.result() == 2


def test_an_expected_version_mismatch_inside_a_batch_fails_as_stale(app: Counters) -> None:
    counter_id = a_counter(app)
    with GroupCommitter(app, max_batch=2, max_wait_s=10) as committer:
        first, second = in_one_batch(
            committer,
            [increment(counter_id, 1, expected_version=1) for _ in range(2)],
        )

    outcomes = sorted([first, second], key=lambda f: f.exception() is not None)
    assert outcomes[0].result() == 2
    error = outcomes[1].exception()
    assert isinstance(error, StaleVersionError)
    assert (error.expected, error.actual) == (1, 2)


def test_an_update_of_a_missing_aggregate_is_not_found(app: Counters) -> None:
    with GroupCommitter(app) as committer, pytest.raises(AggregateNotFoundError):
        committer.submit(increment(uuid4(), 1))


def test_a_tailing_reader_of_the_notification_log_misses_nothing(app: Counters) -> None:
    done = threading.Event()
    seen: list[int] = []

    def tail() -> None:
        last = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            finished = done.is_set()  # read before selecting: a last pass after the end
            page = app.recorder.select_notifications(last, 500, inclusive_of_start=False)
            seen.extend(n.id for n in page)
            if page:
                last = page[-1].id
            elif finished:
                return

    reader = threading.Thread(target=tail)
    reader.start()
    counters = [a_counter(app) for _ in range(4)]
    with (
        GroupCommitter(app, max_batch=8, max_wait_s=0.0005) as committer,
        ThreadPoolExecutor(8) as pool,
    ):
        work = [
            pool.submit(committer.submit, increment(counters[i % 4], 1))
            if i % 2
            else pool.submit(committer.submit, create(lambda: (c := Counter(), c.id)))
            for i in range(400)
        ]
        for f in work:
            f.result()
    done.set()
    reader.join(timeout=30)

    everything = [n.id for n in app.recorder.select_notifications(None, 10_000)]
    assert seen == everything
    assert len(everything) == 4 + 400


def test_a_batch_conflict_with_an_outside_writer_retries_each_command_alone(
    app: Counters, database_url: str
) -> None:
    x, y = a_counter(app), a_counter(app)
    outsider = Counters(env=event_store_env(database_url, pool_size=1))
    interfered = threading.Event()

    def interfere_once(counter: Counter) -> int:
        if not interfered.is_set():
            interfered.set()
            other: Counter = outsider.repository.get(x)
            other.increment(10, "outsider")
            outsider.save(other)
        return counter.increment(1, "y")

    try:
        with GroupCommitter(app, max_batch=3, max_wait_s=10) as committer:
            blind, conditional, other = in_one_batch(
                committer,
                [
                    increment(x, 1, "blind"),
                    increment(x, 1, "conditional", expected_version=1),
                    update(Counter, y, interfere_once),
                ],
            )
            assert committer.retried_batches == 1
    finally:
        outsider.close()

    assert blind.result() == 3  # re-applied to the outsider's newer state: it had no If-Match
    assert isinstance(conditional.exception(), StaleVersionError)
    assert other.result() == 2
    assert stored_tags(app, x) == [(2, "outsider"), (3, "blind")]
    assert stored_tags(app, y) == [(2, "y")]


def test_a_retried_insert_whose_first_try_committed_is_not_applied_twice(
    app: Counters, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert_events: Callable[..., Any] = app.recorder.insert_events

    def commit_then_conflict(*args: Any, **kwargs: Any) -> Any:
        # What the library's retry does when the connection drops after a successful commit.
        insert_events(*args, **kwargs)
        return insert_events(*args, **kwargs)

    counter_id = a_counter(app)
    monkeypatch.setattr(app.recorder, "insert_events", commit_then_conflict)
    with GroupCommitter(app, max_batch=3, max_wait_s=10) as committer:
        futures = in_one_batch(committer, [increment(counter_id, 1, f"n{i}") for i in range(3)])
        assert committer.retried_batches == 0

    assert sorted(f.result() for f in futures) == [2, 3, 4]
    assert [v for v, _ in stored_tags(app, counter_id)] == [2, 3, 4]


def test_two_creates_of_one_id_in_a_batch_commit_the_first_and_fail_the_second(
    app: Counters,
) -> None:
    def create_named() -> tuple[Named, int]:
        named = Named("alice")
        return named, named.version

    other = create(lambda: (c := Counter(), c.version))
    with GroupCommitter(app, max_batch=3, max_wait_s=10) as committer:
        futures = in_one_batch(committer, [create(create_named), create(create_named), other])

    outcomes = [f.exception() for f in futures]
    assert sum(e is None for e in outcomes) == 2
    assert sum(isinstance(e, IntegrityError) for e in outcomes) == 1
    assert app.repository.get(Named.create_id("alice")).version == 1


def test_close_commits_what_is_queued_and_refuses_more(app: Counters) -> None:
    counter_id = a_counter(app)
    started, release = threading.Event(), threading.Event()

    def hold_the_writer(counter: Counter) -> int:
        started.set()
        release.wait(timeout=10)
        return counter.increment(1)

    committer = GroupCommitter(app, max_batch=1, max_wait_s=0)
    pool = ThreadPoolExecutor(8)
    futures = [pool.submit(committer.submit, update(Counter, counter_id, hold_the_writer))]
    assert started.wait(timeout=10)
    futures += [pool.submit(committer.submit, increment(counter_id, 1)) for _ in range(7)]
    deadline = time.monotonic() + 10
    while len(committer._queue) < 7 and time.monotonic() < deadline:
        pass
    closer = threading.Thread(target=committer.close)
    closer.start()
    deadline = time.monotonic() + 10
    while not committer._closed and time.monotonic() < deadline:
        pass
    with pytest.raises(CommitterClosedError):
        committer.submit(increment(counter_id, 1))
    release.set()
    closer.join(timeout=10)
    pool.shutdown(wait=True)

    assert sorted(f.result() for f in futures) == list(range(2, 10))


@pytest.mark.asyncio
async def test_coroutines_await_their_commands_without_blocking_the_loop(
    app: Counters,
) -> None:
    counter_id = a_counter(app)
    with GroupCommitter(app) as committer:
        versions = await asyncio.gather(
            *(committer.submit_async(increment(counter_id, 1)) for _ in range(20))
        )
        with pytest.raises(NegativeStepError):
            await committer.submit_async(increment(counter_id, -1))

    assert sorted(versions) == list(range(2, 22))


def _slow(
    command: Command[Any], started: threading.Event, release: threading.Event
) -> Command[Any]:
    """`command`, whose apply waits (on the writer thread) until `release` is set."""

    def apply(aggregate: Any) -> Any:
        started.set()
        assert release.wait(10), "the test never released the writer"
        return command.apply(aggregate)

    return Command(command.aggregate_id, apply, command.expected_version)


async def past_the_timeout(
    committer: GroupCommitter, command: Command[Any]
) -> tuple[CommitPendingError, threading.Event]:
    """Submit `command` held on the writer until the wait times out; the pending error and
    the event that lets the writer go on."""
    started, release = threading.Event(), threading.Event()
    with pytest.raises(CommitPendingError) as pending:
        await committer.submit_async(_slow(command, started, release))
    assert started.is_set() and not pending.value.outcome.done()
    return pending.value, release


@pytest.mark.asyncio
async def test_a_command_past_the_timeout_is_pending_and_its_outcome_still_arrives(
    app: Counters,
) -> None:
    counter_id = a_counter(app)
    with GroupCommitter(app, submit_timeout_s=0.2) as committer:
        pending, release = await past_the_timeout(committer, increment(counter_id, 5))
        release.set()
        assert await asyncio.wait_for(pending.outcome, 10) == 2  # it did commit
    assert app.repository.get(counter_id).value == 5


@pytest.mark.asyncio
async def test_a_pending_commands_error_arrives_too(app: Counters) -> None:
    counter_id = a_counter(app)
    with GroupCommitter(app, submit_timeout_s=0.2) as committer:
        pending, release = await past_the_timeout(committer, increment(counter_id, -1))
        release.set()
        with pytest.raises(NegativeStepError):
            await asyncio.wait_for(pending.outcome, 10)
    assert app.repository.get(counter_id).version == 1


@pytest.mark.asyncio
async def test_cancelling_a_wait_neither_withdraws_the_command_nor_disturbs_the_others(
    app: Counters,
) -> None:
    counter_id = a_counter(app)
    started, release = threading.Event(), threading.Event()
    with GroupCommitter(app) as committer:
        slow = asyncio.ensure_future(
            committer.submit_async(_slow(increment(counter_id, 1), started, release))
        )
        others = [asyncio.ensure_future(committer.submit_async(increment(counter_id, 1)))
                  for _ in range(5)]  # fmt: skip
        await asyncio.to_thread(started.wait, 10)
        slow.cancel()
        release.set()
        versions = await asyncio.gather(*others)
        with pytest.raises(asyncio.CancelledError):
            await slow
    assert sorted(versions) == [3, 4, 5, 6, 7]
    assert app.repository.get(counter_id).value == 6


def test_the_committer_reports_its_batches_as_metrics(app: Counters) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"application": app.name}) or 0.0

    before = {n: sample(n) for n in ("smartid_group_commit_batch_commands_sum",
                                     "smartid_group_commit_batch_commands_count",
                                     "smartid_group_commit_batch_seconds_count")}  # fmt: skip
    counter_id = a_counter(app)
    with GroupCommitter(app, max_batch=5) as committer:
        in_one_batch(committer, [increment(counter_id, 1) for _ in range(5)])
        committer.submit(increment(counter_id, 1))
    assert sample("smartid_group_commit_batch_commands_sum") - before[
        "smartid_group_commit_batch_commands_sum"] == 6  # fmt: skip
    batches = sample("smartid_group_commit_batch_commands_count")
    assert batches - before["smartid_group_commit_batch_commands_count"] == committer.batches
    assert sample("smartid_group_commit_batch_seconds_count") - before[
        "smartid_group_commit_batch_seconds_count"] == committer.batches  # fmt: skip
    assert sample("smartid_group_commit_queued_commands") == 0


def test_a_callers_callback_hears_each_outcome_on_the_writer_thread(app: Counters) -> None:
    counter_id = a_counter(app)
    heard: list[tuple[Any, type[BaseException] | None, str]] = []
    all_heard = threading.Event()

    def done(result: Any, error: BaseException | None) -> None:
        heard.append((result, type(error) if error else None, threading.current_thread().name))
        if len(heard) == 3:
            all_heard.set()

    with GroupCommitter(app, max_batch=3, max_wait_s=10) as committer:
        committer.submit_then(increment(counter_id, 1), done)
        committer.submit_then(increment(counter_id, -1), done)
        committer.submit_then(increment(counter_id, 1), done)
        assert all_heard.wait(10)
        assert committer.batches == 1

    assert sorted((r, e) for r, e, _ in heard if e is None) == [(2, None), (3, None)]
    assert [(r, e) for r, e, _ in heard if e is not None] == [(None, NegativeStepError)]
    assert {thread for _, _, thread in heard} == {"group-committer"}
    counter: Counter = app.repository.get(counter_id)
    assert (counter.version, counter.value) == (3, 2)
