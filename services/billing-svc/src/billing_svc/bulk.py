"""Saving many new events by COPY (loading many aggregates: `smartid_events.bulkload`)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Composed, Identifier


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
