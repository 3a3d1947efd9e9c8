"""Contract commands over HTTP → events over NATS → billing runs → invoices, on the whole stack."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

CONTRACT = "http://127.0.0.1:8001"
BILLING = "http://127.0.0.1:8002"
WAIT_S = 60.0


class Portal:
    """What the SECOM portal does: HTTP calls with a bearer token."""

    def __init__(self, stack: Path) -> None:
        token = (stack / "var" / "dev-token").read_text().strip()
        self.http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(url, json=body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, url: str) -> Any:
        response = self.http.get(url)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_account(self, contract_id: str) -> None:
        """Billing knows the contract once contract-svc's events reached it over NATS."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            response = self.http.get(f"{BILLING}/v1/contracts/{contract_id}/invoices")
            if response.status_code == 200:
                return
            time.sleep(0.1)
        pytest.fail(f"billing never heard of contract {contract_id}")

    def wait_for_id_count(self, contract_id: str, period: str, id_count: int) -> None:
        """Wait until billing's record of the contract shows `id_count` in `period`."""
        deadline = time.monotonic() + WAIT_S
        url = f"{BILLING}/v1/contracts/{contract_id}/liability-cap?period={period}"
        while time.monotonic() < deadline:
            basis = self.get(url)["basis"]
            if basis and basis[-1]["id_count"] == id_count:
                return
            time.sleep(0.1)
        pytest.fail(f"billing never saw {contract_id} at {id_count} IDs in {period}")


def an_application(name: str) -> dict[str, Any]:
    return {
        "contractor": {"name": name, "address": "東京都渋谷区1-1", "email": "a@sample.example"},
        "plan": {"monthly_fee_per_id": 300, "id_count": 10},
        "terms_version": "2026-04",
        "agreed_to_terms": True,
    }


def lines_of(invoice: dict[str, Any], kind: str) -> list[int]:
    return [line["amount"] for line in invoice["lines"] if line["kind"] == kind]


@pytest.mark.integration
def test_contract_events_reach_billing_and_become_correct_invoices(stack: Path) -> None:
    portal = Portal(stack)
    with portal.http:
        check_the_flow(portal)


def check_the_flow(portal: Portal) -> None:
    portal.post(
        f"{CONTRACT}/v1/terms",
        {"version": "2026-04", "content": "利用規約", "effective_date": "2026-04-01"},
    )
    contract = portal.post(f"{CONTRACT}/v1/contracts", an_application("株式会社請求テスト"))
    contract_id = contract["id"]
    portal.post(f"{CONTRACT}/v1/contracts/{contract_id}/approval", {"start_date": "2026-07-15"})
    portal.wait_for_account(contract_id)
    portal.wait_for_id_count(contract_id, "2026-07", 10)  # the approval arrived too

    july = portal.post(f"{BILLING}/v1/billing-runs", {"period": "2026-07"})
    assert july["issued"] >= 1
    again = portal.post(f"{BILLING}/v1/billing-runs", {"period": "2026-07"})
    assert again["issued"] == 0

    (invoice,) = portal.get(f"{BILLING}/v1/contracts/{contract_id}/invoices")
    # 15–31 July is 17 days: floor(300 × 10 × 17 / 30.4) = floor(1677.63) = 1677; tax 167.
    assert lines_of(invoice, "prorated_fee") == [1677]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (1677, 167, 1844)
    assert invoice["due_date"] == "2026-08-31"

    portal.post(f"{BILLING}/v1/billing-runs", {"period": "2026-08"})
    # A change effective inside invoiced August, recorded late: adjusted on September's invoice.
    portal.post(
        f"{CONTRACT}/v1/contracts/{contract_id}/id-count",
        {"id_count": 12, "effective_date": "2026-08-16"},
    )
    portal.wait_for_id_count(contract_id, "2026-08", 12)
    portal.post(f"{BILLING}/v1/billing-runs", {"period": "2026-09"})
    invoices = portal.get(f"{BILLING}/v1/contracts/{contract_id}/invoices")
    by_period = {i["period"]: i for i in invoices}
    # August as issued: a whole month at 10 IDs.
    assert lines_of(by_period["2026-08"], "monthly_fee") == [3000]
    september = by_period["2026-09"]
    assert lines_of(september, "monthly_fee") == [3600]
    # August re-computed: 1–15 at 10 IDs floor(3000 × 15 / 30.4) = 1480, 16–31 at 12 IDs
    # floor(3600 × 16 / 30.4) = 1894; 3374 − 3000 billed = 374.
    assert sum(lines_of(september, "adjustment")) == 374
    assert september["tax"] == (3600 + 374) // 10
