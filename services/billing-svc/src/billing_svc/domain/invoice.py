"""Invoice: one contract's charges for one month, issued once and never changed; its payments."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from eventsourcing.domain import Aggregate, event

from billing_svc.domain import tax as tax_rules
from billing_svc.domain.errors import InvalidPaymentError
from billing_svc.domain.interest import Payment, late_interest
from billing_svc.domain.lines import Line, LineKind

INVOICE_NAMESPACE = uuid.UUID("6f1d8f0e-3b0a-4c55-9a51-0c7a4f1b2e11")


@dataclass(frozen=True)
class Amounts:
    """An invoice's figures: total = subtotal + tax − credit brought + credit carried ≥ 0."""

    subtotal: int
    taxable: int
    tax: int
    credit_brought_forward: int
    credit_carried_forward: int
    total: int


def figure(lines: list[Line], credit_available: int) -> Amounts:
    """Sum the lines, tax the taxable ones once, and net the credit without going below 0."""
    subtotal = sum(line.amount for line in lines)
    taxable = sum(line.amount for line in lines if line.taxable)
    tax = tax_rules.consumption_tax([taxable])
    gross = subtotal + tax
    # Requirements, credits: an invoice total is never negative; the rest is carried.
    total = max(gross - credit_available, 0)
    carried = max(credit_available - gross, 0)
    return Amounts(subtotal, taxable, tax, credit_available, carried, total)


class Invoice(Aggregate):
    """An issued invoice. Its lines and figures come with `Issued` and never change."""

    @staticmethod
    def create_id(contract_id: str, period: str) -> uuid.UUID:
        # Deterministic: one invoice per contract and month, so a repeated run cannot add one.
        return uuid.uuid5(INVOICE_NAMESPACE, f"{contract_id}/{period}")

    @event("Issued")
    def __init__(
        self,
        contract_id: str,
        period: str,
        issued_on: date,
        due_date: date,
        recipient_name: str,
        lines: list[dict[str, Any]],
        subtotal: int,
        tax: int,
        credit_brought_forward: int,
        credit_carried_forward: int,
        total: int,
    ) -> None:
        self.contract_id = contract_id
        self.period = period
        self.issued_on = issued_on
        self.due_date = due_date
        self.recipient_name = recipient_name
        self.lines = [Line.from_dict(line) for line in lines]
        self.subtotal = subtotal
        self.tax = tax
        self.credit_brought_forward = credit_brought_forward
        self.credit_carried_forward = credit_carried_forward
        self.total = total
        self.payments: list[Payment] = []

    @property
    def paid(self) -> int:
        return sum(p.amount for p in self.payments)

    @property
    def outstanding(self) -> int:
        return max(self.total - self.paid, 0)

    @property
    def settled_on(self) -> date | None:
        """The date of the payment that completed the invoice (None while something is owed)."""
        running = 0
        for payment in self.payments:
            running += payment.amount
            if running >= self.total:
                return payment.paid_on
        return None if self.total > 0 else self.issued_on

    @property
    def status(self) -> str:
        if self.outstanding == 0:
            return "paid"
        return "partially_paid" if self.paid > 0 else "unpaid"

    @property
    def interest_lines_total(self) -> int:
        return sum(line.amount for line in self.lines if line.kind is LineKind.LATE_INTEREST)

    def late_interest(self, as_of: date) -> int:
        """Interest accrued by `as_of`, or, once paid, the interest its late payment owes.

        Art. 15: no interest on interest. Payments go to the interest lines first (Civil Code
        Art. 489), so only the rest of the total bears interest.
        """
        interest_part = min(self.total, self.interest_lines_total)
        principal = self.total - interest_part
        to_principal: list[Payment] = []
        owed_interest = interest_part
        for payment in sorted(self.payments, key=lambda p: p.paid_on):
            absorbed = min(owed_interest, payment.amount)
            owed_interest -= absorbed
            if payment.amount > absorbed:
                to_principal.append(Payment(payment.amount - absorbed, payment.paid_on))
        settled = self.settled_on
        until = None if settled is not None and settled <= as_of else as_of
        return late_interest(principal, self.due_date, to_principal, until)

    def record_payment(self, amount: int, paid_on: date) -> int:
        """Record a payment; return the excess over what was outstanding (an overpayment)."""
        if amount <= 0:
            raise InvalidPaymentError(f"a payment must be a positive amount of yen, got {amount}")
        excess = max(amount - self.outstanding, 0)
        self._payment_recorded(self.contract_id, amount, paid_on, excess)
        return excess

    @event("PaymentRecorded")
    def _payment_recorded(self, contract_id: str, amount: int, paid_on: date, excess: int) -> None:
        self.payments.append(Payment(amount, paid_on))
