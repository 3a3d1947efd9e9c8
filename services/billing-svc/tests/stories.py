"""Contract stories told to a Billing application, as contract-svc's facts."""

from __future__ import annotations

from datetime import date

from billing_svc.application import Billing
from billing_svc.domain import facts


def an_active_contract(
    billing: Billing,
    contract_id: str = "c-1",
    start: date = date(2026, 5, 1),
    fee: int = 1000,
    ids: int = 10,
    construction_fee: int | None = None,
) -> str:
    billing.record_contract_fact(
        contract_id, facts.Applied("株式会社テスト", fee, ids, construction_fee)
    )
    billing.record_contract_fact(contract_id, facts.Approved(start))
    return contract_id
