"""`LeanRoute`: a FastAPI route whose parameters are resolved by a plan compiled at start-up.

On every request FastAPI's `solve_dependencies` works out again what the route's signature
already fixes: cache keys and security scopes per dependency, where each parameter comes from,
and which of a dozen special parameters the endpoint takes. For a command route that is about
half of the event loop's time (py-spy, docs/performance.md). `LeanRoute` compiles the same
`Dependant` once into a plan of plain steps and runs that instead.

The plan keeps FastAPI's semantics: the body is read and decoded first (an invalid JSON body
is a 422 before anything else), then sub-dependencies in signature order (each one's own
parameters, then its call, cached per request), then the route's path, query and header
parameters and its body. Each value is validated by FastAPI's own `ModelField` (the same
pydantic adapter, so the same values and the same error dicts), and the errors are raised as
one `RequestValidationError`. Routing, middleware, exception handlers and the OpenAPI document
stay FastAPI's: only `get_route_handler` changes.

A route outside what the plan covers keeps FastAPI's handler, whole: sync or generator
callables, forms, cookies, parameter models, sequences, aliases other than a plain alias,
`Response`/`BackgroundTasks`/`SecurityScopes` parameters, endpoints not annotated to return a
`Response`, routes with a body-size limit. So does any request while dependency overrides are
set (tests) or a body limit applies. `LeanRoute.lean` says which routes are compiled.
"""

from __future__ import annotations

import email.message
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Literal, cast, get_type_hints

import orjson
from fastapi import params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# No value in the request: distinct from None, which a client cannot send as a header anyway.
_ABSENT: Any = object()

Source = Literal["path", "query", "header"]


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    source: Source
    key: str  # what the request calls it
    field: Any  # fastapi._compat.ModelField
    required: bool

    @property
    def loc(self) -> tuple[str, str]:
        return (self.source, self.key)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to solve one dependant: its sub-dependencies, its own parameters, then its call."""

    call: Callable[..., Awaitable[Any]]
    name: str | None
    cache_key: tuple[Any, ...]
    use_cache: bool
    dependencies: tuple[_Plan, ...]
    params: tuple[_Param, ...]
    body: Any | None  # the ModelField of a single, not embedded JSON body
    request_names: tuple[str, ...]  # `Request` and `HTTPConnection` parameters


class NotCompilableError(Exception):
    """The dependant uses something the plan does not cover; FastAPI's handler stays."""


def _is_coroutine_callable(call: object) -> bool:
    if inspect.isroutine(call):
        return inspect.iscoroutinefunction(call)
    if inspect.isclass(call):
        return False
    return callable(call) and inspect.iscoroutinefunction(type(call).__call__)


def _compile_param(field: Any, source: Source) -> _Param:
    info = field.field_info
    key = info.validation_alias or field.alias
    if not isinstance(info, params.Param) or not isinstance(key, str):
        raise NotCompilableError(f"parameter {field.name}: alias choices or paths")
    annotation = info.annotation
    origin = getattr(annotation, "__origin__", None)
    if origin in (list, set, tuple, frozenset) or (
        inspect.isclass(annotation) and issubclass(annotation, (list, set, tuple, frozenset, dict))
    ):
        raise NotCompilableError(f"parameter {field.name}: a sequence")
    if inspect.isclass(annotation) and hasattr(annotation, "model_fields"):
        raise NotCompilableError(f"parameter {field.name}: a parameter model")
    return _Param(field.name, source, key, field, info.is_required())


def _compile(dependant: Dependant, *, is_endpoint: bool = False) -> _Plan:
    call = dependant.call
    if call is None or not _is_coroutine_callable(call):
        raise NotCompilableError(f"{call!r} is not a coroutine function")
    unsupported = {
        "cookie parameters": dependant.cookie_params,
        "a websocket": dependant.websocket_param_name,
        "a Response parameter": dependant.response_param_name,
        "background tasks": dependant.background_tasks_param_name,
        "security scopes": dependant.security_scopes_param_name or dependant.own_oauth_scopes,
        "a concurrency limit": dependant.concurrency,
    }
    for what, present in unsupported.items():
        if present:
            raise NotCompilableError(f"{call!r} takes {what}")
    if dependant.body_params and not is_endpoint:
        raise NotCompilableError("a dependency reads the body")
    if len(dependant.body_params) > 1:
        raise NotCompilableError("an embedded body")
    body = dependant.body_params[0] if dependant.body_params else None
    if body is not None and isinstance(body.field_info, params.Form):
        raise NotCompilableError("a form body")
    own: list[_Param] = []
    for fields, source in (
        (dependant.path_params, "path"),
        (dependant.query_params, "query"),
        (dependant.header_params, "header"),
    ):
        own += [_compile_param(f, cast(Source, source)) for f in fields]
    return _Plan(
        call=call,
        name=dependant.name,
        cache_key=(call, dependant.scope or ""),
        use_cache=dependant.use_cache,
        dependencies=tuple(_compile(d) for d in dependant.dependencies),
        params=tuple(own),
        body=body,
        request_names=tuple(
            n for n in (dependant.request_param_name, dependant.http_connection_param_name) if n
        ),
    )


def _missing(loc: tuple[str, ...]) -> dict[str, Any]:
    # What FastAPI's get_missing_field_error() gives.
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


def _validate(
    field: Any, value: Any, required: bool, loc: tuple[str, ...]
) -> tuple[Any, list[Any]]:
    if value is _ABSENT:
        if required:
            return None, [_missing(loc)]
        value = deepcopy(field.default)
        if not field.field_info.validate_default:
            return value, []
    return cast(tuple[Any, list[Any]], field.validate(value, {}, loc=loc))


async def _solve(
    plan: _Plan, request: Request, body: Any, cache: dict[tuple[Any, ...], Any]
) -> tuple[dict[str, Any], list[Any]]:
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for sub in plan.dependencies:
        sub_values, sub_errors = await _solve(sub, request, body, cache)
        if sub_errors:
            errors += sub_errors
            continue
        if sub.use_cache and sub.cache_key in cache:
            solved = cache[sub.cache_key]
        else:
            solved = await sub.call(**sub_values)
        if sub.name is not None:
            values[sub.name] = solved
        cache.setdefault(sub.cache_key, solved)
    for param in plan.params:
        if param.source == "path":
            raw = request.path_params.get(param.key, _ABSENT)
        elif param.source == "query":
            raw = request.query_params.get(param.key, _ABSENT)
        else:
            raw = request.headers.get(param.key, _ABSENT)
        value, param_errors = _validate(param.field, raw, param.required, param.loc)
        if param_errors:
            errors += param_errors
        else:
            values[param.name] = value
    if plan.body is not None:
        info = plan.body.field_info
        value, body_errors = _validate(plan.body, body, info.is_required(), ("body",))
        values[plan.body.name] = value
        errors += body_errors
    for name in plan.request_names:
        values[name] = request
    return values, errors


def _is_json(content_type: str) -> bool:
    lowered = content_type.lower()
    if lowered == "application/json" or lowered.startswith("application/json;"):
        return True
    # Anything else is read the way FastAPI reads it.
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


# orjson reads an integer beyond 64 bits as a float; the standard library keeps it exact.
_LONG_DIGIT_RUN = re.compile(rb"\d{19}")


def _decode_json(raw: bytes) -> Any:
    """`json.loads(raw)`, which FastAPI uses, at orjson's speed where orjson gives the same
    values: it refuses what it reads differently (non-UTF-8, NaN, lone surrogates, numbers out
    of a double's range), and long digit runs go to the standard library; so does every error.
    """
    if _LONG_DIGIT_RUN.search(raw):
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


async def _read_body(request: Request, strict_content_type: bool) -> Any:
    try:
        raw = await request.body()
        if not raw:
            return _ABSENT
        content_type = request.headers.get("content-type")
        if not content_type:
            return raw if strict_content_type else _decode_json(raw)
        return _decode_json(raw) if _is_json(content_type) else raw
    except json.JSONDecodeError as e:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", e.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": e.msg},
                }
            ],
            body=e.doc,
        ) from e
    except HTTPException:
        raise
    except Exception as e:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from e


def _lean_handler(route: APIRoute, plan: _Plan) -> Handler:
    strict = route.strict_content_type
    strict_content_type = bool(strict.value if isinstance(strict, DefaultPlaceholder) else strict)
    reads_body = plan.body is not None

    async def handle(request: Request) -> Response:
        body = await _read_body(request, strict_content_type) if reads_body else _ABSENT
        values, errors = await _solve(plan, request, body, {})
        if errors:
            raise RequestValidationError(errors, body=None if body is _ABSENT else body)
        response = await plan.call(**values)
        if not isinstance(response, Response):  # the return annotation said otherwise
            raise TypeError(f"{route.path}: the endpoint returned {type(response).__name__}")
        return response

    return handle


def _with_fallback(route: APIRoute, lean: Handler, fallback: Handler) -> Handler:
    """FastAPI's own handler while dependency overrides are set (tests) or a body limit
    applies (it enforces the limit while reading); the plan otherwise."""
    overrides = route.dependency_overrides_provider

    async def handle(request: Request) -> Response:
        if needs_fastapi(overrides, request.scope):
            return await fallback(request)
        return await lean(request)

    return handle


def needs_fastapi(overrides: Any, scope: Scope) -> bool:
    """Whether a request must take FastAPI's own handler: `overrides` is the dependency
    overrides provider (the app)."""
    return bool(getattr(overrides, "dependency_overrides", None)) or (
        MAX_BODY_SIZE_SCOPE_KEY in scope
    )


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = get_type_hints(endpoint).get("return")
    except Exception:
        return False
    return inspect.isclass(returned) and issubclass(returned, Response)


class LeanRoute(APIRoute):
    """An `APIRoute` served by a compiled plan where it can be (see the module's docstring).

    Use it as a router's `route_class`; routes it cannot compile behave exactly as before.
    """

    lean: bool = False
    # The plan's handler for the route as declared (not for an inclusion's effective route):
    # what `LeanDispatch` calls.
    lean_handler: Handler | None = None

    def get_route_handler(self) -> Handler:
        fallback = super().get_route_handler()
        # For a route of an included router FastAPI builds the handler from the inclusion's
        # effective route (its prefix and dependencies): compile that one, as the base does.
        route: APIRoute = self
        try:
            from fastapi.routing import _effective_route_context_var
        except ImportError:  # an older FastAPI: routes are copied on inclusion
            pass
        else:
            context = _effective_route_context_var.get()
            if context is not None and context.original_route is self:
                route = cast(APIRoute, context)
        if route.max_body_size is not None or not _returns_response(self.endpoint):
            return fallback
        try:
            plan = _compile(route.dependant, is_endpoint=True)
        except NotCompilableError:
            return fallback
        self.lean = True
        handler = _lean_handler(route, plan)
        if route is self:
            self.lean_handler = handler
        return _with_fallback(route, handler, fallback)
