"""The raw baselines' model and HTTP apps: a naive event-sourced endpoint and a raw asyncpg one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from fastapi import FastAPI, Request
from pydantic import BaseModel

from smartid_events.store import asyncpg_dsn, event_store_env

DATABASE_URL_ENV = "BENCH_APP_DATABASE_URL"

RAW_HTTP_TABLE = """
CREATE TABLE IF NOT EXISTS raw_http (
    id bigserial PRIMARY KEY,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class Item(Aggregate):
    """A contract-sized aggregate: a few fields, one creation event."""

    def __init__(self, holder: str, plan: str, id_count: int) -> None:
        self.holder = holder
        self.plan = plan
        self.id_count = id_count

    def change_id_count(self, id_count: int) -> None:
        self._id_count_changed(id_count)

    @event("IdCountChanged")
    def _id_count_changed(self, id_count: int) -> None:
        self.id_count = id_count


class Items(Application[UUID]):
    """A bare event-sourced application over `Item`."""

    name = "Items"


def items_application(database_url: str, *, create_table: bool = True) -> Items:
    """The naive baseline: the library as it comes, its own recorder (not our one-statement
    insert, ADR 0021), one transaction per save."""
    env = event_store_env(database_url, pool_size=20)
    env.pop("APPLICATION_RECORDER_TOPIC")
    env.pop("PROCESS_RECORDER_TOPIC")
    env["CREATE_TABLE"] = "y" if create_table else "n"
    return Items(env=env)


class ItemBody(BaseModel):
    holder: str
    plan: str
    id_count: int


def _ping_route(app: FastAPI) -> None:
    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}


def es_app() -> FastAPI:
    """POST /items: create an `Item` and save it, one transaction per request (a `def` route)."""
    url = os.environ[DATABASE_URL_ENV]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Tables are created by the benchmark before the workers start (two workers would race).
        app.state.items = items_application(url, create_table=False)
        yield
        app.state.items.close()

    app = FastAPI(lifespan=lifespan)
    _ping_route(app)

    @app.post("/items")
    def create(body: ItemBody, request: Request) -> dict[str, str]:
        item = Item(holder=body.holder, plan=body.plan, id_count=body.id_count)
        request.app.state.items.save(item)
        return {"id": str(item.id)}

    return app


def asyncpg_app() -> FastAPI:
    """POST /items: one raw asyncpg INSERT (autocommit), no event store: the ceiling."""
    url = asyncpg_dsn(os.environ[DATABASE_URL_ENV])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(url, min_size=4, max_size=16)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)
    _ping_route(app)

    @app.post("/items")
    async def create(body: ItemBody, request: Request) -> dict[str, int]:
        pool: asyncpg.Pool = request.app.state.pool
        row_id = await pool.fetchval(
            "INSERT INTO raw_http (payload) VALUES ($1::jsonb) RETURNING id",
            body.model_dump_json(),
        )
        return {"id": int(row_id)}

    return app
