"""create_app(): contract-svc's API process, wired from settings."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI
from psycopg.conninfo import make_conninfo
from sqlalchemy.ext.asyncio import create_async_engine

from contract_svc.api import ERROR_TABLE, router
from contract_svc.application import Contracts
from contract_svc.command_writer import writer_check, writer_process
from contract_svc.idempotency import IdempotencyStore, PostgresIdempotencyStore
from contract_svc.projections import InvalidCursorError, ReadModel
from contract_svc.published import publish_correlated
from contract_svc.settings import ContractSettings
from smartid_events import natsconn
from smartid_events.log import service_events_router, translator_from_application
from smartid_events.runtime import settle_after_startup
from smartid_events.store import asyncpg_dsn, serialized_startup, sqlalchemy_url
from smartid_events.web import create_service_app, nats_check, postgres_check

logger = logging.getLogger(__name__)


def create_app(
    settings: ContractSettings | None = None,
    *,
    contracts: Contracts | None = None,
    idempotency: IdempotencyStore | None = None,
    connect_nats: bool = True,
) -> FastAPI:
    """The API. Tests may hand in an application and an idempotency store of their own."""
    settings = settings or ContractSettings()
    writer_of_its_own = settings.command_writer == "process"

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        env = settings.event_store_env()
        with serialized_startup(settings.database_url):
            app.state.contracts = contracts or Contracts(
                env=env,
                group_commit=not writer_of_its_own,
                group_commit_wait_s=settings.group_commit_wait_s(),
            )
            app.state.idempotency = idempotency or PostgresIdempotencyStore(
                make_conninfo(asyncpg_dsn(settings.database_url))
            )
            engine = create_async_engine(sqlalchemy_url(settings.database_url), pool_size=10)
            app.state.read_model = ReadModel(engine)
            await app.state.read_model.create()
        app.state.log_pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url), min_size=1, max_size=4
        )
        app.state.translate = translator_from_application(
            app.state.contracts,
            publish_correlated,
        )
        app.state.nats = None
        if connect_nats:
            try:
                app.state.nats = await natsconn.connect(
                    settings.nats_url,
                    name="contract-svc-api",
                    user=settings.nats_user,
                    password=settings.nats_password_value(),
                )
            except ConnectionError:
                logger.warning("NATS unreachable at start-up: /readyz reports it")
        async with contextlib.AsyncExitStack() as stack:
            app.state.writer = None
            if writer_of_its_own:
                app.state.writer = await stack.enter_async_context(
                    writer_process(env, settings.database_url, settings.group_commit_wait_s())
                )
                app.state.metrics_sources = [app.state.writer.metrics]
            settle_after_startup()
            try:
                yield
            finally:
                await _close(app, own_contracts=contracts is None, own_store=idempotency is None)
                await engine.dispose()

    app = create_service_app(
        settings,
        title="SmartID contract-svc",
        lifespan=lifespan,
        readiness_checks={
            "postgres": postgres_check(settings.database_url),
            "nats": nats_check(lambda: app.state.nats),
            **({"writer": writer_check(lambda: app.state.writer)} if writer_of_its_own else {}),
        },
        error_table={**ERROR_TABLE, InvalidCursorError: 422},
    )
    app.include_router(router)

    app.include_router(service_events_router(app, f"{Contracts.name}_events"), tags=["replay"])
    return app


async def _close(app: FastAPI, *, own_contracts: bool, own_store: bool) -> None:
    if app.state.nats is not None:
        await app.state.nats.close()
    await app.state.log_pool.close()
    close = getattr(app.state.idempotency, "close", None)
    if close is not None and own_store:
        close()
    if own_contracts:
        app.state.contracts.close()
