"""RFC 9457 problem details for every error an API returns.

Business-rule errors carry `rule` and `article` attributes (e.g. `article="4(2)"`); they appear
as extension members. An error's `headers` (e.g. `Retry-After`) go on the response.
Validation errors list each field in `errors: [{field, message}]`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from smartid_events.web.responses import OrjsonResponse

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://smartid.secom.example/problems/"

# A service's table from its domain/application error classes to HTTP statuses.
ErrorTable = Mapping[type[Exception], int]

logger = logging.getLogger(__name__)


def problem_type(name: str) -> str:
    """`NotApprovableError` → `https://smartid.secom.example/problems/not-approvable`."""
    stem = name.removesuffix("Error") or name
    return PROBLEM_TYPE_BASE + re.sub(r"(?<!^)(?=[A-Z])", "-", stem).lower()


def _title_of(name: str) -> str:
    stem = name.removesuffix("Error") or name
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", stem).lower()
    return words[:1].upper() + words[1:]


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extensions.items() if v is not None})
    return OrjsonResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_name(loc: tuple[int | str, ...]) -> str:
    """`("body", "plan", "id_count")` → `plan.id_count`; other sources keep their prefix."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI, error_table: ErrorTable | None = None) -> None:
    """Render HTTP errors, validation errors and the service's domain errors as problems."""

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code,
            detail=str(exc.detail) if exc.detail else None,
            instance=request.url.path,
            headers=exc.headers,
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": field_name(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem_response(
            422,
            title="Invalid request",
            detail="; ".join(f"{e['field']}: {e['message']}" for e in errors),
            type_=PROBLEM_TYPE_BASE + "validation",
            instance=request.url.path,
            errors=errors,
        )

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return problem_response(500, instance=request.url.path)

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    for error_class, status in (error_table or {}).items():
        app.add_exception_handler(error_class, _domain_handler(status))


def _domain_handler(status: int) -> Any:
    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        name = type(exc).__name__
        field = getattr(exc, "field", None)
        return problem_response(
            status,
            title=getattr(exc, "title", None) or _title_of(name),
            detail=str(exc) or None,
            type_=problem_type(name),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
            rule=getattr(exc, "rule", None),
            article=getattr(exc, "article", None),
            errors=[{"field": field, "message": str(exc)}] if field else None,
        )

    return on_domain_error
