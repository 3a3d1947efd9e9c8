"""Reading the current state of many aggregates at once: snapshots first, then later events."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import BaseAggregate, CanMutateAggregate, DomainEventProtocol
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

AnyAggregate = BaseAggregate[UUID]
Event = DomainEventProtocol[UUID]


class UnreadableSnapshotError(Exception):
    """A mapper cannot read this snapshot (e.g. it was sealed with a destroyed key).

    Loaders then rebuild the aggregate from its events instead.
    """


@runtime_checkable
class Prefetching(Protocol):
    """A mapper that can prepare, in one go, for decoding many stored events (e.g. their keys)."""

    def prefetch(self, stored_events: Iterable[StoredEvent]) -> None: ...


@dataclass(slots=True)
class History:
    """One aggregate as loaded: its latest readable snapshot, if any, then its later events.

    `error` is why it could not be read (no events are given then): its callers fail with it,
    the other aggregates of the load are unaffected.
    """

    events: list[Event] = field(default_factory=list)
    error: Exception | None = None


def project(events: Iterable[Event]) -> AnyAggregate | None:
    """The aggregate these events (a snapshot first, if any) make; None for no events."""
    # The library's project_aggregate() checks a runtime Protocol on every event, which
    # costs more than the mutation itself.
    aggregate: AnyAggregate | None = None
    for event in events:
        aggregate = cast(CanMutateAggregate[UUID], event).mutate(aggregate)
    return aggregate


class BulkLoader:
    """Loads many aggregates of `app` in one round trip instead of one or two per aggregate.

    On PostgreSQL: one `LATERAL` primary-key lookup per id for the latest snapshot (when the
    application snapshots) and the events after it, then one decode pass (the mapper's
    `prefetch` first, when it has one). On other stores (the in-memory one in tests) each
    aggregate is read through the application's snapshot and event stores.
    """

    def __init__(self, app: Application[UUID]) -> None:
        self.app = app
        self._events_sql: Composed | None = None
        self._latest_sql: Composed | None = None
        recorder = app.recorder
        if not isinstance(recorder, PostgresAggregateRecorder):
            return
        self._datastore = recorder.datastore
        id_type = SQL(recorder.datastore.originator_id_type)
        events = SQL("{schema}.{table}").format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )
        # LATERAL keeps each lookup on the primary key (originator_id, originator_version); a
        # plain join on unnest() can pick a hash join over a sequential scan of the table.
        # The ids are a binary array: psycopg dumps it in C, not element by element in Python.
        self._events_sql = SQL(
            "SELECT k.id, e.originator_version, e.topic, e.state"
            " FROM unnest(%b::{id_type}[]) AS k(id) CROSS JOIN LATERAL ("
            "  SELECT * FROM {events} AS e WHERE e.originator_id = k.id"
            "  ORDER BY e.originator_version) AS e"
        ).format(id_type=id_type, events=events)
        snapshots = app.snapshots.recorder if app.snapshots is not None else None
        if isinstance(snapshots, PostgresAggregateRecorder):
            # The latest snapshot and the events after it, in one round trip.
            self._latest_sql = SQL(
                "SELECT k.id, x.originator_version, x.topic, x.state, x.is_snapshot"
                " FROM unnest(%b::{id_type}[]) AS k(id) CROSS JOIN LATERAL ("
                "  (SELECT s.originator_version, s.topic, s.state, true AS is_snapshot"
                "   FROM {snapshots} AS s WHERE s.originator_id = k.id"
                "   ORDER BY s.originator_version DESC LIMIT 1)"
                "  UNION ALL"
                "  (SELECT e.originator_version, e.topic, e.state, false"
                "   FROM {events} AS e WHERE e.originator_id = k.id"
                "   AND e.originator_version > COALESCE((SELECT max(m.originator_version)"
                "    FROM {snapshots} AS m WHERE m.originator_id = k.id), 0)"
                "   ORDER BY e.originator_version)"
                " ) AS x"
            ).format(
                id_type=id_type,
                events=events,
                snapshots=SQL("{schema}.{table}").format(
                    schema=Identifier(snapshots.datastore.schema),
                    table=Identifier(snapshots.events_table_name),
                ),
            )

    @property
    def is_bulk(self) -> bool:
        """Whether loads are bulk queries (PostgreSQL), not reads per aggregate."""
        return self._events_sql is not None and (
            self.app.snapshots is None or self._latest_sql is not None
        )

    def histories(self, ids: Collection[UUID]) -> dict[UUID, History]:
        """Each aggregate's latest readable snapshot and later events, decoded, for every id.

        An aggregate that does not exist has no events. An unreadable snapshot is skipped (the
        aggregate is replayed from all its events); an aggregate that cannot be decoded at all
        gets its error, and the others are loaded as usual.
        """
        if not ids:
            return {}
        if not self.is_bulk:
            return {i: self._history_of(i) for i in ids}
        assert self._events_sql is not None
        id_list = list(ids)
        mapper = self.app.mapper
        with (
            self._datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            snapshots: dict[UUID, StoredEvent] = {}
            events: list[StoredEvent] = []
            if self._latest_sql is not None:
                curs.execute(self._latest_sql, (id_list,), prepare=True)
                for row in curs.fetchall():
                    if row[4]:
                        snapshots[row[0]] = _stored(row)
                    else:
                        events.append(_stored(row))
            else:
                curs.execute(self._events_sql, (id_list,), prepare=True)
                events = [_stored(row) for row in curs.fetchall()]
            if isinstance(mapper, Prefetching):
                mapper.prefetch([*snapshots.values(), *events])
            loaded = {i: History() for i in id_list}
            unreadable: list[UUID] = []
            for aggregate_id, snapshot in snapshots.items():
                try:
                    loaded[aggregate_id].events.append(mapper.to_domain_event(snapshot))
                except UnreadableSnapshotError:
                    unreadable.append(aggregate_id)
            if unreadable:
                # Their snapshots' versions bounded the query above: read their whole history.
                curs.execute(self._events_sql, (unreadable,), prepare=True)
                replayed: dict[Any, list[StoredEvent]] = {i: [] for i in unreadable}
                for row in curs.fetchall():
                    replayed[row[0]].append(_stored(row))
                events = [e for e in events if e.originator_id not in replayed]
                events += [e for history in replayed.values() for e in history]
        for stored in events:
            history = loaded[cast(UUID, stored.originator_id)]
            if history.error is not None:
                continue
            try:
                history.events.append(mapper.to_domain_event(stored))
            except Exception as error:  # this aggregate fails, not the load
                history.events, history.error = [], error
        return loaded

    def aggregates(self, ids: Collection[UUID]) -> dict[UUID, AnyAggregate]:
        """The aggregates with these ids that exist, by id; raises an aggregate's error."""
        loaded: dict[UUID, AnyAggregate] = {}
        for aggregate_id, history in self.histories(ids).items():
            if history.error is not None:
                raise history.error
            aggregate = project(history.events)
            if aggregate is not None:
                loaded[aggregate_id] = aggregate
        return loaded

    def _history_of(self, aggregate_id: UUID) -> History:
        app = self.app
        try:
            snapshots: list[Event] = []
            if app.snapshots is not None:
                with contextlib.suppress(UnreadableSnapshotError):
                    snapshots = list(app.snapshots.get(aggregate_id, desc=True, limit=1))
            gt = snapshots[0].originator_version if snapshots else None
            return History([*snapshots, *app.events.get(aggregate_id, gt=gt)])
        except Exception as error:  # this aggregate fails, not the load
            return History([], error)


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(
        originator_id=row[0], originator_version=row[1], topic=row[2], state=bytes(row[3])
    )
