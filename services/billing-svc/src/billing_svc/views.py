"""What callers see of an invoice: api.md's fields plus payment state and late interest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from billing_svc.domain.invoice import Invoice
from billing_svc.domain.lines import Line


@dataclass(frozen=True)
class InvoiceView:
    id: str
    contract_id: str
    period: str
    issued_on: date
    due_date: date
    recipient_name: str
    lines: list[Line]
    subtotal: int
    tax: int
    credit_brought_forward: int
    credit_carried_forward: int
    total: int
    paid: int
    outstanding: int
    status: str
    late_interest: int
    as_of: date

    @classmethod
    def of(cls, invoice: Invoice, as_of: date) -> InvoiceView:
        return cls(
            id=str(invoice.id),
            contract_id=invoice.contract_id,
            period=invoice.period,
            issued_on=invoice.issued_on,
            due_date=invoice.due_date,
            recipient_name=invoice.recipient_name,
            lines=list(invoice.lines),
            subtotal=invoice.subtotal,
            tax=invoice.tax,
            credit_brought_forward=invoice.credit_brought_forward,
            credit_carried_forward=invoice.credit_carried_forward,
            total=invoice.total,
            paid=invoice.paid,
            outstanding=invoice.outstanding,
            status=invoice.status,
            late_interest=invoice.late_interest(as_of),
            as_of=as_of,
        )

    @property
    def taxable(self) -> int:
        return sum(line.amount for line in self.lines if line.taxable)

    @property
    def non_taxable(self) -> int:
        return sum(line.amount for line in self.lines if not line.taxable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "contract_id": self.contract_id,
            "period": self.period,
            "issued_on": self.issued_on.isoformat(),
            "lines": [line.to_dict() for line in self.lines],
            "subtotal": self.subtotal,
            "tax": self.tax,
            "credit_brought_forward": self.credit_brought_forward,
            "credit_carried_forward": self.credit_carried_forward,
            "total": self.total,
            "due_date": self.due_date.isoformat(),
            "status": self.status,
            "paid": self.paid,
            "outstanding": self.outstanding,
            "late_interest": self.late_interest,
            "as_of": self.as_of.isoformat(),
        }
