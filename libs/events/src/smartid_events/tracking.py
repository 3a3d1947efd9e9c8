"""Positions: the relay's published position and consumers' exactly-once tracking styles.

A consumer records `(tracking name, position)` in the transaction of its effects; the name is
per consumer, upstream service and partition, since positions only grow within one partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import asyncpg
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Tracking

from smartid_events.envelope import CloudEvent
from smartid_events.pgstore import PROCESS_RECORDER_TOPIC

POSITIONS_TABLE = "smartid_positions"

CREATE_POSITIONS = f"""
CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} (
    name text PRIMARY KEY,
    position bigint NOT NULL
)
"""

# No row comes back when the stored position is already at or past `position`: a duplicate.
ADVANCE_POSITION = f"""
INSERT INTO {POSITIONS_TABLE} (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position
WHERE {POSITIONS_TABLE}.position < EXCLUDED.position
RETURNING position
"""

Ctx = TypeVar("Ctx")
Handler = Callable[[CloudEvent, Ctx], Awaitable[None]]


async def ensure_positions_table(conn: asyncpg.Connection[Any] | asyncpg.Pool[Any]) -> None:
    await conn.execute(CREATE_POSITIONS)


async def get_position(conn: asyncpg.Connection[Any] | asyncpg.Pool[Any], name: str) -> int:
    value = await conn.fetchval(f"SELECT position FROM {POSITIONS_TABLE} WHERE name = $1", name)
    return int(value or 0)


async def advance_position(
    conn: asyncpg.Connection[Any] | asyncpg.Pool[Any], name: str, position: int
) -> bool:
    """Move `name` forward to `position`; False when it was already there or beyond."""
    return await conn.fetchval(ADVANCE_POSITION, name, position) is not None


class Tracker(Protocol[Ctx]):  # type: ignore[misc]
    """Applies a handler's effects and records the position in one transaction, exactly once."""

    async def apply(
        self, name: str, position: int, event: CloudEvent, handler: Handler[Ctx]
    ) -> bool:
        """True when the effects were applied now, False when `position` was handled before."""
        ...


@dataclass
class SqlTracker:
    """Tracking style (a): the handler's effects and the position share an asyncpg transaction.

    The handler gets the `asyncpg.Connection` whose transaction commits both.
    `after_effect` is a test hook called between the handler and the commit.
    """

    pool: asyncpg.Pool[Any]
    after_effect: Callable[[], None] | None = None

    async def setup(self) -> None:
        await ensure_positions_table(self.pool)

    async def apply(
        self,
        name: str,
        position: int,
        event: CloudEvent,
        handler: Handler[asyncpg.Connection[Any]],
    ) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await advance_position(conn, name, position):
                return False
            await handler(event, conn)
            if self.after_effect is not None:
                self.after_effect()
        return True


@dataclass
class ProcessContext:
    """What an event-sourced handler gets: save its aggregates with `ctx.save(...)`.

    `save` runs in a worker thread (the application is synchronous) and stores the new events
    and the tracking in one transaction (eventsourcing's process recorder).
    """

    app: Application[Any]
    tracking: Tracking
    saved: bool = field(default=False)

    async def save(self, *objs: Any) -> None:
        if self.saved:
            raise RuntimeError("one save per handled event: the tracking is recorded once")
        events = [e for obj in objs for e in obj.collect_events()]
        await asyncio.to_thread(self.app.events.put, events, tracking=self.tracking)
        self.saved = True


@dataclass
class EventSourcedTracker:
    """Tracking style (b): an eventsourcing application whose recorder is a process recorder.

    The application's env must set `PERSISTENCE_MODULE=eventsourcing.postgres` with
    `APPLICATION_RECORDER_TOPIC` naming a process recorder (`process_recorder_env` names
    ours, `smartid_events.pgstore:PgProcessRecorder`). A handler that saves nothing still has
    its position recorded.
    """

    app: Application[Any]

    async def apply(
        self,
        name: str,
        position: int,
        event: CloudEvent,
        handler: Handler[ProcessContext],
    ) -> bool:
        recorder: Any = self.app.recorder
        if await asyncio.to_thread(recorder.has_tracking_id, name, position):
            return False
        ctx = ProcessContext(app=self.app, tracking=Tracking(name, position))
        try:
            await handler(event, ctx)
            if not ctx.saved:
                await ctx.save()
        except IntegrityError:
            # Single-row tracking refuses a position that does not advance: handled already.
            if await asyncio.to_thread(recorder.has_tracking_id, name, position):
                return False
            raise
        return True


def process_recorder_env(env: dict[str, str]) -> dict[str, str]:
    """`env` (from `event_store_env`) with the process recorder that saves tracking too."""
    return {
        **env,
        "APPLICATION_RECORDER_TOPIC": PROCESS_RECORDER_TOPIC,
    }
