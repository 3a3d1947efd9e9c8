"""One ASGI middleware per request: correlation id in, access log and latency metric out."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartid_events.logs import (
    enter_correlation,
    is_valid_correlation_id,
    leave_correlation,
    new_correlation_id,
)
from smartid_events.web.metrics import UNMATCHED_ROUTE, observe_request

CORRELATION_HEADER = "x-correlation-id"
_CORRELATION_KEY = CORRELATION_HEADER.encode()
logger = logging.getLogger("smartid.http")


class RequestContextMiddleware:
    """Takes `X-Correlation-Id` from the request (or makes one), sets it for the handler,
    returns it in the response, then logs the request and records its latency.

    Pure ASGI, on every request's path: no `BaseHTTPMiddleware`, no generator context manager,
    and the access line is built only when `smartid.http` logs at INFO.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, _CORRELATION_KEY)
        if incoming is not None and is_valid_correlation_id(incoming):
            correlation_id = incoming
        else:
            correlation_id = new_correlation_id()
        id_header = (_CORRELATION_KEY, correlation_id.encode())
        status = 500
        started = time.perf_counter()
        token = enter_correlation(correlation_id)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            try:
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
                observe_request(route, scope["method"], status, elapsed)
                if logger.isEnabledFor(logging.INFO):
                    _log_request(scope["method"], scope["path"], route, status, elapsed)
            finally:
                leave_correlation(token)


def _log_request(method: str, path: str, route: str, status: int, elapsed: float) -> None:
    """`logger.info(...)` without its caller lookup (a walk up the stack per request); the
    JSON lines carry no source location anyway."""
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %d",
        (method, path, status),
        None,
        "__call__",
        {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        },
    )
    logger.handle(record)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return None
