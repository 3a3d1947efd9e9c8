"""`LeanDispatch`: a request for a compiled route goes straight to it, past FastAPI's router.

FastAPI 0.165 routes a request through each included router's effective routes, setting and
restoring scope keys around every candidate's match, then through two exit stacks and two
exception wrappers before the handler runs: ~15% of a command's CPU with ~30 routes (py-spy,
docs/performance.md). This middleware, the innermost of the app's own, keeps a table of the
app's routes in FastAPI's matching order and, when the first route whose path and method match
is a `LeanRoute` with a compiled handler, runs that handler itself inside Starlette's
`ExceptionMiddleware` built from the app's exception handlers, as the app's own stack would.

It claims nothing it cannot prove FastAPI would route the same way: the table stops at the
first route it does not understand (a mount, a host, an included router with a prefix,
dependencies, a body limit or a content-type policy of its own), and every request it does
not claim (no match, 404/405, root paths, dependency overrides, body limits, websockets)
goes down the normal stack untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send

from smartid_events.web.lean import LeanRoute, needs_fastapi


@dataclass(frozen=True, slots=True)
class _Entry:
    prefix: str  # the path's literal start: most routes are ruled out without their regex
    regex: re.Pattern[str]
    methods: frozenset[str] | None  # None: every method
    route: BaseRoute
    lean: bool


class _OpaqueRouteError(Exception):
    """A route whose matching the table does not reproduce: the table ends before it."""


def _plain_inclusion(route: Any) -> bool:
    """An included router (FastAPI >= 0.165 keeps them as `_IncludedRouter`) that changes
    nothing about its routes but the documentation."""
    context: Any = getattr(route, "include_context", None)
    included: Any = getattr(context, "included_router", None)
    try:
        return bool(
            context.prefix == ""
            and not context.dependencies
            and context.max_body_size is None
            # A route's plan reads bodies strictly unless the route itself says otherwise.
            and _strict(context.strict_content_type)
            and _strict(included.strict_content_type)
        )
    except AttributeError:
        return False


def _strict(setting: Any) -> bool:
    value = setting.value if isinstance(setting, DefaultPlaceholder) else setting
    return value is True


def _flatten(routes: Iterable[BaseRoute]) -> Iterator[_Entry]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            if not _plain_inclusion(route):
                raise _OpaqueRouteError(route)
            yield from _flatten(inner.routes)
        elif isinstance(route, WebSocketRoute):
            continue  # matches websocket scopes only
        elif isinstance(route, Route):  # APIRoute is one
            methods = frozenset(route.methods) if route.methods else None
            lean = isinstance(route, LeanRoute) and route.lean_handler is not None
            prefix = route.path_format.partition("{")[0]
            yield _Entry(prefix, route.path_regex, methods, route, lean)
        else:
            raise _OpaqueRouteError(route)


def _table(routes: Iterable[BaseRoute]) -> tuple[_Entry, ...]:
    entries: list[_Entry] = []
    try:
        for entry in _flatten(routes):
            entries.append(entry)
    except _OpaqueRouteError:
        pass
    # Past the last compiled route nothing can be claimed: keep the scan short.
    while entries and not entries[-1].lean:
        entries.pop()
    return tuple(entries)


async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
    route: LeanRoute = scope["route"]
    assert route.lean_handler is not None
    response = await route.lean_handler(Request(scope, receive, send))
    await response(scope, receive, send)


def _exception_handlers(app: FastAPI) -> dict[Any, ExceptionHandler]:
    # As FastAPI's build_middleware_stack splits them: 500/Exception go to ServerErrorMiddleware.
    return {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}


class LeanDispatch:
    """Add it first (`app.add_middleware`), so that it is the innermost of the app's own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._for: tuple[int, int] | None = None
        self._entries: tuple[_Entry, ...] = ()
        self._served: ASGIApp = _serve

    def _refresh(self, app: FastAPI) -> None:
        routes = app.router.routes
        key = (id(routes), len(routes))
        if key != self._for:
            self._entries = _table(routes)
            self._served = ExceptionMiddleware(_serve, handlers=_exception_handlers(app))
            self._for = key

    def _match(self, scope: Scope) -> tuple[LeanRoute, dict[str, Any]] | None:
        path: str = scope["path"]
        method: str = scope["method"]
        for entry in self._entries:
            if not path.startswith(entry.prefix):
                continue
            found = entry.regex.match(path)
            if found is None or (entry.methods is not None and method not in entry.methods):
                continue  # no match, or a partial one: Starlette goes on looking too
            if not entry.lean:
                return None
            route = entry.route
            assert isinstance(route, LeanRoute)
            converted = {
                name: route.param_convertors[name].convert(value)
                for name, value in found.groupdict().items()
            }
            return route, converted
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")
        if scope["type"] == "http" and isinstance(app, FastAPI) and not scope.get("root_path"):
            self._refresh(app)
            target = self._match(scope)
            if target is not None and not needs_fastapi(app, scope):
                route, path_params = target
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {**scope.get("path_params", {}), **path_params}
                scope.setdefault("router", app.router)
                await self._served(scope, receive, send)
                return
        await self.app(scope, receive, send)
