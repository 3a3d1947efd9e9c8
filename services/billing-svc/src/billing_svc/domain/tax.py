"""Consumption tax: one rounding per invoice per rate (qualified-invoice rule)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_FLOOR, Decimal

RATE = Decimal("0.10")
RATE_PERCENT = 10


def consumption_tax(taxable_amounts: Iterable[int]) -> int:
    """floor(10% × the sum of an invoice's taxable lines): rounded once, down to the yen."""
    base = sum(taxable_amounts, 0)
    return int((Decimal(base) * RATE).to_integral_value(rounding=ROUND_FLOOR))
