"""Replaying contract-svc's log: `GET /v1/events` over its real API, and rebuilding its read
model (`ContractProjection`) from the log."""

from __future__ import annotations

import asyncio
import http.client
import time
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import create_async_engine

from bench.contract import SECRET, _prepare
from bench.harness import Context, Figure, benchmark
from bench.harness.http import serve
from bench.relay import seed
from contract_svc.application import Contracts
from contract_svc.projections import ContractProjection
from smartid_events.auth import mint_token
from smartid_events.log import rebuild_read_model
from smartid_events.store import asyncpg_dsn, event_store_env, sqlalchemy_url

PAGE = 1_000


def _seeded(ctx: Context, prefix: str, events: int) -> str:
    """A database holding `events` contract events, with contract-svc's own key store."""
    url = ctx.database(prefix)
    contracts = Contracts(env=event_store_env(url))
    try:
        ctx.progress(f"seeding {events:,} contract events")
        seed(contracts, events)
    finally:
        contracts.close()
    return url


def _read_pages(host: str, port: int, budget_s: float) -> dict[str, Any]:
    token = mint_token(SECRET, sub="bench-replay", role="operator", scopes=["events:read"])
    conn = http.client.HTTPConnection(host, port)
    after, events, pages = 0, 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget_s:
        conn.request("GET", f"/v1/events?after={after}&limit={PAGE}",
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        response = conn.getresponse()
        body = orjson.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"GET /v1/events: {response.status} {body}")
        if body["next_after"] == after:
            break
        after = body["next_after"]
        events += len(body["events"])
        pages += 1
    elapsed = time.perf_counter() - t0
    conn.close()
    rate = events / elapsed
    return {"events": events, "pages": pages, "seconds": round(elapsed, 3), "rate": rate}


PASSES = 3


@benchmark("api-events", group="replay")
def api_events(ctx: Context) -> list[Figure]:
    """GET /v1/events, pages of 1,000, over contract-svc's create_app under uvicorn: one client
    reading the whole log; the median of three passes after a warm-up pass.

    One uvicorn worker: a single client's connection is served by one worker anyway, and with
    two a pass could land on the worker the warm-up did not warm (its key cache cold), which
    made the figure swing by a sixth from run to run.
    """
    n = ctx.count(100_000)
    url = _seeded(ctx, "replay_api", n)
    env = _prepare(url, ctx.nats_url)
    with serve("contract_svc.main:create_app", env, log_dir=ctx.work_dir / "logs",
               workers=1, ready_path="/healthz") as (host, port):  # fmt: skip
        ctx.progress("warm-up pass")
        _read_pages(host, port, ctx.seconds(5))
        passes = []
        for number in range(1, PASSES + 1):
            ctx.progress(f"reading the whole log, pass {number} of {PASSES}")
            passes.append(_read_pages(host, port, ctx.seconds(30)))
    rates = sorted(p.pop("rate") for p in passes)
    detail = {**passes[0], "workers": 1, "pass_rates": [round(r) for r in rates]}
    return [Figure("api.events.eps", "GET /v1/events", rates[len(rates) // 2], "events/s",
                   detail=detail)]  # fmt: skip


@benchmark("rebuild", group="replay")
async def read_model_rebuild(ctx: Context) -> list[Figure]:
    """contract-svc's read model (ContractProjection) rebuilt from its log, batches of 1,000."""
    n = ctx.count(100_000)
    url = _seeded(ctx, "replay_rebuild", n)
    contracts = Contracts(env=event_store_env(url))
    engine = create_async_engine(sqlalchemy_url(url), pool_size=2)
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=2)
    try:
        projection = ContractProjection(contracts, engine)
        ctx.progress("rebuilding the read model")
        t0 = time.perf_counter()
        applied = await rebuild_read_model(projection, pool, batch_size=PAGE)
        elapsed = time.perf_counter() - t0
    finally:
        await pool.close()
        await engine.dispose()
        await asyncio.to_thread(contracts.close)
    detail = {"events": applied, "seconds": round(elapsed, 3), "loads": projection.loads}
    return [Figure("readmodel.rebuild.eps", "read-model rebuild", applied / elapsed, "events/s",
                   detail=detail)]  # fmt: skip
