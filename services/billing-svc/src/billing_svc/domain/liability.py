"""Art. 20(2): the liability cap for a total outage, per contract and month, with its basis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing_svc.domain.proration import Segment, Tariff


@dataclass(frozen=True)
class LiabilityCap:
    contract_id: str
    period: str
    cap: int
    basis: list[Segment]
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "period": self.period,
            "cap": self.cap,
            "article": "20(2)",
            "basis": [
                {
                    "from": s.first.isoformat(),
                    "to": s.last.isoformat(),
                    "monthly_fee_per_id": s.monthly_fee_per_id,
                    "id_count": s.id_count,
                    "monthly_fee": s.monthly_fee,
                }
                for s in self.basis
            ],
            "explanation": self.explanation,
        }


def liability_cap(contract_id: str, tariff: Tariff, period: str) -> LiabilityCap:
    """The most the company owes for a total outage in `period`.

    Art. 20(2): the cap is the monthly fee (not prorated) of the part in use when the service
    became totally unusable; the outage's day is not known here, so the cap is the largest
    monthly fee in force on any day of service in the month. Art. 20(3): no cap for wilful
    misconduct or gross negligence.
    """
    basis = tariff.segments(period)
    cap = max((s.monthly_fee for s in basis), default=0)
    explanation = (
        "Art. 20(2): monthly fee per ID × ID count in use when the total outage began; "
        "the largest such monthly fee on any day of service in the month"
        if basis
        else "Art. 20(2): no service in this month, so no fee and no liability under Art. 20"
    ) + "; Art. 20(3): not applicable to wilful misconduct or gross negligence."
    return LiabilityCap(contract_id, period, cap, basis, explanation)
