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
from psycopg.sql import SQL, Composable, Composed, Identifier

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
    library retries them. The lock is held for no client round trip. Calls with tracking are
    `PgProcessRecorder`'s (below); any other keyword keeps the library's transaction, with
    column arrays for the insert.
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
        self._lock_wait = f"{datastore.lock_timeout}s"
        self._call_insert = self._define_insert_function(f"{events_table_name}_insert")
        schema = Identifier(datastore.schema)
        table = Identifier(events_table_name)
        id_type = SQL(datastore.originator_id_type)
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
            ids = self._call_insert_function(self._call_insert, stored_events)
        return ids

    def _define_insert_function(
        self, name: str, more_arguments: Sequence[str] = (), first: Composable = SQL("")
    ) -> Composed:
        """Have `create_table` create `name(ids, versions, topics, states, lock_wait
        <more_arguments>)`: in its statement's own transaction it sets `lock_timeout`, runs
        `first`, takes the table's EXCLUSIVE lock, NOTIFYs and inserts, returning the
        notification ids in insert order. Returns its call, with one `%s` per argument more."""
        self.check_identifier_length(name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        function = Identifier(name)
        id_type = SQL(self.datastore.originator_id_type)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[],"
                " lock_wait text" + "".join(f", {a}" for a in more_arguments) + ")"
                " RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$"
                " BEGIN"
                "  PERFORM set_config('lock_timeout', lock_wait, true);"
                " {first}"
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
                first=first,
                channel=Identifier(self.channel_name),
            )
        )
        more = ", %s" * len(more_arguments)
        return SQL(
            "SELECT * FROM {schema}.{function}("
            "%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[], %s" + more + ")"
        ).format(schema=schema, function=function, id_type=id_type)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _call_insert_function(
        self, call: Composed, stored_events: Sequence[StoredEvent], *more: Any
    ) -> list[int]:
        # The datastore's connection turns psycopg's errors into the library's.
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            assert conn.autocommit  # the statement is its own transaction
            params = (*columns(stored_events), self._lock_wait, *more)
            curs.execute(call, params, prepare=True)
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
        self._call_insert_tracked = self._define_insert_function(
            f"{events_table_name}_insert_tracked",
            ("tracking_name text", "tracking_id bigint"),
            first=SQL(
                "  INSERT INTO {schema}.{tracking} AS k VALUES (tracking_name, tracking_id)"
                "   ON CONFLICT (application_name) DO UPDATE SET notification_id = tracking_id"
                "   WHERE k.notification_id < tracking_id;"
                "  IF NOT FOUND THEN"
                "   RAISE unique_violation USING MESSAGE ="
                "    format('Failed to record tracking for %s %s', tracking_name, tracking_id);"
                "  END IF;"
            ).format(schema=Identifier(datastore.schema), tracking=Identifier(tracking_table_name)),
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        others = any(v is not None for k, v in kwargs.items() if k != "tracking")
        ids: Sequence[int] | None
        if tracking is None or not stored_events or others or self._call_insert_tracked is None:
            ids = super().insert_events(stored_events, **kwargs)
        else:
            ids = self._call_insert_function(
                self._call_insert_tracked,
                stored_events,
                tracking.application_name,
                tracking.notification_id,
            )
        return ids
