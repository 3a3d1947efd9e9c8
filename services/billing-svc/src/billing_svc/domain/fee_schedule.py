"""FeeSchedule: the service-wide fee changes (Art. 12(2)) that every contract's fees derive from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from eventsourcing.domain import Aggregate, event

from billing_svc.domain import facts
from billing_svc.domain.errors import InvalidFactError
from billing_svc.domain.proration import Step

FEE_SCHEDULE_ID = uuid.UUID("3d7f2a64-58c1-4b8e-9f0d-6a2e1c4b7d95")


@dataclass(frozen=True)
class FeeChange:
    effective_date: date
    monthly_fee_per_id: int


class FeeSchedule(Aggregate):
    """Every service-wide fee change billing was told, in the order it was told.

    One aggregate for the whole service, because `FeeChanged` is one event for every contract:
    it is recorded once, with its upstream tracking, and never copied into the accounts. Each
    account derives its fee for a day from this schedule and its own plan (`steps_for`), so
    the order in which a fee change and a contract's own events arrive does not matter.
    """

    @staticmethod
    def create_id() -> uuid.UUID:
        return FEE_SCHEDULE_ID

    @event("Created")
    def __init__(self) -> None:
        self.changes: list[FeeChange] = []

    def record(self, fact: facts.FeeChanged) -> None:
        """Record a fee change; one already in force for its effective date records nothing."""
        if fact.monthly_fee_per_id < 0:
            raise InvalidFactError(
                f"monthly_fee_per_id must not be negative, got {fact.monthly_fee_per_id}",
                article="12(2)",
            )
        latest = {c.effective_date: c.monthly_fee_per_id for c in self.changes}
        if latest.get(fact.effective_date) != fact.monthly_fee_per_id:
            self._fee_change_recorded(fact.monthly_fee_per_id, fact.effective_date)

    @event("FeeChangeRecorded")
    def _fee_change_recorded(self, monthly_fee_per_id: int, effective_date: date) -> None:
        self.changes.append(FeeChange(effective_date, monthly_fee_per_id))

    def steps_for(self, applied_on: date | None) -> list[Step]:
        """The fee steps that override the plan of a contract applied for on `applied_on`.

        Art. 12(1): a contract's fee is the one in its application form. Art. 12(2): a fee
        change applies, from its notified effective date, to the contracts whose fee was agreed
        before it took effect, i.e. applied for before the effective date. A contract applied
        for on or after that date agreed to its form's fee under the new schedule: its plan
        stands until a change that takes effect later. A later change for the same effective
        date replaces an earlier one (a corrected notice).
        """
        by_day = {
            c.effective_date: c.monthly_fee_per_id
            for c in self.changes
            if applied_on is None or c.effective_date > applied_on
        }
        return [Step(day, fee) for day, fee in sorted(by_day.items())]

    def effective_dates_since(self, seen: int, applied_on: date | None) -> list[date]:
        """The effective dates of the changes recorded after the first `seen` that apply."""
        return [
            c.effective_date
            for c in self.changes[seen:]
            if applied_on is None or c.effective_date > applied_on
        ]
