"""Errors billing's rules raise, each naming the rule and its article."""

from __future__ import annotations


class BillingError(Exception):
    """A billing rule refused a command; `article` names the term it rests on."""

    article: str | None = None

    def __init__(self, message: str, article: str | None = None) -> None:
        super().__init__(message)
        if article is not None:
            self.article = article


class AccountNotFoundError(BillingError):
    """No contract with this id has been applied for (billing knows nothing of it)."""


class InvoiceNotFoundError(BillingError):
    pass


class InvalidPaymentError(BillingError):
    pass


class InvalidSurchargeError(BillingError):
    article = "13(3)"


class InvalidFactError(BillingError):
    pass
