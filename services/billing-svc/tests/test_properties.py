"""Properties over random contract stories: replay, tax rounding, idempotent runs."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_svc.application import Billing
from billing_svc.domain import facts
from billing_svc.domain.tax import consumption_tax

from .stories import an_active_contract

MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]
days = st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 4, 30))
late_facts = st.one_of(
    st.builds(facts.IdCountChanged, st.integers(0, 50), days),
    st.builds(facts.FeeChanged, st.integers(0, 3000), days),
    st.builds(facts.Terminated, days),
    st.builds(facts.Suspended, days),
    st.just(facts.ConstructionCancelled()),
    st.just(facts.ConstructionStarted()),
)
story = st.fixed_dictionaries(
    {
        "start": days,
        "construction_fee": st.one_of(st.none(), st.integers(1, 100000)),
        # Facts told after each month's run, so some land in invoiced months.
        "facts": st.lists(st.lists(late_facts, max_size=3), min_size=4, max_size=4),
        "surcharges": st.lists(st.integers(0, 5000), min_size=4, max_size=4),
        "payments": st.lists(
            st.tuples(st.integers(0, 30000), st.integers(0, 400)), min_size=4, max_size=4
        ),
    }
)
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def told(tale: dict[str, object]) -> tuple[Billing, list[dict[str, object]]]:
    """Tell the story month by month; return the app and each invoice as first issued."""
    billing = Billing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    start = tale["start"]
    assert isinstance(start, date)
    fee = tale["construction_fee"]
    an_active_contract(billing, start=start, construction_fee=fee if isinstance(fee, int) else None)
    issued: list[dict[str, object]] = []
    for index, month in enumerate(MONTHS):
        surcharge = tale["surcharges"][index]  # type: ignore[index]
        if surcharge:
            billing.assess_surcharge("c-1", surcharge)
        report = billing.run_billing(month, issued_on=date(2026, index + 2, 1))
        for invoice_id in report.invoice_ids:
            issued.append(billing.get_invoice(invoice_id, as_of=date(2026, 12, 31)).to_dict())
            amount, delay = tale["payments"][index]  # type: ignore[index]
            if amount:
                paid_on = date.fromordinal(date(2026, index + 2, 1).toordinal() + delay)
                billing.record_payment(invoice_id, amount, paid_on)
        for fact in tale["facts"][index]:  # type: ignore[index]
            billing.record_contract_fact("c-1", fact)
    return billing, issued


@PROPERTY_SETTINGS
@given(story)
def test_replaying_billings_events_rebuilds_identical_invoices(tale: dict[str, object]) -> None:
    billing, issued = told(tale)
    replayed = Billing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    # A second application over the same stored events: everything it knows comes from replay.
    replayed.recorder = billing.recorder
    replayed.events.recorder = billing.recorder
    for before in issued:
        after = replayed.get_invoice(UUID(str(before["id"])), as_of=date(2026, 12, 31))
        assert {k: v for k, v in after.to_dict().items() if k in _ISSUED_FIELDS} == {
            k: v for k, v in before.items() if k in _ISSUED_FIELDS
        }


_ISSUED_FIELDS = {"id", "period", "lines", "subtotal", "tax", "total", "due_date", "issued_on"}


@PROPERTY_SETTINGS
@given(story)
def test_every_invoice_taxes_its_taxable_lines_once_rounded_down(tale: dict[str, object]) -> None:
    _billing, issued = told(tale)
    for invoice in issued:
        lines = invoice["lines"]
        assert isinstance(lines, list)
        taxable = [line["amount"] for line in lines if line["kind"] != "late_interest"]
        assert invoice["tax"] == consumption_tax(taxable)
        assert isinstance(invoice["total"], int) and invoice["total"] >= 0


@PROPERTY_SETTINGS
@given(story)
def test_a_repeated_billing_run_issues_nothing_new(tale: dict[str, object]) -> None:
    billing, issued = told(tale)
    for index, month in enumerate(MONTHS):
        assert billing.run_billing(month, issued_on=date(2026, index + 6, 1)).issued == 0
    assert len(billing.invoices_of("c-1")) == len(issued)
