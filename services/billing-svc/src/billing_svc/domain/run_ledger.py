"""RunLedger: the billing runs that went through every account, so a repeated run stays final."""

from __future__ import annotations

import uuid
from datetime import date

from eventsourcing.domain import Aggregate, event

RUN_LEDGER_ID = uuid.UUID("8b1e5c2a-7d44-4f0e-a6c9-2f3d9e0b51a7")


class RunLedger(Aggregate):
    """Every period whose billing run finished, with what it found.

    A run for a finished period issues nothing new (api.md, `POST /v1/billing-runs`): facts
    told after it, even about that period's months, are settled by the next period's invoice
    (requirements: "the next invoice carries adjustment lines"). A run that stopped half-way
    is not in the ledger, so running it again bills the accounts it had not reached; accounts
    already invoiced for the period are skipped by the accounts themselves.
    """

    @staticmethod
    def create_id() -> uuid.UUID:
        return RUN_LEDGER_ID

    @event("Created")
    def __init__(self) -> None:
        self.finished: dict[str, date] = {}

    def is_finished(self, period: str) -> bool:
        return period in self.finished

    def finish(self, period: str, issued_on: date, accounts: int, issued: int) -> None:
        if period not in self.finished:
            self._run_finished(period, issued_on, accounts, issued)

    @event("RunFinished")
    def _run_finished(self, period: str, issued_on: date, accounts: int, issued: int) -> None:
        self.finished[period] = issued_on
