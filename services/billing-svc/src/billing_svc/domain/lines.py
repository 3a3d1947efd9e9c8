"""Invoice lines: what was charged or credited, and whether consumption tax applies."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class LineKind(StrEnum):
    MONTHLY_FEE = "monthly_fee"
    PRORATED_FEE = "prorated_fee"
    CONSTRUCTION_FEE = "construction_fee"
    CONSTRUCTION_FEE_CREDIT = "construction_fee_credit"
    SURCHARGE = "surcharge"
    EVADED_FEE = "evaded_fee"
    LATE_INTEREST = "late_interest"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class Line:
    kind: LineKind
    description: str
    amount: int

    @property
    def taxable(self) -> bool:
        # Late-payment damages are compensation, not consideration: outside the tax base.
        return self.kind is not LineKind.LATE_INTEREST

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "description": self.description, "amount": self.amount}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Line:
        return cls(LineKind(data["kind"]), str(data["description"]), int(data["amount"]))
