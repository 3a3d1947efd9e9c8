"""billing-svc's HTTP API on a real PostgreSQL: paths, statuses, problem details, tenancy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import date
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import SecretStr

from billing_svc.application import Billing
from billing_svc.domain import facts
from billing_svc.main import create_app
from billing_svc.settings import Settings
from smartid_events.auth import SCOPES, mint_token
from smartid_events.testing.plugin import NatsUnderTest

SECRET = "a-test-secret-that-is-long-enough-for-hs256-keys"
TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"


pytestmark = pytest.mark.asyncio


class Client(httpx.AsyncClient):
    app: FastAPI


@pytest_asyncio.fixture
async def client(database_url: str, nats: NatsUnderTest) -> AsyncIterator[Client]:
    settings = Settings(
        database_url=database_url,
        nats_url=nats.url,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with Client(transport=transport, base_url="http://billing") as client:
            client.app = app
            yield client


def billing_of(client: Client) -> Billing:
    billing: Billing = client.app.state.billing
    return billing


def token(
    role: str = "operator", scopes: Iterable[str] = SCOPES, tenant: str | None = None
) -> dict[str, str]:
    minted = mint_token(SECRET, sub="someone", role=role, scopes=scopes, tenant=tenant)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {minted}"}


OPERATOR = token()


def contractor(tenant: str = TENANT) -> dict[str, str]:
    return token("contractor", ["billing:read", "billing:write", "events:read"], tenant)


def an_active_contract(
    client: Client,
    contract_id: str = "c-1",
    tenant: str = TENANT,
    start: date = date(2026, 5, 1),
) -> str:
    billing = billing_of(client)
    billing.record_contract_fact(
        contract_id, facts.Applied("株式会社テスト", 1000, 10, None, tenant_id=tenant)
    )
    billing.record_contract_fact(contract_id, facts.Approved(start))
    return contract_id


async def an_invoice(client: Client, contract_id: str = "c-1", tenant: str = TENANT) -> str:
    an_active_contract(client, contract_id, tenant)
    response = await client.post("/v1/billing-runs", json={"period": "2026-05"}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    [invoice] = (await client.get(f"/v1/contracts/{contract_id}/invoices", headers=OPERATOR)).json()
    return str(invoice["id"])


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# Billing runs ---------------------------------------------------------------------------------


async def test_a_billing_run_issues_the_months_invoices_and_reports_them(client: Client) -> None:
    an_active_contract(client, "c-1")
    an_active_contract(client, "c-2", tenant=OTHER_TENANT)
    response = await client.post("/v1/billing-runs", json={"period": "2026-05"}, headers=OPERATOR)
    assert response.status_code == 200
    report = response.json()
    assert (report["period"], report["accounts"], report["issued"]) == ("2026-05", 2, 2)
    assert report["invoice_ids"] == 2


async def test_running_a_billing_run_again_issues_nothing_new(client: Client) -> None:
    an_active_contract(client)
    await client.post("/v1/billing-runs", json={"period": "2026-05"}, headers=OPERATOR)
    again = await client.post("/v1/billing-runs", json={"period": "2026-05"}, headers=OPERATOR)
    assert again.json()["issued"] == 0
    assert len((await client.get("/v1/contracts/c-1/invoices", headers=OPERATOR)).json()) == 1


async def test_a_billing_run_for_a_month_not_yet_over_is_refused_with_its_article(
    client: Client,
) -> None:
    body = problem(
        await client.post("/v1/billing-runs", json={"period": "2999-01"}, headers=OPERATOR), 409
    )
    assert body["article"] == "13(1)"
    assert body["rule"] == "period-not-over"


@pytest.mark.parametrize("period", ["2026-13", "2026-5", "May 2026", ""])
async def test_a_billing_run_needs_a_period_written_yyyy_mm(client: Client, period: str) -> None:
    body = problem(
        await client.post("/v1/billing-runs", json={"period": period}, headers=OPERATOR), 422
    )
    assert body["errors"][0]["field"] == "period"


async def test_a_billing_run_body_with_unknown_fields_is_refused(client: Client) -> None:
    response = await client.post(
        "/v1/billing-runs", json={"period": "2026-05", "dry_run": True}, headers=OPERATOR
    )
    assert problem(response, 422)["errors"][0]["field"] == "dry_run"


async def test_a_billing_run_needs_a_token(client: Client) -> None:
    response = await client.post("/v1/billing-runs", json={"period": "2026-05"})
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_billing_run_needs_the_operate_scope(client: Client) -> None:
    headers = token(scopes=["billing:read", "billing:write"])
    problem(await client.post("/v1/billing-runs", json={"period": "2026-05"}, headers=headers), 403)


async def test_a_contractor_cannot_start_a_billing_run(client: Client) -> None:
    headers = token("contractor", ["billing:operate"], TENANT)
    problem(await client.post("/v1/billing-runs", json={"period": "2026-05"}, headers=headers), 403)


# Invoices -------------------------------------------------------------------------------------


async def test_a_contracts_invoices_carry_api_md_fields(client: Client) -> None:
    await an_invoice(client)
    [invoice] = (await client.get("/v1/contracts/c-1/invoices", headers=OPERATOR)).json()
    assert invoice["period"] == "2026-05"
    assert invoice["lines"] == [
        {"kind": "monthly_fee", "description": invoice["lines"][0]["description"], "amount": 10000}
    ]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (10000, 1000, 11000)
    assert (invoice["due_date"], invoice["status"]) == ("2026-06-30", "unpaid")


async def test_a_contractor_sees_its_own_contracts_invoices(client: Client) -> None:
    await an_invoice(client, "c-1", TENANT)
    response = await client.get("/v1/contracts/c-1/invoices", headers=contractor(TENANT))
    assert response.status_code == 200
    assert len(response.json()) == 1


async def test_a_contractor_gets_404_for_another_contractors_contract(client: Client) -> None:
    invoice_id = await an_invoice(client, "c-1", TENANT)
    other = contractor(OTHER_TENANT)
    problem(await client.get("/v1/contracts/c-1/invoices", headers=other), 404)
    problem(await client.get(f"/v1/invoices/{invoice_id}", headers=other), 404)
    problem(await client.get(f"/v1/invoices/{invoice_id}.pdf", headers=other), 404)
    problem(await client.get("/v1/contracts/c-1/liability-cap?period=2026-05", headers=other), 404)


async def test_a_successor_contractor_sees_the_contracts_invoices(client: Client) -> None:
    await an_invoice(client, "c-1", TENANT)
    billing_of(client).record_contract_fact(
        "c-1", facts.TenantChanged(OTHER_TENANT, date(2026, 6, 1))
    )
    assert (await client.get("/v1/contracts/c-1/invoices", headers=contractor(OTHER_TENANT))).json()
    problem(await client.get("/v1/contracts/c-1/invoices", headers=contractor(TENANT)), 404)


async def test_an_unknown_contract_has_no_invoices(client: Client) -> None:
    body = problem(await client.get("/v1/contracts/nope/invoices", headers=OPERATOR), 404)
    assert body["rule"] == "contract-unknown"


async def test_reading_invoices_needs_the_read_scope(client: Client) -> None:
    await an_invoice(client)
    problem(
        await client.get("/v1/contracts/c-1/invoices", headers=token(scopes=["events:read"])), 403
    )


async def test_an_invoice_shows_the_late_interest_accrued_by_as_of(client: Client) -> None:
    invoice_id = await an_invoice(client)
    on_time = (
        await client.get(f"/v1/invoices/{invoice_id}?as_of=2026-06-30", headers=OPERATOR)
    ).json()
    assert on_time["late_interest"] == 0
    late = (
        await client.get(f"/v1/invoices/{invoice_id}?as_of=2026-07-31", headers=OPERATOR)
    ).json()
    # floor(11,000 × 0.145 × 30 / 365): 2026-07-01 through 2026-07-30.
    assert late["late_interest"] == 131
    assert late["id"] == invoice_id


async def test_an_unknown_invoice_is_404_and_a_malformed_id_422(client: Client) -> None:
    body = problem(
        await client.get("/v1/invoices/00000000-0000-0000-0000-000000000000", headers=OPERATOR), 404
    )
    assert body["rule"] == "invoice-unknown"
    problem(await client.get("/v1/invoices/not-a-uuid", headers=OPERATOR), 422)


async def test_an_invoice_comes_as_a_pdf(client: Client) -> None:
    invoice_id = await an_invoice(client)
    response = await client.get(f"/v1/invoices/{invoice_id}.pdf", headers=contractor())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")


# Payments -------------------------------------------------------------------------------------


async def test_a_payment_settles_the_invoice(client: Client) -> None:
    invoice_id = await an_invoice(client)
    response = await client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"amount": 11000, "paid_on": "2026-06-20"},
        headers=OPERATOR,
    )
    assert response.status_code == 200
    assert response.json()["status"] == "paid"
    assert (await client.get(f"/v1/invoices/{invoice_id}", headers=OPERATOR)).json()[
        "outstanding"
    ] == 0


async def test_a_late_payment_fixes_the_interest_owed(client: Client) -> None:
    invoice_id = await an_invoice(client)
    await client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"amount": 11000, "paid_on": "2026-07-31"},
        headers=OPERATOR,
    )
    later = (
        await client.get(f"/v1/invoices/{invoice_id}?as_of=2026-12-31", headers=OPERATOR)
    ).json()
    assert later["late_interest"] == 131


async def test_a_payment_must_be_positive(client: Client) -> None:
    invoice_id = await an_invoice(client)
    body = problem(
        await client.post(
            f"/v1/invoices/{invoice_id}/payments",
            json={"amount": 0, "paid_on": "2026-06-20"},
            headers=OPERATOR,
        ),
        422,
    )
    assert body["errors"] == [{"field": "amount", "message": body["detail"]}]
    assert (await client.get(f"/v1/invoices/{invoice_id}", headers=OPERATOR)).json()["paid"] == 0


@pytest.mark.parametrize(
    "payment",
    [
        {"amount": "11000", "paid_on": "2026-06-20"},
        {"amount": 11000},
        {"amount": 11000, "paid_on": "2026-06-20", "method": "cash"},
        {"amount": 11000, "paid_on": "20th June"},
    ],
)
async def test_a_malformed_payment_is_refused(client: Client, payment: dict[str, Any]) -> None:
    invoice_id = await an_invoice(client)
    response = await client.post(
        f"/v1/invoices/{invoice_id}/payments", json=payment, headers=OPERATOR
    )
    problem(response, 422)


async def test_a_payment_to_an_unknown_invoice_is_404(client: Client) -> None:
    response = await client.post(
        "/v1/invoices/00000000-0000-0000-0000-000000000000/payments",
        json={"amount": 1, "paid_on": "2026-06-20"},
        headers=OPERATOR,
    )
    problem(response, 404)


async def test_a_contractor_cannot_record_a_payment(client: Client) -> None:
    invoice_id = await an_invoice(client)
    response = await client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"amount": 11000, "paid_on": "2026-06-20"},
        headers=contractor(),
    )
    problem(response, 403)


# Surcharges and the liability cap -------------------------------------------------------------


async def test_a_surcharge_bills_the_evaded_fee_and_twice_it_on_the_next_invoice(
    client: Client,
) -> None:
    await an_invoice(client)
    response = await client.post(
        "/v1/contracts/c-1/surcharges",
        json={"evaded_amount": 5000, "note": "IDs used beyond the plan"},
        headers=OPERATOR,
    )
    assert response.status_code == 201
    assert response.json()["surcharge"] == 10000
    await client.post("/v1/billing-runs", json={"period": "2026-06"}, headers=OPERATOR)
    june = (await client.get("/v1/contracts/c-1/invoices", headers=OPERATOR)).json()[1]
    amounts = {line["kind"]: line["amount"] for line in june["lines"]}
    assert (amounts["evaded_fee"], amounts["surcharge"]) == (5000, 10000)


async def test_a_surcharge_must_be_positive_naming_article_13_3(client: Client) -> None:
    an_active_contract(client)
    body = problem(
        await client.post(
            "/v1/contracts/c-1/surcharges", json={"evaded_amount": -1}, headers=OPERATOR
        ),
        422,
    )
    assert (body["article"], body["errors"][0]["field"]) == ("13(3)", "evaded_amount")


async def test_a_surcharge_on_a_rejected_application_is_a_conflict(client: Client) -> None:
    billing = billing_of(client)
    billing.record_contract_fact("c-9", facts.Applied("株式会社テスト", 1000, 10, None, TENANT))
    billing.record_contract_fact("c-9", facts.Rejected("art4.3.1"))
    response = await client.post(
        "/v1/contracts/c-9/surcharges", json={"evaded_amount": 100}, headers=OPERATOR
    )
    assert problem(response, 409)["article"] == "13(3)"


async def test_a_surcharge_on_an_unknown_contract_is_404(client: Client) -> None:
    response = await client.post(
        "/v1/contracts/nope/surcharges", json={"evaded_amount": 100}, headers=OPERATOR
    )
    problem(response, 404)


async def test_a_surcharge_needs_the_operate_scope(client: Client) -> None:
    an_active_contract(client)
    response = await client.post(
        "/v1/contracts/c-1/surcharges", json={"evaded_amount": 100}, headers=contractor()
    )
    problem(response, 403)


async def test_the_liability_cap_is_the_months_fee_with_its_basis(client: Client) -> None:
    an_active_contract(client)
    response = await client.get(
        "/v1/contracts/c-1/liability-cap?period=2026-05", headers=contractor()
    )
    assert response.status_code == 200
    cap = response.json()
    assert (cap["cap"], cap["article"]) == (10000, "20(2)")
    assert cap["basis"][0]["id_count"] == 10


async def test_the_liability_cap_needs_a_period(client: Client) -> None:
    an_active_contract(client)
    body = problem(await client.get("/v1/contracts/c-1/liability-cap", headers=OPERATOR), 422)
    assert body["errors"][0]["field"] == "query.period"


# The log --------------------------------------------------------------------------------------


async def test_the_log_serves_published_events_after_a_position(client: Client) -> None:
    await an_invoice(client)
    page = (await client.get("/v1/events?after=0&limit=100", headers=OPERATOR)).json()
    types = [event["type"] for event in page["events"]]
    assert "smartid.billing.InvoiceIssued.v1" in types
    assert page["next_after"] > 0
    rest = (await client.get(f"/v1/events?after={page['next_after']}", headers=OPERATOR)).json()
    assert rest["events"] == []


async def test_the_log_needs_the_events_scope(client: Client) -> None:
    problem(await client.get("/v1/events", headers=token(scopes=["billing:read"])), 403)
    problem(await client.get("/v1/events"), 401)


async def test_billing_is_ready_when_postgres_and_nats_answer(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"postgres": "ok", "nats": "ok"}
