"""Every error leaves the API as RFC 9457 problem details naming the field or the rule."""

from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from smartid_events.settings import ServiceSettings
from smartid_events.web import create_service_app


class ProblemSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROBLEMTEST_")
    service_name: ClassVar[str] = "problemtest"


class NotApprovableError(Exception):
    rule = "only an applied contract can be approved"
    article = "4(2)"


class ContractNotFoundError(Exception):
    pass


class InvalidIdCountError(Exception):
    field = "id_count"


class Plan(BaseModel):
    monthly_fee_per_id: int
    id_count: int


class Application(BaseModel):
    plan: Plan
    terms_version: str


async def request(
    app: FastAPI, method: str, path: str, *, raise_app_exceptions: bool = True, **kwargs: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def an_app() -> FastAPI:
    app = create_service_app(
        ProblemSettings(jwt_secret=SecretStr("z" * 40)),
        title="problems",
        configure_logs=False,
        error_table={
            NotApprovableError: 409,
            ContractNotFoundError: 404,
            InvalidIdCountError: 422,
        },
    )

    @app.post("/v1/contracts")
    def apply(body: Application) -> dict[str, str]:
        return {"terms_version": body.terms_version}

    @app.post("/v1/contracts/{contract_id}/approval")
    def approve(contract_id: str) -> None:
        raise NotApprovableError(f"contract {contract_id} is rejected")

    @app.get("/v1/contracts/{contract_id}")
    async def read(contract_id: str) -> None:
        raise ContractNotFoundError(f"no contract {contract_id}")

    @app.post("/v1/contracts/{contract_id}/id-count")
    def change(contract_id: str) -> None:
        raise InvalidIdCountError("the ID count must be at least 1")

    @app.get("/v1/teapot")
    def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    return app


@pytest.mark.asyncio
async def test_a_body_with_bad_fields_gets_422_naming_each_field() -> None:
    response = await request(
        an_app(), "POST", "/v1/contracts", json={"plan": {"monthly_fee_per_id": "lots"}}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["instance"] == "/v1/contracts"
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"plan.monthly_fee_per_id", "plan.id_count", "terms_version"}


@pytest.mark.asyncio
async def test_a_business_rule_refusal_names_its_rule_and_article() -> None:
    response = await request(an_app(), "POST", "/v1/contracts/c1/approval")
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/problems/not-approvable")
    assert problem["title"] == "Not approvable"
    assert problem["detail"] == "contract c1 is rejected"
    assert problem["rule"] == "only an applied contract can be approved"
    assert problem["article"] == "4(2)"
    assert problem["instance"] == "/v1/contracts/c1/approval"


@pytest.mark.asyncio
async def test_a_registered_error_without_a_rule_has_no_rule_members() -> None:
    response = await request(an_app(), "GET", "/v1/contracts/c7")
    assert response.status_code == 404
    assert "rule" not in response.json()
    assert "article" not in response.json()


@pytest.mark.asyncio
async def test_a_domain_error_about_one_field_names_it() -> None:
    response = await request(an_app(), "POST", "/v1/contracts/c1/id-count")
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "id_count", "message": "the ID count must be at least 1"}
    ]


@pytest.mark.asyncio
async def test_http_exceptions_and_unknown_paths_are_problems_too() -> None:
    app = an_app()
    teapot = await request(app, "GET", "/v1/teapot")
    assert (teapot.status_code, teapot.json()["detail"]) == (418, "short and stout")
    assert teapot.headers["content-type"] == "application/problem+json"
    missing = await request(app, "GET", "/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Not Found"


@pytest.mark.asyncio
async def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    app = an_app()

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = await request(app, "GET", "/v1/boom", raise_app_exceptions=False)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internals" not in response.text
