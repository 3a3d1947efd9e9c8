"""Service-wide fee changes (Art. 12(2)) and invoice addressees, whatever order facts arrive in.

Fee 1,000 yen per ID and 10 IDs unless a test says otherwise. Expected figures by hand:

- Change to 1,200 from 2026-05-16 for a contract applied 2026-04-20, started 2026-05-01:
  May 1–15 (15 d) at 1000 × 10: floor(150000 / 30.4) = floor(4934.21) = 4934;
  May 16–31 (16 d) at 1200 × 10: floor(192000 / 30.4) = floor(6315.78) = 6315;
  May = 4934 + 6315 = 11249; tax floor(1124.9) = 1124; total 12373.
- The same change arriving after May was invoiced at 10000: June is whole at 1200 × 10 =
  12000, plus an adjustment for May of 11249 − 10000 = 1249; subtotal 13249,
  tax floor(1324.9) = 1324, total 14573.
- A contract applied 2026-05-20 (after the change took effect) with its own fee of 900 and
  started 2026-06-01: its form's fee stands (Art. 12(1)); June = 900 × 10 = 9000.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from billing_svc.application import Billing
from billing_svc.consumers import to_fact
from billing_svc.domain import facts
from smartid_events.envelope import CloudEvent, event_type

D = date
FEE_CHANGE = facts.FeeChanged(1200, D(2026, 5, 16))


def applied(
    fee: int = 1000, on: date = D(2026, 4, 20), name: str = "株式会社テスト"
) -> facts.Applied:
    return facts.Applied(name, fee, 10, None, tenant_id="tenant-a", applied_on=on)


def tell(billing: Billing, contract_id: str, *story: facts.ContractFact) -> None:
    for fact in story:
        billing.record_contract_fact(contract_id, fact)


def invoice(billing: Billing, contract_id: str, period: str) -> dict[str, Any]:
    views = [v for v in billing.invoices_of(contract_id) if v.period == period]
    assert len(views) == 1
    return views[0].to_dict()


def addressee(billing: Billing, contract_id: str, period: str) -> str:
    return next(v for v in billing.invoices_of(contract_id) if v.period == period).recipient_name


def test_a_fee_change_told_before_the_contracts_events_still_applies(billing: Billing) -> None:
    billing.record_fee_change(FEE_CHANGE, Tracking("billing-contract-events:p00", 7))
    tell(billing, "c-1", applied(), facts.Approved(D(2026, 5, 1)))
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    may = invoice(billing, "c-1", "2026-05")
    assert [line["amount"] for line in may["lines"]] == [4934, 6315]
    assert (may["subtotal"], may["tax"], may["total"]) == (11249, 1124, 12373)


def test_a_fee_change_told_after_the_contracts_events_gives_the_same_invoice(
    billing: Billing,
) -> None:
    tell(billing, "c-1", applied(), facts.Approved(D(2026, 5, 1)))
    billing.record_fee_change(FEE_CHANGE, Tracking("billing-contract-events:p00", 7))
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    may = invoice(billing, "c-1", "2026-05")
    assert [line["amount"] for line in may["lines"]] == [4934, 6315]
    assert may["total"] == 12373


def test_a_fee_change_told_after_its_month_was_invoiced_is_adjusted_on_the_next_invoice(
    billing: Billing,
) -> None:
    tell(billing, "c-1", applied(), facts.Approved(D(2026, 5, 1)))
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    assert invoice(billing, "c-1", "2026-05")["subtotal"] == 10000
    billing.record_fee_change(FEE_CHANGE)
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    june = invoice(billing, "c-1", "2026-06")
    assert [(line["kind"], line["amount"]) for line in june["lines"]] == [
        ("adjustment", 1249),
        ("monthly_fee", 12000),
    ]
    assert (june["subtotal"], june["tax"], june["total"]) == (13249, 1324, 14573)
    assert invoice(billing, "c-1", "2026-05")["subtotal"] == 10000  # issued, never changed


def test_a_fee_change_is_adjusted_once_only(billing: Billing) -> None:
    tell(billing, "c-1", applied(), facts.Approved(D(2026, 5, 1)))
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    billing.record_fee_change(FEE_CHANGE)
    billing.record_fee_change(FEE_CHANGE)  # told twice (e.g. replayed upstream)
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    billing.run_billing("2026-07", issued_on=D(2026, 8, 1))
    july = invoice(billing, "c-1", "2026-07")
    assert [(line["kind"], line["amount"]) for line in july["lines"]] == [("monthly_fee", 12000)]


@pytest.mark.parametrize("order", ["change first", "contract first"])
def test_a_contract_applied_for_after_a_change_took_effect_keeps_its_forms_fee(
    billing: Billing, order: str
) -> None:
    story = (applied(fee=900, on=D(2026, 5, 20)), facts.Approved(D(2026, 6, 1)))
    if order == "change first":
        billing.record_fee_change(FEE_CHANGE)
        tell(billing, "c-1", *story)
    else:
        tell(billing, "c-1", *story)
        billing.record_fee_change(FEE_CHANGE)
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    assert invoice(billing, "c-1", "2026-06")["subtotal"] == 9000


def test_a_later_fee_change_applies_to_a_contract_applied_for_between_two_changes(
    billing: Billing,
) -> None:
    billing.record_fee_change(FEE_CHANGE)
    billing.record_fee_change(facts.FeeChanged(1500, D(2026, 7, 1)))
    tell(billing, "c-1", applied(fee=900, on=D(2026, 5, 20)), facts.Approved(D(2026, 6, 1)))
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    billing.run_billing("2026-07", issued_on=D(2026, 8, 1))
    # June at its own 900 × 10; July at 1500 × 10 (Art. 12(2), effective after it applied).
    assert invoice(billing, "c-1", "2026-06")["subtotal"] == 9000
    assert invoice(billing, "c-1", "2026-07")["subtotal"] == 15000


def test_the_liability_cap_follows_the_fee_schedule(billing: Billing) -> None:
    tell(billing, "c-1", applied(), facts.Approved(D(2026, 5, 1)))
    billing.record_fee_change(FEE_CHANGE)
    # Art. 20(2): the largest monthly fee in force in May: 1200 × 10.
    assert billing.liability_cap("c-1", "2026-05").cap == 12000


def test_invoices_are_addressed_to_the_name_in_effect_when_issued(billing: Billing) -> None:
    tell(billing, "c-1", applied(name="旧商号株式会社"), facts.Approved(D(2026, 5, 1)))
    tell(billing, "c-1", facts.ContractorRenamed("新商号株式会社", D(2026, 7, 1)))
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    assert addressee(billing, "c-1", "2026-05") == "旧商号株式会社"
    assert addressee(billing, "c-1", "2026-06") == "新商号株式会社"


def test_a_successor_named_in_its_event_becomes_the_addressee(billing: Billing) -> None:
    tell(billing, "c-1", applied(), facts.Approved(D(2026, 5, 1)))
    tell(billing, "c-1", facts.TenantChanged("tenant-b", D(2026, 6, 1), "承継株式会社"))
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    assert addressee(billing, "c-1", "2026-05") == "承継株式会社"
    assert billing.tenant_of("c-1") == "tenant-b"


def test_an_erased_name_never_replaces_the_addressee() -> None:
    event = CloudEvent(
        id="e-1",
        source="smartid/contract-svc",
        type=event_type("contract", "ContractorDetailsChanged", 1),
        subject="c-1",
        time=datetime(2026, 5, 1, tzinfo=UTC),
        data={"contract_id": "c-1", "effective_date": "2026-07-01", "contractor_name": "[erased]"},
        position=3,
    )
    assert to_fact(event) is None
