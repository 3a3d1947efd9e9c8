"""create_app(): billing-svc's API process, wired from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI

from billing_svc.api import ERROR_TABLE, router
from billing_svc.application import Billing
from billing_svc.published import publish
from billing_svc.settings import Settings
from smartid_events import natsconn
from smartid_events.log import events_table, service_events_router, translator_from_application
from smartid_events.runtime import settle_after_startup
from smartid_events.store import asyncpg_dsn, serialized_startup
from smartid_events.web import create_service_app, nats_check, postgres_check

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Building the application connects and creates its tables: keep it off the loop.
        with serialized_startup(settings.database_url):
            billing = await asyncio.to_thread(
                Billing, env=settings.event_store_env(), issuer=settings.issuer()
            )
        app.state.billing = billing
        app.state.translate = translator_from_application(
            billing, lambda event, position: publish(event, position)
        )
        app.state.log_pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url), min_size=1, max_size=4
        )
        app.state.nats = None
        try:
            app.state.nats = await natsconn.connect(
                settings.nats_url,
                name="billing-svc-api",
                user=settings.nats_user,
                password=settings.nats_password_value(),
            )
        except ConnectionError:
            logger.warning("NATS unreachable at start-up: /readyz reports it")
        settle_after_startup()
        try:
            yield
        finally:
            if app.state.nats is not None:
                await app.state.nats.close()
            await app.state.log_pool.close()
            billing.close()

    app = create_service_app(
        settings,
        title="SmartID billing-svc",
        lifespan=lifespan,
        readiness_checks={
            "postgres": postgres_check(settings.database_url),
            "nats": nats_check(lambda: app.state.nats),
        },
        error_table=ERROR_TABLE,
    )
    app.include_router(router)

    app.include_router(service_events_router(app, events_table(Billing.name)), tags=["replay"])
    return app
