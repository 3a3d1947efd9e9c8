"""Loading many aggregates in one query each for snapshots and events; saving them by COPY."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier


class BulkLoader:
    """Reads the current state of many aggregates: one round trip per batch instead of one per
    aggregate, which is what bounded billing runs (ADR 0012). Falls back to the repository on
    stores other than PostgreSQL (the in-memory one in tests)."""

    def __init__(self, app: Application[UUID]) -> None:
        self.app = app
        self._events_sql: Composed | None = None
        self._snapshots_sql: Composed | None = None
        recorder = app.recorder
        if not isinstance(recorder, PostgresAggregateRecorder):
            return
        self._recorder = recorder
        id_type = SQL(recorder.datastore.originator_id_type)
        # LATERAL keeps each lookup on the primary key (originator_id, originator_version).
        self._events_sql = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state"
            " FROM unnest(%s::{id_type}[], %s::bigint[]) AS k(id, gt)"
            " CROSS JOIN LATERAL (SELECT * FROM {schema}.{table} AS s"
            "  WHERE s.originator_id = k.id AND s.originator_version > k.gt"
            "  ORDER BY s.originator_version) AS e"
        ).format(
            id_type=id_type,
            schema=Identifier(recorder.datastore.schema),
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

    @property
    def is_bulk(self) -> bool:
        return self._events_sql is not None and (
            self.app.snapshots is None or self._snapshots_sql is not None
        )

    def load(self, ids: Sequence[UUID]) -> dict[UUID, Aggregate]:
        """The aggregates with these ids that exist, by id."""
        if not ids:
            return {}
        if not self.is_bulk:
            return {i: self._load_one(i) for i in ids if self._exists(i)}
        to_domain = self.app.mapper.to_domain_event
        id_list = list(ids)
        events: dict[UUID, list[Any]] = {i: [] for i in id_list}
        gts = [0] * len(id_list)
        with (
            self._recorder.datastore.get_connection() as conn,
            conn.cursor(row_factory=dict_row) as curs,
        ):
            if self._snapshots_sql is not None:
                curs.execute(self._snapshots_sql, (id_list,), prepare=True)
                index = {i: n for n, i in enumerate(id_list)}
                for row in curs.fetchall():
                    events[row["originator_id"]].append(to_domain(_stored(row)))
                    gts[index[row["originator_id"]]] = row["originator_version"]
            assert self._events_sql is not None
            curs.execute(self._events_sql, (id_list, gts), prepare=True)
            for row in curs.fetchall():
                events[row["originator_id"]].append(to_domain(_stored(row)))
        loaded: dict[UUID, Aggregate] = {}
        for aggregate_id, history in events.items():
            aggregate: Any = None
            for domain_event in history:
                aggregate = domain_event.mutate(aggregate)
            if aggregate is not None:
                loaded[aggregate_id] = aggregate
        return loaded

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.app.recorder.select_events(aggregate_id, limit=1))

    def _load_one(self, aggregate_id: UUID) -> Aggregate:
        aggregate: object = self.app.repository.get(aggregate_id)
        assert isinstance(aggregate, Aggregate)
        return aggregate


def _stored(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )


class BulkWriter:
    """Inserts a batch of new events with one binary COPY instead of the library's
    `INSERT … SELECT FROM unnest(composite[])`, whose parameter is dumped row by row in Python
    (the larger part of a billing run's insert cost).

    Same guarantees as `PostgresApplicationRecorder.insert_events` (eventsourcing 9.5.6,
    pinned): one transaction on the recorder's own connection pool, the table's EXCLUSIVE lock
    taken first, so notification ids are issued in commit order and a relay tailing the log
    never passes a gap, a NOTIFY for listeners, and a duplicate (id, version) raised as the
    library's `IntegrityError`. Notification ids are not returned: nothing in billing-svc
    follows its own log in-process (the relay reads the table). `is_bulk` is False on other
    stores, where callers use the recorder."""

    def __init__(self, app: Application[UUID]) -> None:
        recorder = app.recorder
        self._copy_sql: Composed | None = None
        if not isinstance(recorder, PostgresApplicationRecorder):
            return
        self._recorder = recorder
        self._types = [recorder.datastore.originator_id_type, "int8", "text", "bytea"]
        self._copy_sql = SQL(
            "COPY {schema}.{table} (originator_id, originator_version, topic, state)"
            " FROM STDIN (FORMAT BINARY)"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )
        self._notify_sql = SQL("NOTIFY {0}").format(Identifier(recorder.channel_name))

    @property
    def is_bulk(self) -> bool:
        return self._copy_sql is not None

    def insert(self, stored_events: Sequence[StoredEvent]) -> None:
        assert self._copy_sql is not None
        if not stored_events:
            return
        # The datastore's connection turns psycopg's IntegrityError into the library's.
        with (
            self._recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            for statement in self._recorder.lock_table_statements:
                curs.execute(statement, prepare=True)
            curs.execute(self._notify_sql)
            with curs.copy(self._copy_sql) as copy:
                copy.set_types(self._types)
                for e in stored_events:
                    copy.write_row((e.originator_id, e.originator_version, e.topic, e.state))
