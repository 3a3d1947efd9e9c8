"""Errors billing's rules raise, each naming the rule and its article."""

from __future__ import annotations


class BillingError(Exception):
    """A billing rule refused a command; `article` names the term it rests on."""

    article: str | None = None
    rule: str | None = None
    field: str | None = None

    def __init__(self, message: str, article: str | None = None) -> None:
        super().__init__(message)
        if article is not None:
            self.article = article


class AccountNotFoundError(BillingError):
    """No contract with this id has been applied for (billing knows nothing of it)."""

    rule = "contract-unknown"


class InvoiceNotFoundError(BillingError):
    rule = "invoice-unknown"


class InvalidPaymentError(BillingError):
    rule = "payment-positive"
    field = "amount"


class InvalidSurchargeError(BillingError):
    article = "13(3)"
    rule = "surcharge-positive"
    field = "evaded_amount"


class InvalidFactError(BillingError):
    rule = "fact-invalid"


class SurchargeNotAssessableError(BillingError):
    """The contract never formed (its application was rejected): no fee can have been evaded."""

    article = "13(3)"
    rule = "surcharge-needs-contract"


class PeriodNotOverError(BillingError):
    """A month is invoiced only once it is over: fees accrue through its last day of service."""

    article = "13(1)"
    rule = "period-not-over"
    field = "period"
