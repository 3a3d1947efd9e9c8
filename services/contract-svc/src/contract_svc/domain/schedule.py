"""Which decided changes of a contract take effect on a given day: a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal

from contract_svc.domain.codes import ENDED
from contract_svc.domain.values import Suspension, Termination

if TYPE_CHECKING:
    from contract_svc.domain.contract import Contract

ChangeKind = Literal["suspension", "suspension-ended", "resumption", "termination"]


@dataclass(frozen=True)
class DueChange:
    kind: ChangeKind
    effective_date: date


def _notice_done(change: Suspension | Termination) -> bool:
    # A change that needs prior notice waits until the notice is complete (Art. 24).
    return not change.notice_required or change.notice_completed_at is not None


def due_changes(contract: Contract, today: date) -> list[DueChange]:
    """The effects to record on `today`, in order; empty when nothing is due."""
    if contract.status in ENDED:
        return []
    changes: list[DueChange] = []
    suspension = contract.suspension
    if suspension is not None:
        resumption = contract.resumption_date
        if resumption is None and suspension.end_date is not None:
            resumption = suspension.end_date + timedelta(days=1)
        resumes_at_once = resumption is not None and resumption <= suspension.start_date
        if (
            not suspension.in_effect
            and suspension.start_date <= today
            and _notice_done(suspension)
            and not resumes_at_once
        ):
            changes.append(DueChange("suspension", suspension.start_date))
        if resumption is not None and resumption <= today:
            if contract.resumption_date is None:
                changes.append(DueChange("suspension-ended", resumption))
            changes.append(DueChange("resumption", resumption))
    termination = contract.termination
    # The effective date is the last day of service: the contract ends the day after.
    if termination is not None and termination.effective_date < today and _notice_done(termination):
        changes.append(DueChange("termination", termination.effective_date))
    return changes


def next_due_date(contract: Contract) -> date | None:
    """The first day on which `due_changes` will have something to record, if any.

    A change still waiting for its prior notice has no date yet: recording the notice's
    completion takes it into effect (or gives it one).
    """
    if contract.status in ENDED:
        return None
    candidates: list[date] = []
    suspension = contract.suspension
    if suspension is not None:
        resumption = contract.resumption_date
        if resumption is None and suspension.end_date is not None:
            resumption = suspension.end_date + timedelta(days=1)
        resumes_at_once = resumption is not None and resumption <= suspension.start_date
        if not suspension.in_effect and _notice_done(suspension) and not resumes_at_once:
            candidates.append(suspension.start_date)
        if resumption is not None:
            candidates.append(resumption)
    termination = contract.termination
    if termination is not None and _notice_done(termination):
        candidates.append(termination.effective_date + timedelta(days=1))
    return min(candidates, default=None)
