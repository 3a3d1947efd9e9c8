"""The bulk loader: what the repository would give, in one query, with its failure rules."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, Snapshot, event
from eventsourcing.persistence import Mapper, StoredEvent

from smartid_events.bulkload import BulkLoader, UnreadableSnapshotError
from smartid_events.store import event_store_env


class Tally(Aggregate):
    @event("Opened")
    def __init__(self) -> None:
        self.total = 0

    @event("Added")
    def add(self, amount: int) -> None:
        self.total += amount


class RecordingMapper(Mapper[UUID]):
    """Records its prefetches; can refuse to read snapshots, as a destroyed key does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefetched: list[list[StoredEvent]] = []
        self.snapshots_readable = True

    def prefetch(self, stored_events: Iterable[StoredEvent]) -> None:
        self.prefetched.append(list(stored_events))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        if not self.snapshots_readable and "Snapshot" in stored_event.topic:
            raise UnreadableSnapshotError(stored_event.originator_id)
        return super().to_domain_event(stored_event)


class Tallies(Application[UUID]):
    snapshotting_intervals = {Tally: 3}  # noqa: RUF012

    def construct_mapper(self) -> Mapper[UUID]:
        return RecordingMapper(transcoder=self.construct_transcoder())


@pytest.fixture(params=["postgres", "memory"])
def tallies(request: pytest.FixtureRequest) -> Iterator[Tallies]:
    if request.param == "postgres":
        env = event_store_env(request.getfixturevalue("database_url"))
    else:
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    app = Tallies(env=env)
    yield app
    app.close()


def a_tally(app: Tallies, *amounts: int) -> UUID:
    tally = Tally()
    for amount in amounts:
        tally.add(amount)
    app.save(tally)  # a snapshot at versions 3, 6, ...
    return tally.id


def mapper_of(app: Tallies) -> RecordingMapper:
    assert isinstance(app.mapper, RecordingMapper)
    return app.mapper


def test_the_loaded_aggregates_are_the_repositorys_and_missing_ones_are_absent(
    tallies: Tallies,
) -> None:
    snapshotted, short = a_tally(tallies, 1, 2, 3, 4, 5, 6, 7), a_tally(tallies, 10)
    missing = uuid4()
    loaded = BulkLoader(tallies).aggregates([snapshotted, short, missing])
    assert set(loaded) == {snapshotted, short}
    for tally_id, tally in loaded.items():
        stored: Tally = tallies.repository.get(tally_id)
        assert (tally.version, tally.total) == (stored.version, stored.total)
    assert (loaded[snapshotted].version, loaded[snapshotted].total) == (8, 28)


def test_a_history_starts_at_the_latest_snapshot(tallies: Tallies) -> None:
    tally_id = a_tally(tallies, 1, 2, 3, 4, 5, 6, 7)
    histories = BulkLoader(tallies).histories([tally_id])
    events = histories[tally_id].events
    assert isinstance(events[0], Snapshot)
    assert [e.originator_version for e in events] == [6, 7, 8]


def test_an_unreadable_snapshot_is_replayed_from_all_the_events(tallies: Tallies) -> None:
    tally_id, other = a_tally(tallies, 1, 2, 3, 4, 5, 6, 7), a_tally(tallies, 1, 2, 3)
    mapper_of(tallies).snapshots_readable = False
    histories = BulkLoader(tallies).histories([tally_id, other])
    assert [e.originator_version for e in histories[tally_id].events] == list(range(1, 9))
    assert [e.originator_version for e in histories[other].events] == list(range(1, 5))
    assert not any(isinstance(e, Snapshot) for h in histories.values() for e in h.events)


def test_an_aggregate_that_cannot_be_decoded_fails_alone(database_url: str) -> None:
    app = Tallies(env=event_store_env(database_url))
    try:
        broken, intact = a_tally(app, 1), a_tally(app, 2)
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE tallies_events SET state = 'not json' WHERE originator_id = %s"
                " AND originator_version = 2",
                (broken,),
            )
        loader = BulkLoader(app)
        histories = loader.histories([broken, intact])
        assert histories[broken].error is not None and histories[broken].events == []
        assert histories[intact].error is None and len(histories[intact].events) == 2
        with pytest.raises(type(histories[broken].error)):
            loader.aggregates([intact, broken])
    finally:
        app.close()


def test_a_bulk_load_prefetches_everything_it_decodes_at_once(
    database_url: str,
) -> None:
    app = Tallies(env=event_store_env(database_url))
    try:
        ids = [a_tally(app, 1, 2, 3, 4), a_tally(app, 5), uuid4()]
        loader = BulkLoader(app)
        assert loader.is_bulk
        mapper_of(app).prefetched.clear()
        loader.histories(ids)
        (prefetched,) = mapper_of(app).prefetched
        assert sorted((e.originator_id, e.originator_version) for e in prefetched) == sorted(
            [(ids[0], 3), (ids[0], 4), (ids[0], 5), (ids[1], 1), (ids[1], 2)]
        )
    finally:
        app.close()
