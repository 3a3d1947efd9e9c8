"""A tiny service for the `smartid run` tests: it uses the shared plumbing like a real one."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, ClassVar

import psycopg
from fastapi import Depends, FastAPI
from pydantic_settings import SettingsConfigDict

from smartid_events.auth import Principal, require
from smartid_events.logs import configure_logging
from smartid_events.natsconn import connect
from smartid_events.service import ServiceSpec
from smartid_events.settings import ServiceSettings
from smartid_events.web import create_service_app, nats_check, postgres_check

SPEC = ServiceSpec(
    name="tiny",
    env_prefix="TINY",
    http_port=18731,
    database="smartid_tiny",
    app_factory="test_run_tiny_service:create_app",
    worker="test_run_tiny_service:worker",
)
logger = logging.getLogger("tiny")


class TinySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TINY_")
    service_name: ClassVar[str] = "tiny"


def create_app() -> FastAPI:
    settings = TinySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.nats = await connect(
            settings.nats_url,
            name="tiny-api",
            user=settings.nats_user,
            password=settings.nats_password_value(),
        )
        yield
        await app.state.nats.close()

    app = create_service_app(
        settings,
        title="tiny",
        lifespan=lifespan,
        readiness_checks={
            "postgres": postgres_check(settings.database_url),
            "nats": nats_check(lambda: getattr(app.state, "nats", None)),
        },
    )

    @app.post("/v1/marks/{mark}", status_code=201)
    def add_mark(
        mark: str, _: Annotated[Principal, Depends(require("contracts:write"))]
    ) -> dict[str, str]:
        with psycopg.connect(settings.database_url) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS marks (mark text)")
            conn.execute("INSERT INTO marks VALUES (%s)", (mark,))
        return {"mark": mark}

    @app.get("/v1/marks")
    def marks(_: Annotated[Principal, Depends(require("contracts:read"))]) -> list[str]:
        with psycopg.connect(settings.database_url) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS marks (mark text)")
            return [row[0] for row in conn.execute("SELECT mark FROM marks ORDER BY mark")]

    return app


async def worker() -> None:
    settings = TinySettings()
    configure_logging("tiny", settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    client = await connect(
        settings.nats_url,
        name="tiny-worker",
        user=settings.nats_user,
        password=settings.nats_password_value(),
    )
    await client.publish("smartid.tiny.p00._service.WorkerStarted", b"{}")
    await client.flush()
    logger.info("tiny worker connected")
    await stop.wait()
    await client.close()
    logger.info("tiny worker stopped")
