"""The service's own log: read after a position despite gaps, and served over HTTP for replay."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from plumbing_kit import Account, Ledger, ledger_source

from smartid_events.log import events_router, log_head, read_log
from smartid_events.store import asyncpg_dsn

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=2)
    yield pool
    await pool.close()


def open_accounts(ledger: Ledger, n: int) -> None:
    for i in range(n):
        ledger.save(Account(owner=f"owner {i}"))


async def test_reading_after_a_position_skips_gaps_left_by_rolled_back_inserts(
    ledger: Ledger, pool: asyncpg.Pool
) -> None:
    open_accounts(ledger, 2)
    table = ledger_source(ledger, "ledger").table
    await pool.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id'))")
    open_accounts(ledger, 1)
    rows = await read_log(pool, table, after=1, limit=10)
    assert [r.notification_id for r in rows] == [2, 4]
    assert await log_head(pool, table) == 4


async def test_the_events_endpoint_pages_through_the_log(
    ledger: Ledger, pool: asyncpg.Pool
) -> None:
    open_accounts(ledger, 5)
    source = ledger_source(ledger, "ledger")
    app = FastAPI()
    app.include_router(events_router(lambda: pool, source.table, source.translator))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        first = (await client.get("/v1/events", params={"after": 0, "limit": 3})).json()
        rest = (await client.get("/v1/events", params={"after": first["next_after"]})).json()
        refused = await client.get("/v1/events", params={"limit": 0})
    assert [e["position"] for e in first["events"]] == [1, 2, 3]
    assert [e["position"] for e in rest["events"]] == [4, 5]
    assert first["events"][0]["type"] == "smartid.ledger.Opened.v1"
    assert refused.status_code == 422
