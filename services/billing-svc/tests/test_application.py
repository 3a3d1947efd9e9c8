"""Billing's use cases on the in-memory store and on a real PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from eventsourcing.persistence import Tracking

from billing_svc.application import Billing, RunProgress
from billing_svc.domain import facts
from billing_svc.domain.errors import (
    AccountNotFoundError,
    InvalidPaymentError,
    InvalidSurchargeError,
    InvoiceNotFoundError,
)

from .stories import an_active_contract

D = date


def test_a_billing_run_issues_one_invoice_per_active_contract(billing: Billing) -> None:
    an_active_contract(billing, "c-1")
    an_active_contract(billing, "c-2", start=D(2026, 5, 16))
    report = billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    assert report.issued == 2
    [invoice] = billing.invoices_of("c-2")
    assert invoice.to_dict()["lines"] == [
        {
            "kind": "prorated_fee",
            "description": "2026-05 日割利用料 05/16〜05/31 (16日) 10 ID × ¥1,000",
            "amount": 5263,
        }
    ]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (5263, 526, 5789)
    assert invoice.due_date == D(2026, 6, 30)
    assert invoice.status == "unpaid"


def test_running_a_billing_run_again_issues_nothing_new(billing: Billing) -> None:
    an_active_contract(billing)
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    again = billing.run_billing("2026-05", issued_on=D(2026, 6, 2))
    assert again.issued == 0
    assert len(billing.invoices_of("c-1")) == 1


def test_a_fact_told_after_a_finished_run_waits_for_the_next_periods_invoice(
    billing: Billing,
) -> None:
    """api.md: running a billing run again issues nothing new, even when a fact told since
    changes a month it covered; the next period's invoice carries the adjustment."""
    an_active_contract(billing, start=D(2026, 1, 1))
    billing.run_billing("2026-01", issued_on=D(2026, 2, 1))
    billing.record_contract_fact("c-1", facts.Terminated(D(2026, 2, 1)))
    billing.run_billing("2026-02", issued_on=D(2026, 3, 1))  # February: its 1 day
    first_april = billing.run_billing("2026-04", issued_on=D(2026, 5, 1))
    assert first_april.issued == 0  # nothing owed in April
    billing.record_contract_fact("c-1", facts.Terminated(D(2026, 1, 1)))  # ended earlier
    again = billing.run_billing("2026-04", issued_on=D(2026, 9, 1))
    assert (again.issued, again.finished_before) == (0, True)
    may = billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    assert may.issued == 1
    lines = billing.get_invoice(may.invoice_ids[0]).to_dict()["lines"]
    assert [line["kind"] for line in lines] == ["adjustment", "adjustment"]  # January, February


def test_a_contract_told_after_a_finished_run_is_billed_for_it_by_the_next_run(
    billing: Billing,
) -> None:
    an_active_contract(billing, "c-1")
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    an_active_contract(billing, "c-2")  # approved late, from May 1
    assert billing.run_billing("2026-05", issued_on=D(2026, 6, 2)).issued == 0
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    (invoice,) = billing.invoices_of("c-2")
    assert (invoice.period, invoice.to_dict()["subtotal"]) == ("2026-06", 20000)  # May + June


def test_an_interrupted_run_completes_when_run_again(billing: Billing) -> None:
    for n in range(5):
        an_active_contract(billing, f"c-{n}")

    def interrupt(progress: RunProgress) -> None:
        if progress.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        billing.run_billing("2026-05", issued_on=D(2026, 6, 1), batch_size=2, progress=interrupt)
    resumed = billing.run_billing("2026-05", issued_on=D(2026, 6, 1), batch_size=2)
    assert resumed.issued == 3
    assert all(len(billing.invoices_of(f"c-{n}")) == 1 for n in range(5))


def test_a_run_reports_its_progress_batch_by_batch(billing: Billing) -> None:
    for n in range(5):
        an_active_contract(billing, f"c-{n}")
    seen: list[tuple[int, int, int]] = []
    billing.run_billing(
        "2026-05",
        issued_on=D(2026, 6, 1),
        batch_size=2,
        progress=lambda p: seen.append((p.done, p.total, p.issued)),
    )
    assert seen == [(2, 5, 2), (4, 5, 4), (5, 5, 5)]


def test_a_contract_not_yet_approved_is_not_billed(billing: Billing) -> None:
    billing.record_contract_fact("c-1", facts.Applied("株式会社テスト", 1000, 10, None))
    assert billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).issued == 0


def test_a_fact_already_handled_changes_nothing(billing: Billing) -> None:
    an_active_contract(billing)
    tracking = Tracking("contract", 7)
    billing.record_contract_fact("c-1", facts.IdCountChanged(20, D(2026, 5, 1)), tracking)
    assert billing.already_handled(tracking)
    billing.record_contract_fact("c-1", facts.IdCountChanged(30, D(2026, 5, 1)), tracking)
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    assert billing.invoices_of("c-1")[0].subtotal == 20000


def test_redelivered_facts_change_nothing_even_where_they_no_longer_apply(
    billing: Billing,
) -> None:
    told = [
        facts.Applied("株式会社テスト", 1000, 10, None),
        facts.Approved(D(2026, 5, 1)),
        facts.Terminated(D(2026, 5, 20)),
    ]
    for position, fact in enumerate(told, 1):
        billing.record_contract_fact("c-1", fact, Tracking("contract", position))
    version = billing._account("c-1").version
    for position, fact in enumerate(told, 1):  # as a consumer would after a crash
        billing.record_contract_fact("c-1", fact, Tracking("contract", position))
    assert billing._account("c-1").version == version
    assert billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).issued == 1


def test_a_failing_fact_that_was_not_handled_before_still_fails(billing: Billing) -> None:
    with pytest.raises(AccountNotFoundError):
        billing.record_contract_fact("nope", facts.Approved(D(2026, 5, 1)), Tracking("contract", 9))
    assert not billing.already_handled(Tracking("contract", 9))


def test_a_fact_that_changes_nothing_still_records_its_tracking(billing: Billing) -> None:
    an_active_contract(billing)
    tracking = Tracking("contract", 3)
    billing.record_contract_fact("c-1", facts.Suspended(D(2026, 5, 3)), tracking)
    assert billing.already_handled(tracking)
    assert not billing.already_handled(Tracking("contract", 4))


def test_a_fact_for_an_unknown_contract_is_refused(billing: Billing) -> None:
    with pytest.raises(AccountNotFoundError):
        billing.record_contract_fact("nope", facts.Approved(D(2026, 5, 1)))


def test_a_late_payment_charges_interest_on_the_next_invoice_outside_the_tax_base(
    billing: Billing,
) -> None:
    an_active_contract(billing)
    may = billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).invoice_ids[0]
    # 11000 due Jun 30, paid Jul 31: Jul 1–30 = 30 days: floor(11000 × 0.145 × 30 / 365) = 131.
    paid = billing.record_payment(may, 11000, D(2026, 7, 31))
    assert (paid.status, paid.late_interest) == ("paid", 131)
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    june = billing.invoices_of("c-1")[1]
    assert [line.amount for line in june.lines] == [10000, 131]
    # Tax on 10000 only; total 10000 + 131 + 1000.
    assert (june.tax, june.total) == (1000, 11131)


def test_an_unpaid_invoice_shows_the_interest_accrued_as_of_a_date(billing: Billing) -> None:
    an_active_contract(billing)
    may = billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).invoice_ids[0]
    assert billing.get_invoice(may, as_of=D(2026, 6, 30)).late_interest == 0
    assert billing.get_invoice(may, as_of=D(2026, 7, 31)).late_interest == 131


def test_a_partial_payment_leaves_the_invoice_partially_paid(billing: Billing) -> None:
    an_active_contract(billing)
    may = billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).invoice_ids[0]
    view = billing.record_payment(may, 5000, D(2026, 6, 10))
    assert (view.status, view.outstanding) == ("partially_paid", 6000)
    # 6000 unpaid Jul 1–30: floor(6000 × 0.145 × 30 / 365) = floor(71.5) = 71.
    assert billing.get_invoice(may, as_of=D(2026, 7, 31)).late_interest == 71


def test_an_overpayment_is_credited_to_the_next_invoice(billing: Billing) -> None:
    an_active_contract(billing)
    may = billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).invoice_ids[0]
    billing.record_payment(may, 15000, D(2026, 6, 10))
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    june = billing.invoices_of("c-1")[1]
    # 11000 − 4000 of credit brought forward.
    assert (june.credit_brought_forward, june.total) == (4000, 7000)


def test_credits_beyond_the_charges_leave_a_zero_total_and_carry_the_rest(
    billing: Billing,
) -> None:
    an_active_contract(billing, construction_fee=50000)
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    billing.record_contract_fact("c-1", facts.ConstructionCancelled())
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    billing.run_billing("2026-07", issued_on=D(2026, 8, 1))
    may, june, july = billing.invoices_of("c-1")
    assert may.total == 66000  # 10000 + 50000 + 6000 tax
    # 10000 − 50000 = −40000, tax −4000: 44000 of credit carried, total 0.
    assert (june.total, june.credit_carried_forward) == (0, 44000)
    # 11000 against 44000 of credit: 33000 still carried.
    assert (july.total, july.credit_carried_forward) == (0, 33000)


def test_a_backdated_termination_is_adjusted_on_the_next_invoice(billing: Billing) -> None:
    an_active_contract(billing)
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    billing.record_contract_fact("c-1", facts.Terminated(D(2026, 6, 15)))
    billing.run_billing("2026-07", issued_on=D(2026, 8, 1))
    _may, june, july = billing.invoices_of("c-1")
    assert june.subtotal == 10000  # an issued invoice never changes
    # June is now Jun 1–15 = 15 days: floor(150000 / 30.4) = 4934: adjustment 4934 − 10000.
    assert [(line.kind, line.amount) for line in july.lines] == [("adjustment", -5066)]


def test_a_surcharge_bills_the_evaded_fee_and_twice_it(billing: Billing) -> None:
    an_active_contract(billing)
    billing.assess_surcharge("c-1", 3000, note="不正利用")
    billing.run_billing("2026-05", issued_on=D(2026, 6, 1))
    lines = billing.invoices_of("c-1")[0].lines
    assert [(line.kind, line.amount) for line in lines][1:] == [
        ("evaded_fee", 3000),
        ("surcharge", 6000),
    ]


def test_a_surcharge_needs_a_positive_evaded_amount(billing: Billing) -> None:
    an_active_contract(billing)
    with pytest.raises(InvalidSurchargeError):
        billing.assess_surcharge("c-1", 0)


def test_a_payment_must_be_positive(billing: Billing) -> None:
    an_active_contract(billing)
    may = billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).invoice_ids[0]
    with pytest.raises(InvalidPaymentError):
        billing.record_payment(may, 0, D(2026, 6, 1))


def test_an_unknown_invoice_is_not_found(billing: Billing) -> None:
    an_active_contract(billing)
    from billing_svc.domain.account import Account

    with pytest.raises(InvoiceNotFoundError):
        billing.get_invoice(Account.create_id("c-1"))


def test_the_liability_cap_is_the_largest_monthly_fee_in_force_in_the_month(
    billing: Billing,
) -> None:
    an_active_contract(billing)
    billing.record_contract_fact("c-1", facts.IdCountChanged(25, D(2026, 5, 20)))
    cap = billing.liability_cap("c-1", "2026-05")
    # Art. 20(2): 1000 × 25 IDs from May 20 on.
    assert cap.cap == 25000
    assert [s.monthly_fee for s in cap.basis] == [10000, 25000]
    assert billing.liability_cap("c-1", "2026-04").cap == 0
