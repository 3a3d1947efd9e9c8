"""Billing arithmetic by hand: each case's expected figure is worked out in its comment.

Fee 1,000 yen per ID and 10 IDs (10,000 yen a month) unless a case says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from billing_svc.domain import facts, periods
from billing_svc.domain.fee_schedule import FeeSchedule
from billing_svc.domain.interest import Payment, late_interest
from billing_svc.domain.tax import consumption_tax

from .builders import a_tariff, an_account

D = date


def fees(start: date, period: str, end: date | None = None, fee: int = 1000, ids: int = 10) -> int:
    return a_tariff(start, end, fee, ids).fee_total(period)


def fees_with_changes(period: str, *changes: facts.ContractFact) -> int:
    account = an_account(start=D(2026, 1, 1))
    schedule = FeeSchedule()
    for change in changes:
        # Art. 12(2): fee changes are service-wide, kept on the fee schedule.
        if isinstance(change, facts.FeeChanged):
            schedule.record(change)
        else:
            account.record(change)
    return account.tariff_under(schedule).fee_total(period)


def first_invoice_total(*story: facts.ContractFact, construction_fee: int | None = None) -> int:
    account = an_account(start=D(2026, 5, 1), construction_fee=construction_fee)
    for fact in story:
        account.record(fact)
    invoice = account.bill("2026-05", D(2026, 6, 1))
    assert invoice is not None
    return invoice.total


def interest(
    paid: list[tuple[int, date]], until: date | None = None, due: date = D(2026, 6, 30)
) -> int:
    return late_interest(11000, due, [Payment(a, d) for a, d in paid], until)


def backdated_change_adjustment() -> int:
    account = an_account(start=D(2026, 5, 1))
    assert account.bill("2026-05", D(2026, 6, 1)) is not None
    account.record(facts.IdCountChanged(20, D(2026, 5, 11)))
    june = account.bill("2026-06", D(2026, 7, 1))
    assert june is not None
    return sum(line.amount for line in june.lines if line.kind == "adjustment")


CASES: list[tuple[str, Callable[[], int], int]] = [
    # 31-day May from the 1st: whole month, 1000 × 10 = 10000.
    ("start on the 1st", lambda: fees(D(2026, 5, 1), "2026-05"), 10000),
    # May 16–31 = 16 days: floor(10000 × 16 / 30.4) = floor(5263.15) = 5263.
    ("start mid-month", lambda: fees(D(2026, 5, 16), "2026-05"), 5263),
    # May 31 only = 1 day: floor(10000 / 30.4) = floor(328.94) = 328.
    ("start on the last day", lambda: fees(D(2026, 5, 31), "2026-05"), 328),
    # Jan 31 only = 1 day: floor(328.94) = 328.
    ("start on the 31st of january", lambda: fees(D(2026, 1, 31), "2026-01"), 328),
    # End May 31 (last day): the month stays whole, 10000.
    ("end on the last day", lambda: fees(D(2026, 1, 1), "2026-05", D(2026, 5, 31)), 10000),
    # End May 1 = 1 day: floor(10000 / 30.4) = 328.
    ("end on the 1st", lambda: fees(D(2026, 1, 1), "2026-05", D(2026, 5, 1)), 328),
    # End May 15 = 15 days: floor(150000 / 30.4) = floor(4934.21) = 4934.
    ("end mid-month", lambda: fees(D(2026, 1, 1), "2026-05", D(2026, 5, 15)), 4934),
    # 28-day Feb 2026, Feb 15–28 = 14 days: floor(140000 / 30.4) = floor(4605.26) = 4605.
    ("28-day february mid-month start", lambda: fees(D(2026, 2, 15), "2026-02"), 4605),
    # 28-day Feb 2026 ending on the 28th (its last day): whole, 10000.
    (
        "28-day february ends on its last day",
        lambda: fees(D(2026, 1, 1), "2026-02", D(2026, 2, 28)),
        10000,
    ),
    # 29-day Feb 2028, Feb 15–29 = 15 days: floor(150000 / 30.4) = 4934.
    ("29-day february mid-month start", lambda: fees(D(2028, 2, 15), "2028-02"), 4934),
    # 29-day Feb 2028 ending on the 28th = 28 days: floor(280000 / 30.4) = floor(9210.52) = 9210.
    (
        "29-day february ends the day before its last",
        lambda: fees(D(2028, 1, 1), "2028-02", D(2028, 2, 28)),
        9210,
    ),
    # 29-day Feb 2028 from the 1st: whole, 10000.
    ("29-day february whole", lambda: fees(D(2028, 2, 1), "2028-02"), 10000),
    # 30-day April, Apr 2–30 = 29 days: floor(290000 / 30.4) = floor(9539.47) = 9539.
    ("30-day april from the 2nd", lambda: fees(D(2026, 4, 2), "2026-04"), 9539),
    # 31-day July, Jul 1–30 = 30 days: floor(300000 / 30.4) = floor(9868.42) = 9868.
    (
        "31-day july ending the day before its last",
        lambda: fees(D(2026, 1, 1), "2026-07", D(2026, 7, 30)),
        9868,
    ),
    # Start and end in June: Jun 10–20 = 11 days: floor(110000 / 30.4) = floor(3618.42) = 3618.
    (
        "start and end in the same month",
        lambda: fees(D(2026, 6, 10), "2026-06", D(2026, 6, 20)),
        3618,
    ),
    # Start Jun 1, end Jun 30: whole, 10000.
    (
        "start on the 1st and end on the last day of one month",
        lambda: fees(D(2026, 6, 1), "2026-06", D(2026, 6, 30)),
        10000,
    ),
    # Fee 550 × 3 IDs = 1650; Sep 10–30 = 21 days: floor(34650 / 30.4) = floor(1139.80) = 1139.
    ("odd fee prorated", lambda: fees(D(2026, 9, 10), "2026-09", fee=550, ids=3), 1139),
    # Month before the start: nothing.
    ("month before the start", lambda: fees(D(2026, 6, 10), "2026-05"), 0),
    # Month after the end: nothing.
    ("month after the end", lambda: fees(D(2026, 1, 1), "2026-06", D(2026, 5, 31)), 0),
    # ID count 20 from May 1: whole May at 20 IDs = 20000.
    (
        "id change on the 1st keeps the month whole",
        lambda: fees_with_changes("2026-05", facts.IdCountChanged(20, D(2026, 5, 1))),
        20000,
    ),
    # 10 IDs May 1–10 (10 d): floor(100000/30.4) = 3289; 20 IDs May 11–31 (21 d):
    # floor(420000/30.4) = floor(13815.78) = 13815; 3289 + 13815 = 17104.
    (
        "one id change mid-month",
        lambda: fees_with_changes("2026-05", facts.IdCountChanged(20, D(2026, 5, 11))),
        17104,
    ),
    # 10 IDs May 1–10: 3289; 20 IDs May 11–20 (10 d): floor(200000/30.4) = 6578;
    # 5 IDs May 21–31 (11 d): floor(55000/30.4) = floor(1809.21) = 1809; total 11676.
    (
        "two id changes in one month",
        lambda: fees_with_changes(
            "2026-05",
            facts.IdCountChanged(20, D(2026, 5, 11)),
            facts.IdCountChanged(5, D(2026, 5, 21)),
        ),
        11676,
    ),
    # Fee 1000 May 1–15 (15 d): 4934; fee 1200 × 10 May 16–31 (16 d): floor(192000/30.4)
    # = floor(6315.78) = 6315; total 11249.
    (
        "fee change mid-month",
        lambda: fees_with_changes("2026-05", facts.FeeChanged(1200, D(2026, 5, 16))),
        11249,
    ),
    # Suspended May 10, resumed May 20: no split (Art. 13(2)); 10000 + tax 1000 = 11000.
    (
        "suspension inside a month",
        lambda: first_invoice_total(facts.Suspended(D(2026, 5, 10)), facts.Resumed(D(2026, 5, 20))),
        11000,
    ),
    # Tax: floor(10% × 10000) = 1000.
    ("tax on a whole month", lambda: consumption_tax([10000]), 1000),
    # Tax: floor(10% × (3289 + 13815)) = floor(1710.4) = 1710.
    ("tax once on the sum of lines", lambda: consumption_tax([3289, 13815]), 1710),
    # Tax: floor(10% × (5 + 5)) = 1, where rounding each line would give 0 + 0.
    ("tax is rounded once per invoice", lambda: consumption_tax([5, 5]), 1),
    # Due date of 2026-01 invoices: last day of February 2026 (28 days) = the 28th.
    ("due date after january is feb 28", lambda: periods.due_date("2026-01").day, 28),
    # Due date of 2028-01 invoices: Feb 29 2028 (leap year).
    ("due date in a leap february", lambda: periods.due_date("2028-01").day, 29),
    # Due date of 2027-12 invoices: Jan 31 2028 (year rolls over).
    (
        "due date across new year",
        lambda: periods.due_date("2027-12").toordinal(),
        D(2028, 1, 31).toordinal(),
    ),
    # 11000 paid on the due date Jun 30: no days, 0.
    ("payment on the due date", lambda: interest([(11000, D(2026, 6, 30))]), 0),
    # Paid Jul 1: days from Jul 1 through Jun 30 = 0: 0.
    ("payment the day after the due date", lambda: interest([(11000, D(2026, 7, 1))]), 0),
    # Paid Jul 2: Jul 1 only = 1 day: floor(11000 × 0.145 / 365) = floor(4.37) = 4.
    ("payment two days after the due date", lambda: interest([(11000, D(2026, 7, 2))]), 4),
    # Due 2027-12-31, paid 2028-12-31: Jan 1–Dec 30 2028 = 365 days (leap day inside):
    # floor(11000 × 0.145 × 365 / 365) = 1595.
    (
        "a year late across a leap day",
        lambda: interest([(11000, D(2028, 12, 31))], due=D(2027, 12, 31)),
        1595,
    ),
    # 11000 unpaid Jul 1–10 (10 d), 5000 paid Jul 11, 6000 unpaid Jul 11–20 (10 d), paid Jul 21:
    # floor((110000 + 60000) × 0.145 / 365) = floor(67.53) = 67.
    (
        "partial payment lowers the interest base",
        lambda: interest([(5000, D(2026, 7, 11)), (6000, D(2026, 7, 21))]),
        67,
    ),
    # Unpaid as of Jul 31: Jul 1–30 = 30 days: floor(330000 × 0.145 / 365) = floor(131.09) = 131.
    ("interest accrued so far", lambda: interest([], until=D(2026, 7, 31)), 131),
    # E = 3000: fee 10000 + evaded 3000 + surcharge 6000 = 19000; tax 1900; total 20900.
    ("surcharge of twice the evaded fee", lambda: _surcharged_total(3000), 20900),
    # Construction fee 50000 cancelled before the first invoice: 10000 + 50000 − 50000
    # = 10000; tax 1000; total 11000.
    (
        "construction fee and its credit in the same month",
        lambda: first_invoice_total(facts.ConstructionCancelled(), construction_fee=50000),
        11000,
    ),
    # Cancelled after construction started: fee stays, 10000 + 50000 = 60000 + 6000 = 66000.
    (
        "construction fee stays once construction started",
        lambda: first_invoice_total(
            facts.ConstructionStarted(), facts.ConstructionCancelled(), construction_fee=50000
        ),
        66000,
    ),
    # May invoiced 10000; change to 20 IDs from May 11 arrives later: May is now 17104
    # (case above), so June carries an adjustment of 17104 − 10000 = 7104.
    ("a backdated change into an invoiced month", backdated_change_adjustment, 7104),
]


def _surcharged_total(evaded: int) -> int:
    account = an_account(start=D(2026, 5, 1))
    account.assess_surcharge(evaded)
    invoice = account.bill("2026-05", D(2026, 6, 1))
    assert invoice is not None
    return invoice.total


@pytest.mark.parametrize(("compute", "expected"), [pytest.param(c, e, id=n) for n, c, e in CASES])
def test_billing_arithmetic_matches_the_hand_computed_figure(
    compute: Callable[[], int], expected: int
) -> None:
    assert compute() == expected


def test_the_table_has_at_least_thirty_hand_computed_cases() -> None:
    assert len(CASES) >= 30
