"""LeanRoute answers every request exactly as FastAPI's own handler does, without its solver."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from smartid_events.auth import Principal, mint_token, require
from smartid_events.settings import ServiceSettings
from smartid_events.web import create_service_app
from smartid_events.web.lean import LeanRoute

SECRET = "l" * 40
WRITER = mint_token(SECRET, sub="w", role="contractor", tenant="t1", scopes=["contracts:write"])
READER = mint_token(SECRET, sub="r", role="contractor", tenant="t1", scopes=["contracts:read"])
THING = "7f0c1e9e-9c55-4a51-9d0e-1a6a3b0f4c11"


class LeanSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEANTEST_")
    service_name: ClassVar[str] = "leantest"


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str = Field(min_length=1, max_length=20)


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=50)
    due: date
    count: int = Field(default=1, ge=1, le=10)
    kind: Literal["a", "b"] = "a"
    address: Address | None = None


class BadPreconditionError(Exception):
    rule = "if-match-format"
    field = "If-Match"


calls: list[str] = []


async def version_of(
    request: Request,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=8)] = None,
) -> dict[str, Any]:
    calls.append("version_of")
    if if_match is not None and not if_match.strip('"').isdigit():
        raise BadPreconditionError(f"If-Match must be a quoted number: {if_match}")
    return {"if_match": if_match, "key": key, "path": request.url.path}


async def counted() -> int:
    calls.append("counted")
    return len(calls)


async def uses_counted(n: Annotated[int, Depends(counted)]) -> int:
    return n


Writer = Annotated[Principal, Depends(require("contracts:write"))]
Reader = Annotated[Principal, Depends(require("contracts:read"))]
Version = Annotated[dict[str, Any], Depends(version_of)]


def a_router(route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=route_class)

    @router.post("/things/{thing_id}/notes", status_code=201)
    async def add_note(thing_id: UUID, body: Note, principal: Writer, v: Version) -> JSONResponse:
        return JSONResponse(
            {"thing": str(thing_id), "note": body.model_dump(mode="json"), "v": v,
             "sub": principal.sub},
            status_code=201,
        )  # fmt: skip

    # Before the route below, whose path it also matches: it must win, as in FastAPI.
    @router.get("/things/special")
    def special_thing() -> dict[str, str]:
        return {"special": "yes"}

    @router.get("/things/{thing_id}")
    async def read_thing(
        thing_id: UUID,
        principal: Reader,
        *,
        required_flag: Annotated[bool, Query()],
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        name: Annotated[str | None, Query(max_length=5, pattern=r"^[a-z]*$")] = None,
        x_trace: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        return JSONResponse(
            {"thing": str(thing_id), "limit": limit, "name": name, "trace": x_trace,
             "flag": required_flag},
        )  # fmt: skip

    @router.get("/twice")
    async def twice(
        a: Annotated[int, Depends(counted)], b: Annotated[int, Depends(uses_counted)]
    ) -> JSONResponse:
        return JSONResponse({"a": a, "b": b})

    @router.get("/with-response")
    async def with_response(response: Response) -> dict[str, str]:
        response.headers["X-Set"] = "yes"
        return {"ok": "yes"}

    @router.get("/sync")
    def sync_route() -> JSONResponse:
        return JSONResponse({"sync": True})

    return router


def an_app(route_class: type[APIRoute]) -> FastAPI:
    app = create_service_app(
        LeanSettings(jwt_secret=SecretStr(SECRET)),
        title="lean test",
        configure_logs=False,
        error_table={BadPreconditionError: 400},
    )
    app.include_router(a_router(route_class))
    # An inclusion the dispatcher does not flatten: its routes still answer, through FastAPI.
    app.include_router(a_router(route_class), prefix="/x")
    return app


LEAN, PLAIN = an_app(LeanRoute), an_app(APIRoute)


async def send(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"X-Correlation-Id": "corr-lean-test-0001", **kwargs.pop("headers", {})}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=headers, **kwargs)


def auth(token: str = WRITER, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


GOOD = b'{"text": "hello", "due": "2026-12-01"}'
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}
NOTES = f"/v1/things/{THING}/notes"

CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "valid": ("POST", NOTES, {"content": GOOD, "headers": auth(**JSON)}),
    "valid, every header": (
        "POST", NOTES,
        {"content": GOOD, "headers": auth(**JSON, **{"If-Match": '"3"', "Idempotency-Key": "k1"})},
    ),
    "no token": ("POST", NOTES, {"content": GOOD, "headers": JSON}),
    "not a bearer token": ("POST", NOTES, {"content": GOOD, "headers": {
        **JSON, "Authorization": "Basic dXNlcjpwdw=="}}),
    "bad token": ("POST", NOTES, {"content": GOOD, "headers": auth("not.a.jwt", **JSON)}),
    "wrong scope": ("POST", NOTES, {"content": GOOD, "headers": auth(READER, **JSON)}),
    "invalid JSON": ("POST", NOTES, {"content": b'{"text": ', "headers": auth(**JSON)}),
    "invalid JSON, no token": ("POST", NOTES, {"content": b"{nope", "headers": JSON}),
    "empty body": ("POST", NOTES, {"content": b"", "headers": auth(**JSON)}),
    "text/plain": ("POST", NOTES, {"content": GOOD, "headers": auth(**TEXT)}),
    "no content type": ("POST", NOTES, {"content": GOOD, "headers": auth()}),
    "charset": ("POST", NOTES, {"content": GOOD, "headers": auth(**{
        "Content-Type": "application/json; charset=utf-8"})}),
    "+json subtype": ("POST", NOTES, {"content": GOOD, "headers": auth(**{
        "Content-Type": "application/merge-patch+json"})}),
    "upper-case type": ("POST", NOTES, {"content": GOOD, "headers": auth(**{
        "Content-Type": "Application/JSON"})}),
    "extra field": ("POST", NOTES, {"content": b'{"text": "x", "due": "2026-12-01", "more": 1}',
                                    "headers": auth(**JSON)}),
    "nested invalid": ("POST", NOTES, {"content": b'{"text": "x", "due": "2026-13-01",'
                                       b' "address": {"city": ""}, "kind": "c"}',
                                       "headers": auth(**JSON)}),
    "not an object": ("POST", NOTES, {"content": b"[1, 2]", "headers": auth(**JSON)}),
    "null body": ("POST", NOTES, {"content": b"null", "headers": auth(**JSON)}),
    "NaN": ("POST", NOTES, {"content": b'{"text": "x", "due": "2026-12-01", "count": NaN}',
                            "headers": auth(**JSON)}),
    "huge integer": ("POST", NOTES, {"content": b'{"text": "x", "due": "2026-12-01", "count": '
                                     + b"9" * 40 + b"}", "headers": auth(**JSON)}),
    "UTF-16 body": ("POST", NOTES, {"content": GOOD.decode().encode("utf-16"),
                                    "headers": auth(**JSON)}),
    "lone surrogate": ("POST", NOTES, {"content": b'{"text": "\\ud800", "due": "2026-12-01"}',
                                       "headers": auth(**JSON)}),
    "bad path id": ("POST", "/v1/things/not-a-uuid/notes", {"content": GOOD,
                                                           "headers": auth(**JSON)}),
    "bad path id and body": ("POST", "/v1/things/zzz/notes", {"content": b"{}",
                                                             "headers": auth(**JSON)}),
    "malformed If-Match": ("POST", NOTES, {"content": GOOD,
                                           "headers": auth(**JSON, **{"If-Match": "x"})}),
    "long Idempotency-Key, bad body": ("POST", NOTES, {
        "content": b'{"text": ""}', "headers": auth(**JSON, **{"Idempotency-Key": "k" * 9})}),
    "wrong method": ("PUT", NOTES, {"content": GOOD, "headers": auth(**JSON)}),
    "read": ("GET", f"/v1/things/{THING}?limit=5&name=ab&required_flag=true",
             {"headers": auth(READER, **{"X-Trace": "t-1"})}),
    "read, defaults": ("GET", f"/v1/things/{THING}?required_flag=0", {"headers": auth(READER)}),
    "read, bad query": ("GET", f"/v1/things/{THING}?limit=0&name=ABCDEFG&required_flag=maybe",
                        {"headers": auth(READER)}),
    "read, missing query": ("GET", f"/v1/things/{THING}", {"headers": auth(READER)}),
    "read, repeated query": ("GET", f"/v1/things/{THING}?limit=2&limit=3&required_flag=1",
                             {"headers": auth(READER)}),
    "cached dependency": ("GET", "/v1/twice", {}),
    "an earlier route matches": ("GET", "/v1/things/special", {"headers": auth(READER)}),
    "no such path": ("POST", "/v1/things", {"content": GOOD, "headers": auth(**JSON)}),
    "prefixed inclusion": ("POST", f"/x/v1/things/{THING}/notes", {"content": GOOD,
                                                                  "headers": auth(**JSON)}),
    "not compiled: Response parameter": ("GET", "/v1/with-response", {}),
    "not compiled: sync": ("GET", "/v1/sync", {}),
}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(CASES))
async def test_the_lean_route_answers_as_fastapi_does(case: str) -> None:
    method, path, kwargs = CASES[case]
    calls.clear()
    lean = await send(LEAN, method, path, **kwargs)
    lean_calls = list(calls)
    calls.clear()
    plain = await send(PLAIN, method, path, **kwargs)
    assert (lean.status_code, lean.content) == (plain.status_code, plain.content)
    assert _headers(lean) == _headers(plain)
    assert lean_calls == calls, "dependencies called differently"


def lean_routes(app: FastAPI) -> list[LeanRoute]:
    """The app's LeanRoutes, also those of included routers (FastAPI 0.165 wraps them)."""
    found: list[LeanRoute] = []
    pending: list[Any] = list(app.routes)
    while pending:
        route = pending.pop(0)
        if isinstance(route, LeanRoute):
            found.append(route)
        pending += getattr(getattr(route, "original_router", None), "routes", [])
    return found


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k != "date")


def test_every_route_it_can_compile_is_compiled() -> None:
    compiled = {r.path: r.lean for r in lean_routes(LEAN)}
    assert compiled == {
        "/v1/things/{thing_id}/notes": True,
        "/v1/things/special": False,
        "/v1/things/{thing_id}": True,
        "/v1/twice": True,
        "/v1/with-response": False,
        "/v1/sync": False,
    }


@pytest.mark.asyncio
async def test_a_compiled_route_does_not_use_fastapis_solver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = an_app(LeanRoute)

    async def no_solving(**_: Any) -> Any:
        raise AssertionError("solve_dependencies was called")

    # The handlers are built when the routes are: patch after that, as a request would see it.
    monkeypatch.setattr("fastapi.routing.solve_dependencies", no_solving)
    lean = await send(app, "POST", NOTES, content=GOOD, headers=auth(**JSON))
    assert lean.status_code == 201
    with pytest.raises(AssertionError, match="solve_dependencies"):
        await send(an_app(APIRoute), "POST", NOTES, content=GOOD, headers=auth(**JSON))


@pytest.mark.asyncio
async def test_dependency_overrides_are_honoured() -> None:
    app = an_app(LeanRoute)

    async def fixed() -> dict[str, Any]:
        return {"overridden": True}

    app.dependency_overrides[version_of] = fixed
    response = await send(app, "POST", NOTES, content=GOOD, headers=auth(**JSON))
    assert response.status_code == 201
    assert response.json()["v"] == {"overridden": True}


@pytest.mark.asyncio
async def test_the_dispatcher_serves_compiled_routes_past_fastapis_router(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = an_app(LeanRoute)
    assert (await send(app, "GET", "/healthz")).status_code == 200  # the stack is built

    async def no_routing(*_: Any) -> None:
        raise AssertionError("FastAPI's router was called")

    monkeypatch.setattr(APIRouter, "__call__", no_routing)
    served = await send(app, "POST", NOTES, content=GOOD, headers=auth(**JSON))
    assert served.status_code == 201
    refused = await send(app, "POST", NOTES, content=b"{", headers=auth(**JSON))
    assert refused.status_code == 422  # its errors too, by the app's own handlers
    with pytest.raises(AssertionError, match="router was called"):
        await send(app, "GET", "/v1/things/special", headers=auth(READER))
    with pytest.raises(AssertionError, match="router was called"):
        await send(app, "POST", f"/x/v1/things/{THING}/notes", content=GOOD,
                   headers=auth(**JSON))  # fmt: skip
