"""One ASGI middleware per request: correlation id in, access log and latency metric out."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartid_events.logs import correlation_scope, is_valid_correlation_id
from smartid_events.web.metrics import UNMATCHED_ROUTE, observe_request

CORRELATION_HEADER = "x-correlation-id"
logger = logging.getLogger("smartid.http")


class RequestContextMiddleware:
    """Takes `X-Correlation-Id` from the request (or makes one), sets it for the handler,
    returns it in the response, then logs the request and records its latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, CORRELATION_HEADER)
        given = incoming if incoming is not None and is_valid_correlation_id(incoming) else None
        status = 500
        started = time.perf_counter()
        with correlation_scope(given) as correlation_id:

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    headers = list(message.get("headers", []))
                    headers.append((CORRELATION_HEADER.encode(), correlation_id.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
                observe_request(route, scope["method"], status, elapsed)
                logger.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return None
