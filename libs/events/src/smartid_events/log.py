"""Reading a service's own event log (eventsourcing's notification log) and serving it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import orjson
from eventsourcing.persistence import StoredEvent

from smartid_events.envelope import JSON_OPTIONS, CloudEvent

# Positions are PostgreSQL bigints.
MAX_POSITION = 2**63 - 1

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class LogRow:
    """One row of the notification log, as stored by eventsourcing."""

    notification_id: int
    originator_id: UUID | str
    originator_version: int
    topic: str
    state: bytes


class Translator(Protocol):
    """Turns a stored row into the event it publishes, or None when it is not published."""

    def __call__(self, row: LogRow, /) -> CloudEvent | None: ...


class DomainEventLike(Protocol):
    @property
    def originator_id(self) -> Any: ...


class MapperLike(Protocol):
    def to_domain_event(self, stored_event: StoredEvent, /) -> Any: ...


class ApplicationLike(Protocol):
    @property
    def mapper(self) -> MapperLike: ...


class _Page:
    """The rows being translated together (see `translate_rows`)."""

    __slots__ = ("rows",)

    def __init__(self, rows: Sequence[LogRow]) -> None:
        self.rows = rows


# Set by `translate_rows` while a page is translated: a translator may prepare the whole page
# (fetch its rows' keys in one query) on its first row, through wrappers that only pass rows.
_PAGE: ContextVar[_Page | None] = ContextVar("smartid_log_page", default=None)


def translate_rows(translator: Translator, rows: Sequence[LogRow]) -> list[CloudEvent | None]:
    """`translator` applied to each row, telling it the rows come as one page."""
    token = _PAGE.set(_Page(rows))
    try:
        return [translator(row) for row in rows]
    finally:
        _PAGE.reset(token)


def events_table(application_name: str) -> str:
    """eventsourcing 9.5 names an application's events table `<name lowercased>_events`."""
    return checked_identifier(f"{application_name.lower()}_events")


def checked_identifier(name: str) -> str:
    """Table names are interpolated into SQL: accept plain lower-case identifiers only."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def translator_from_application(
    app: ApplicationLike, publish: Callable[[Any, int], CloudEvent | None]
) -> Translator:
    """A translator that decodes rows with the application's mapper and asks `publish`.

    `publish(domain_event, position)` is the service's published-language function. When the
    mapper has `prefetch(rows)` (contract-svc's keys: it reads each row's `originator_id` and
    `topic`), a page translated by `translate_rows` has its keys fetched in one query before
    its first row is decoded.
    """
    prefetch: Callable[[Sequence[LogRow]], None] | None = getattr(app.mapper, "prefetch", None)
    prepared: list[_Page | None] = [None]

    def translate(row: LogRow) -> CloudEvent | None:
        if prefetch is not None:
            page = _PAGE.get()
            if page is not None and page is not prepared[0]:
                prepared[0] = page
                prefetch(page.rows)
        stored = StoredEvent(
            originator_id=row.originator_id,
            originator_version=row.originator_version,
            topic=row.topic,
            state=row.state,
        )
        return publish(app.mapper.to_domain_event(stored), row.notification_id)

    return translate


async def read_log(
    conn: asyncpg.Connection[Any] | asyncpg.Pool[Any], table: str, after: int, limit: int
) -> list[LogRow]:
    """Rows with `notification_id > after`, oldest first. Ids have gaps: never wait for one."""
    rows = await conn.fetch(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        f"FROM {checked_identifier(table)} WHERE notification_id > $1 "
        "ORDER BY notification_id LIMIT $2",
        after,
        limit,
    )
    return [_log_row(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]


def _log_row(
    notification_id: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> LogRow:
    """`LogRow(...)` without the frozen dataclass's `object.__setattr__` per field (pages of
    1,000 rows: ~0.5 us a row)."""
    row = object.__new__(LogRow)
    row.__dict__.update(
        notification_id=notification_id,
        originator_id=originator_id,
        originator_version=originator_version,
        topic=topic,
        state=state,
    )
    return row


async def log_head(conn: asyncpg.Connection[Any] | asyncpg.Pool[Any], table: str) -> int:
    """The highest notification id in the log (0 when empty or not yet created)."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    if not exists:
        return 0
    head = await conn.fetchval(f"SELECT max(notification_id) FROM {checked_identifier(table)}")
    return int(head or 0)


@dataclass(frozen=True)
class LogPage:
    """A page of published events and the position to ask for the next page after."""

    events: list[CloudEvent]
    next_after: int


async def read_published(
    conn: asyncpg.Connection[Any] | asyncpg.Pool[Any],
    table: str,
    translator: Translator,
    after: int,
    limit: int,
) -> LogPage:
    """The published form of up to `limit` log rows after `after` (unpublished rows skipped)."""
    rows = await read_log(conn, table, after, limit)
    events = [e for e in translate_rows(translator, rows) if e is not None]
    next_after = rows[-1].notification_id if rows else after
    return LogPage(events=events, next_after=next_after)


def page_json(page: LogPage) -> bytes:
    """A page as the events endpoint's JSON body."""
    return orjson.dumps(
        {"events": [e.json_ready() for e in page.events], "next_after": page.next_after},
        option=JSON_OPTIONS,
    )


def events_router(
    pool: Callable[[], Awaitable[asyncpg.Pool[Any]] | asyncpg.Pool[Any]],
    table: str,
    translator: Translator,
    *,
    max_limit: int = 1000,
    dependencies: Sequence[Any] = (),
) -> Any:
    """A FastAPI router serving `GET /v1/events?after=N&limit=M` over the service's own log.

    `pool` returns the asyncpg pool (built in the app's lifespan, so it is looked up per
    request); `dependencies` carries the service's authentication.
    The body is `{"events": [CloudEvent, ...], "next_after": N}`, encoded with orjson (FastAPI's
    encoder walked every value of a page of 1,000 events again).
    """
    from fastapi import APIRouter, Depends, Query, Response

    router = APIRouter(dependencies=[Depends(d) for d in dependencies])

    @router.get(
        "/v1/events",
        response_class=Response,
        response_model=None,
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    async def get_events(
        after: int = Query(0, ge=0, le=MAX_POSITION),
        limit: int = Query(100, ge=1, le=max_limit),
    ) -> Response:
        got = pool()
        resolved = got if isinstance(got, asyncpg.Pool) else await got
        page = await read_published(resolved, table, translator, after, limit)
        return Response(page_json(page), media_type="application/json")

    return router


@dataclass(frozen=True)
class LogSource:
    """What the relay and replay need of a service: its events table and its translator."""

    table: str
    translator: Translator


class Projection(Protocol):
    """A read model rebuilt from a service's log: `reset` empties it, `apply` folds rows in."""

    table: str

    async def reset(self) -> None: ...

    async def apply(self, rows: Sequence[LogRow]) -> None: ...


async def rebuild_read_model(
    projection: Projection,
    pool: asyncpg.Pool[Any],
    *,
    batch_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Reset the read model and fold the whole log into it; return the rows applied.

    `on_progress(position, head)` is called after each batch.
    """
    await projection.reset()
    head = await log_head(pool, projection.table)
    position, applied = 0, 0
    while position < head:
        rows = await read_log(pool, projection.table, position, batch_size)
        if not rows:
            break
        await projection.apply(rows)
        applied += len(rows)
        position = rows[-1].notification_id
        if on_progress is not None:
            on_progress(position, head)
    return applied


def service_events_router(app: Any, table: str) -> Any:
    """`GET /v1/events` for a service app whose lifespan sets `app.state.log_pool` (asyncpg)
    and `app.state.translate` (its translator), behind the `events:read` scope."""
    from smartid_events.auth import require

    def pool() -> asyncpg.Pool[Any]:
        resolved: asyncpg.Pool[Any] = app.state.log_pool
        return resolved

    def translate(row: LogRow) -> CloudEvent | None:
        translator: Translator = app.state.translate
        return translator(row)

    return events_router(pool, table, translate, dependencies=[require("events:read")])
