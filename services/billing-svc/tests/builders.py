"""Builders for billing tests: accounts with a story, told in contract facts."""

from __future__ import annotations

from datetime import date

from billing_svc.domain import facts
from billing_svc.domain.account import Account
from billing_svc.domain.proration import Tariff

FEE = 1000
IDS = 10


def a_tariff(start: date, end: date | None = None, fee: int = FEE, ids: int = IDS) -> Tariff:
    tariff = Tariff()
    tariff.set_fee(date.min, fee)
    tariff.set_id_count(date.min, ids)
    tariff.start = start
    tariff.end = end
    return tariff


def an_account(
    start: date | None = date(2026, 5, 1),
    fee: int = FEE,
    ids: int = IDS,
    construction_fee: int | None = None,
    contract_id: str = "c-1",
) -> Account:
    account = Account.open(contract_id, facts.Applied("株式会社テスト", fee, ids, construction_fee))
    if start is not None:
        account.record(facts.Approved(start))
    return account
