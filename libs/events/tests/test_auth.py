"""Bearer tokens: who may call, with which scopes, and which contractor's data they may see."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from smartid_events.auth import (
    SCOPES,
    InvalidTokenError,
    Principal,
    TokenVerifier,
    mint_token,
    require,
    verify_token,
)
from smartid_events.cli import main as smartid
from smartid_events.settings import ServiceSettings
from smartid_events.web import create_service_app

SECRET = "test-secret-" + "x" * 40


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTHTEST_")
    service_name: ClassVar[str] = "authtest"


async def request(
    app: FastAPI, method: str, path: str, *, raise_app_exceptions: bool = True, **kwargs: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def an_app() -> FastAPI:
    app = create_service_app(
        AuthSettings(jwt_secret=SecretStr(SECRET)), title="auth test", configure_logs=False
    )

    @app.get("/v1/contracts/{contract_id}")
    def read_contract(
        contract_id: str, principal: Annotated[Principal, Depends(require("contracts:read"))]
    ) -> dict[str, str]:
        if not principal.can_access(contract_id):
            return {"visible": "no"}
        return {"visible": "yes", "sub": principal.sub}

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def an_operator_token(*scopes: str, ttl: timedelta = timedelta(minutes=5)) -> str:
    return mint_token(SECRET, sub="op-1", role="operator", scopes=scopes, ttl=ttl)


@pytest.mark.asyncio
async def test_a_request_without_a_token_is_unauthorized_with_a_bearer_challenge() -> None:
    response = await request(an_app(), "GET", "/v1/contracts/c1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.asyncio
async def test_a_token_signed_with_another_secret_is_unauthorized() -> None:
    token = mint_token("another-" + "y" * 40, sub="x", role="operator", scopes=SCOPES)
    response = await request(an_app(), "GET", "/v1/contracts/c1", headers=bearer(token))
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


@pytest.mark.asyncio
async def test_an_expired_token_is_unauthorized() -> None:
    token = mint_token(
        SECRET,
        sub="op",
        role="operator",
        scopes=SCOPES,
        now=datetime.now(UTC) - timedelta(hours=2),
        ttl=timedelta(hours=1),
    )
    response = await request(an_app(), "GET", "/v1/contracts/c1", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.mark.asyncio
async def test_a_token_without_the_route_scope_is_forbidden() -> None:
    token = an_operator_token("billing:read")
    response = await request(an_app(), "GET", "/v1/contracts/c1", headers=bearer(token))
    assert response.status_code == 403
    assert "contracts:read" in response.json()["detail"]


@pytest.mark.asyncio
async def test_a_token_with_the_scope_reaches_the_route() -> None:
    token = an_operator_token("contracts:read")
    response = await request(an_app(), "GET", "/v1/contracts/c1", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"visible": "yes", "sub": "op-1"}


@pytest.mark.asyncio
async def test_a_contractor_sees_only_its_own_tenant() -> None:
    token = mint_token(
        SECRET, sub="alice", role="contractor", scopes=["contracts:read"], tenant="c1"
    )
    app = an_app()
    own = await request(app, "GET", "/v1/contracts/c1", headers=bearer(token))
    other = await request(app, "GET", "/v1/contracts/c2", headers=bearer(token))
    assert (own.json()["visible"], other.json()["visible"]) == ("yes", "no")


@pytest.mark.asyncio
async def test_an_operator_may_access_every_tenant() -> None:
    principal = verify_token(SECRET, an_operator_token("contracts:read"))
    assert principal.is_operator
    assert principal.can_access("any-contractor")


@pytest.mark.asyncio
async def test_a_contractor_token_needs_a_tenant() -> None:
    with pytest.raises(ValueError, match="tenant"):
        mint_token(SECRET, sub="alice", role="contractor", scopes=["contracts:read"])


@pytest.mark.asyncio
async def test_unknown_scopes_are_refused_when_minting() -> None:
    with pytest.raises(ValueError, match="unknown scopes"):
        mint_token(SECRET, sub="op", role="operator", scopes=["contracts:everything"])


@pytest.mark.asyncio
async def test_the_cli_mints_a_token_the_services_accept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMARTID_JWT_SECRET", SECRET)
    argv = ["token", "mint", "--role", "contractor", "--scopes", "contracts:read,billing:read"]
    assert smartid([*argv, "--tenant", "c9", "--ttl", "30m"]) == 0
    principal = verify_token(SECRET, capsys.readouterr().out.strip())
    assert principal.tenant == "c9"
    assert principal.scopes == {"contracts:read", "billing:read"}
    assert principal.role == "contractor"


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_until_it_expires() -> None:
    issued = datetime.now(UTC)
    token = mint_token(
        SECRET, sub="a", role="operator", scopes=SCOPES, now=issued, ttl=timedelta(minutes=5)
    )
    clock = _Clock(issued.timestamp())
    verifier = TokenVerifier(SECRET, clock=clock)
    first = verifier(token)
    assert verifier(token) is first  # from the cache
    clock.now = issued.timestamp() + 300  # exp by the verifier's clock: checked afresh
    assert verifier(token) is not first


def test_a_token_the_verifier_refused_stays_refused_and_the_cache_is_bounded() -> None:
    verifier = TokenVerifier(SECRET, cache_size=2)
    forged = mint_token("z" * 40, sub="a", role="operator", scopes=SCOPES)
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            verifier(forged)
    tokens = [mint_token(SECRET, sub=f"u{i}", role="operator", scopes=SCOPES) for i in range(3)]
    assert [verifier(t).sub for t in tokens] == ["u0", "u1", "u2"]
    assert len(verifier._verified) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer  abc ", "bearer abc", "BEARER a.b.c", "Basic abc",
     "Bearer a b", " Bearer abc", "Token abc"],
)  # fmt: skip
async def test_the_bearer_scheme_reads_headers_as_fastapis_does(authorization: str | None) -> None:
    from fastapi.security import HTTPBearer
    from starlette.requests import Request

    from smartid_events.auth import _bearer

    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    request = Request({"type": "http", "headers": headers})
    ours = await _bearer(request)
    theirs = await HTTPBearer(auto_error=False)(request)
    assert (ours and ours.model_dump()) == (theirs and theirs.model_dump())
