"""Our PostgreSQL recorders: eventsourcing's, with an event insert that is one cheap statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresProcessRecorder,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier

# What `event_store_env` names (APPLICATION_RECORDER_TOPIC, PROCESS_RECORDER_TOPIC).
APPLICATION_RECORDER_TOPIC = "smartid_events.pgstore:PgApplicationRecorder"
PROCESS_RECORDER_TOPIC = "smartid_events.pgstore:PgProcessRecorder"

Columns = tuple[list[Any], list[int], list[str], list[bytes]]


def columns(stored_events: Sequence[StoredEvent]) -> Columns:
    """The events as four column arrays: psycopg dumps each one in C, in binary."""
    return (
        [e.originator_id for e in stored_events],
        [e.originator_version for e in stored_events],
        [e.topic for e in stored_events],
        [e.state for e in stored_events],
    )


class PgApplicationRecorder(PostgresApplicationRecorder):
    """`PostgresApplicationRecorder` (eventsourcing 9.5.6, pinned) with a cheaper insert.

    The library inserts `unnest(%s::stored_event_type[])`, an array of a composite type that
    psycopg dumps field by field in Python, in a pipelined transaction of five statements. Here
    a batch is one call of a function of ours, `<table>_insert(ids, versions, topics, states,
    lock_wait)`, with four binary column arrays: in its statement's own transaction it sets
    `lock_timeout` locally, takes the table's EXCLUSIVE lock (notification ids are issued in
    commit order, as with the library), NOTIFYs the channel and inserts, returning the
    notification ids in insert order. A duplicate (originator_id, originator_version) fails
    the whole batch with the library's `IntegrityError`; connection errors are retried as the
    library retries them. The lock is held for no client round trip. Calls with tracking (the
    process recorder) keep the library's transaction, with column arrays for the insert.
    `POSTGRES_ENABLE_DB_FUNCTIONS` (the library's lock-less function) is refused.
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
    ) -> None:
        if datastore.enable_db_functions:
            # The library's function inserts without the table lock (and drops tracking).
            raise ProgrammingError("POSTGRES_ENABLE_DB_FUNCTIONS must stay off (ADR 0021)")
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_function_name = f"{events_table_name}_insert"
        self.check_identifier_length(self.insert_function_name)
        schema = Identifier(datastore.schema)
        table = Identifier(events_table_name)
        function = Identifier(self.insert_function_name)
        id_type = SQL(datastore.originator_id_type)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[],"
                " lock_wait text)"
                " RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$"
                " BEGIN"
                "  PERFORM set_config('lock_timeout', lock_wait, true);"
                "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;"
                "  NOTIFY {channel};"
                "  RETURN QUERY INSERT INTO {schema}.{table} AS t"
                "   (originator_id, originator_version, topic, state)"
                "   SELECT * FROM unnest(ids, versions, topics, states)"
                "   RETURNING t.notification_id;"
                " END;"
                " $BODY$"
            ).format(
                schema=schema,
                function=function,
                table=table,
                id_type=id_type,
                channel=Identifier(self.channel_name),
            )
        )
        self._lock_wait = f"{datastore.lock_timeout}s"
        self._call_insert: Composed = SQL(
            "SELECT * FROM {schema}.{function}("
            "%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[], %s)"
        ).format(schema=schema, function=function, id_type=id_type)
        self._insert_columns: Composed = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(schema=schema, table=table, id_type=id_type)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids: Sequence[int] | None
        if not stored_events or any(value is not None for value in kwargs.values()):
            # E.g. tracking to record in the same transaction: the library's path (retried
            # there), whose insert is `_insert_stored_events` below.
            ids = super().insert_events(stored_events, **kwargs)
        else:
            ids = self._insert_in_one_statement(stored_events)
        return ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_in_one_statement(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        # The datastore's connection turns psycopg's errors into the library's.
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            assert conn.autocommit  # the statement is its own transaction
            params = (*columns(stored_events), self._lock_wait)
            curs.execute(self._call_insert, params, prepare=True)
            return [row[0] for row in curs.fetchall()]

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        # Inside the library's transaction (`insert_events` with tracking).
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self._insert_columns, columns(stored_events), prepare=True)


class PgProcessRecorder(PostgresProcessRecorder, PgApplicationRecorder):
    """`PostgresProcessRecorder` with `PgApplicationRecorder`'s insert, and events with their
    tracking in one statement too.

    With single-row tracking (the library's default) `<table>_insert_tracked(ids, versions,
    topics, states, lock_wait, tracking_name, tracking_id)` records the position as the
    library does — a position that does not advance is refused with the library's
    `IntegrityError` — then takes the table's lock, NOTIFYs and inserts, all in the
    statement's own transaction: one round trip where the library's pipelined transaction
    waits several times. A tracking without events, and multi-row tracking, keep the
    library's transaction.
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
        )
        self._call_insert_tracked: Composed | None = None
        if not datastore.single_row_tracking:
            return
        function_name = f"{events_table_name}_insert_tracked"
        self.check_identifier_length(function_name)
        schema = Identifier(datastore.schema)
        function = Identifier(function_name)
        id_type = SQL(datastore.originator_id_type)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[],"
                " lock_wait text, tracking_name text, tracking_id bigint)"
                " RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$"
                " BEGIN"
                "  PERFORM set_config('lock_timeout', lock_wait, true);"
                "  INSERT INTO {schema}.{tracking} AS k VALUES (tracking_name, tracking_id)"
                "   ON CONFLICT (application_name) DO UPDATE SET notification_id = tracking_id"
                "   WHERE k.notification_id < tracking_id;"
                "  IF NOT FOUND THEN"
                "   RAISE unique_violation USING MESSAGE ="
                "    format('Failed to record tracking for %s %s', tracking_name, tracking_id);"
                "  END IF;"
                "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;"
                "  NOTIFY {channel};"
                "  RETURN QUERY INSERT INTO {schema}.{table} AS t"
                "   (originator_id, originator_version, topic, state)"
                "   SELECT * FROM unnest(ids, versions, topics, states)"
                "   RETURNING t.notification_id;"
                " END;"
                " $BODY$"
            ).format(
                schema=schema,
                function=function,
                tracking=Identifier(tracking_table_name),
                table=Identifier(events_table_name),
                id_type=id_type,
                channel=Identifier(self.channel_name),
            )
        )
        self._call_insert_tracked = SQL(
            "SELECT * FROM {schema}.{function}("
            "%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[], %s, %s, %s)"
        ).format(schema=schema, function=function, id_type=id_type)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        others = any(v is not None for k, v in kwargs.items() if k != "tracking")
        ids: Sequence[int] | None
        if tracking is None or not stored_events or others or self._call_insert_tracked is None:
            ids = super().insert_events(stored_events, **kwargs)
        else:
            ids = self._insert_tracked_in_one_statement(stored_events, tracking)
        return ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_tracked_in_one_statement(
        self, stored_events: Sequence[StoredEvent], tracking: Tracking
    ) -> list[int]:
        assert self._call_insert_tracked is not None
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            assert conn.autocommit  # the statement is its own transaction
            params = (
                *columns(stored_events),
                self._lock_wait,
                tracking.application_name,
                tracking.notification_id,
            )
            curs.execute(self._call_insert_tracked, params, prepare=True)
            return [row[0] for row in curs.fetchall()]
