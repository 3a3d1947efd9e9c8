"""Late interest (Art. 15): 14.5% a year, 365-day year, on what is unpaid after the due date."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

ANNUAL_RATE = Decimal("0.145")
# Art. 15 and the tariffs it follows: 365 days a year, also in leap years.
DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class Payment:
    amount: int
    paid_on: date


def late_interest(
    principal: int, due: date, payments: Iterable[Payment], until: date | None
) -> int:
    """Interest owed on `principal` (tax included, interest excluded) paid by `payments`.

    Art. 15: days run from the day after the due date through the day before each payment;
    a partial payment lowers the unpaid amount from its payment date on. `until` is the date
    of a hypothetical payment (interest accrued so far); None means the payments are final.
    One rounding (down) for the whole invoice.
    """
    unpaid = principal
    accrued = Decimal(0)
    since = due + timedelta(days=1)
    for payment in sorted(payments, key=lambda p: p.paid_on):
        if unpaid <= 0:
            break
        if until is not None and payment.paid_on > until:
            break
        days = max((payment.paid_on - since).days, 0)
        accrued += Decimal(unpaid) * days
        since = max(since, payment.paid_on)
        unpaid -= payment.amount
    if unpaid > 0 and until is not None:
        accrued += Decimal(unpaid) * max((until - since).days, 0)
    amount = accrued * ANNUAL_RATE / DAYS_PER_YEAR
    return int(amount.to_integral_value(rounding=ROUND_FLOOR))
