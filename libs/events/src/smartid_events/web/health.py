"""`/healthz` (the process answers) and `/readyz` (its PostgreSQL and NATS answer too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from smartid_events.store import asyncpg_dsn

# A readiness check returns when its dependency is usable and raises otherwise.
ReadinessCheck = Callable[[], Awaitable[None]]

CHECK_TIMEOUT_S = 2.0
logger = logging.getLogger(__name__)


def postgres_check(database_url: str, timeout: float = CHECK_TIMEOUT_S) -> ReadinessCheck:
    """Connects and runs `SELECT 1` (a fresh connection: a pool could hide a dead server)."""

    async def check() -> None:
        async with await psycopg.AsyncConnection.connect(
            asyncpg_dsn(database_url), connect_timeout=max(1, int(timeout)), autocommit=True
        ) as conn:
            await conn.execute("SELECT 1")

    return check


def nats_check(get_client: Callable[[], Any]) -> ReadinessCheck:
    """Ready while the client the service built in its lifespan is connected."""

    async def check() -> None:
        client = get_client()
        if client is None or not client.is_connected:
            raise ConnectionError("not connected to NATS")

    return check


async def _run(name: str, check: ReadinessCheck) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as e:  # a failing dependency is reported, not raised
        logger.warning("readiness check failed", extra={"check": name, "error": repr(e)})
        return f"failing: {type(e).__name__}"
    return "ok"


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="PostgreSQL and NATS answer", response_model=None)
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_run(n, checks[n]) for n in names))
        outcome = dict(zip(names, results, strict=True))
        ready = all(r == "ok" for r in results)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": outcome},
            status_code=200 if ready else 503,
        )

    return router
