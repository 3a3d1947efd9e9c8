"""`create_service_app`: a FastAPI app with everything a SmartID service's API shares."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import FastAPI

from smartid_events.auth import TokenVerifier
from smartid_events.logs import configure_logging
from smartid_events.settings import ServiceSettings
from smartid_events.web.dispatch import LeanDispatch
from smartid_events.web.health import ReadinessCheck, health_router
from smartid_events.web.metrics import metrics_endpoint
from smartid_events.web.middleware import RequestContextMiddleware
from smartid_events.web.problems import ErrorTable, install_problem_handlers

logger = logging.getLogger(__name__)


class Lifespan(Protocol):
    def __call__(self, app: FastAPI) -> AbstractAsyncContextManager[Any]: ...


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str = "0.1.0",
    lifespan: Lifespan | None = None,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    error_table: ErrorTable | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    """The app a service adds its routers to.

    Gives `/healthz`, `/readyz` (running `readiness_checks`, e.g. `postgres_check(url)` and
    `nats_check(lambda: app.state.nats)`), `/metrics`, problem details for HTTP, validation and
    the `error_table`'s errors, JSON request logs with the correlation id, and the token
    verifier that `smartid_events.auth.require(scope)` uses.
    """
    if configure_logs:
        configure_logging(settings.service_name, settings.log_level)
    if settings.jwt_secret_generated:
        logger.warning("no JWT secret configured (SMARTID_JWT_SECRET): every token is rejected")
    # FastAPI's native OpenTelemetry is off: nothing here configures a provider, and with it on
    # FastAPI looks the global providers up on every request (~1-2% of a command's CPU).
    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings.jwt_secret.get_secret_value())
    # Added first, so innermost: compiled routes are served right inside the request context.
    app.add_middleware(LeanDispatch)
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app, error_table)
    app.include_router(health_router(readiness_checks or {}))
    app.add_api_route(
        "/metrics", metrics_endpoint, methods=["GET"], tags=["operations"], include_in_schema=False
    )
    return app
