"""Account: one contract's billable facts, pending charges and credit; it issues the invoices."""

from __future__ import annotations

import uuid
from datetime import date

from eventsourcing.domain import Aggregate, event

from billing_svc.domain import facts, periods
from billing_svc.domain.errors import (
    InvalidFactError,
    InvalidSurchargeError,
    SurchargeNotAssessableError,
)
from billing_svc.domain.fee_schedule import FeeSchedule
from billing_svc.domain.invoice import Invoice, figure
from billing_svc.domain.lines import Line, LineKind
from billing_svc.domain.proration import Tariff

ACCOUNT_NAMESPACE = uuid.UUID("0b5c3f52-8d7e-4f0e-b6a4-2f4e5d9c1a77")
# What contract-svc publishes as a contractor's name once the contract's data is erased.
ERASED = "[erased]"


class Account(Aggregate):
    """Everything billing knows of one contract. Commands check; `@event` methods only apply."""

    @staticmethod
    def create_id(contract_id: str) -> uuid.UUID:
        return uuid.uuid5(ACCOUNT_NAMESPACE, contract_id)

    @event("Opened")
    def __init__(
        self,
        contract_id: str,
        recipient_name: str,
        monthly_fee_per_id: int,
        id_count: int,
        construction_fee: int,
        tenant_id: str | None = None,
        applied_on: date | None = None,
    ) -> None:
        self.contract_id = contract_id
        self.tenant_id = tenant_id
        self.applied_on = applied_on
        # The invoice addressee over time: (effective date, legal name), sorted.
        self.recipients: list[tuple[date, str]] = [(date.min, recipient_name)]
        self.tariff = Tariff()
        self.tariff.set_fee(date.min, monthly_fee_per_id)
        self.tariff.set_id_count(date.min, id_count)
        self.construction_fee = construction_fee
        self.construction_started = False
        self.construction_cancelled = False
        self.closed = False
        self.pending: list[Line] = []
        if construction_fee > 0:
            # Art. 14(1): owed when the contract sets one; charged on the first invoice.
            self.pending.append(Line(LineKind.CONSTRUCTION_FEE, "工事費", construction_fee))
        self.invoiced_through: str | None = None
        self.billed: dict[str, int] = {}
        self.dirty_from: str | None = None
        self.credit = 0
        self.invoice_ids: list[uuid.UUID] = []
        # How many of the fee schedule's changes the last invoice was computed with.
        self.fee_changes_seen = 0

    @classmethod
    def open(cls, contract_id: str, applied: facts.Applied) -> Account:
        _require_non_negative(applied.monthly_fee_per_id, "plan.monthly_fee_per_id")
        _require_non_negative(applied.id_count, "plan.id_count")
        _require_non_negative(applied.construction_fee or 0, "construction_fee")
        return cls(
            contract_id=contract_id,
            recipient_name=applied.contractor_name,
            monthly_fee_per_id=applied.monthly_fee_per_id,
            id_count=applied.id_count,
            construction_fee=applied.construction_fee or 0,
            tenant_id=applied.tenant_id,
            applied_on=applied.applied_on,
        )

    @property
    def recipient_name(self) -> str:
        return self.recipients[-1][1]

    def recipient_on(self, day: date) -> str:
        """The addressee of an invoice issued on `day`: the name in effect that day."""
        name = self.recipients[0][1]
        for effective, candidate in self.recipients:
            if effective > day:
                break
            name = candidate
        return name

    # Contract facts ---------------------------------------------------------------------------

    def record(self, fact: facts.ContractFact) -> None:
        """Apply a fact from contract-svc; facts that do not change what is owed record nothing."""
        match fact:
            case facts.Approved(start_date=start):
                self._charging_started(start)
            case facts.IdCountChanged(id_count=count, effective_date=day):
                _require_non_negative(count, "id_count")
                self._id_count_recorded(count, day)
            case facts.FeeChanged():
                # Art. 12(2): service-wide; kept once in the FeeSchedule, never per account.
                raise InvalidFactError(
                    "a fee change is service-wide: record it on the fee schedule", article="12(2)"
                )
            case facts.Terminated(effective_date=day) | facts.ApprovalRevoked(effective_date=day):
                # Art. 13(1): fees accrue through the end date, the last day of service.
                self._charging_ended(day)
                if isinstance(fact, facts.ApprovalRevoked):
                    self._cancel_construction_if_not_started()
            case facts.Rejected():
                if not self.closed:
                    self._closed()
            case facts.ConstructionStarted():
                if not self.construction_started:
                    self._construction_started()
            case facts.ConstructionCancelled():
                self._cancel_construction_if_not_started()
            case facts.TenantChanged(tenant_id=tenant, contractor_name=name, effective_date=day):
                # Arts. 5-6: the successor or transferee takes over the contract and its invoices.
                if tenant != self.tenant_id:
                    self._tenant_changed(tenant)
                if name is not None:
                    self._readdress(name, day)
            case facts.ContractorRenamed(contractor_name=name, effective_date=day):
                # Art. 23(8): the reported new name addresses invoices from its effective date.
                self._readdress(name, day)
            case facts.Suspended() | facts.Resumed():
                pass  # Art. 13(2): fees accrue during suspension; the month is not split.
            case facts.Applied():
                raise InvalidFactError("the contract's account is already open", article="4(1)")

    def _cancel_construction_if_not_started(self) -> None:
        # Art. 14(2): cancelled before construction starts → not owed; refunded if paid.
        if self.construction_fee > 0 and not (
            self.construction_started or self.construction_cancelled
        ):
            self._construction_cancelled()

    @event("TenantChanged")
    def _tenant_changed(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def _readdress(self, name: str, effective_date: date) -> None:
        # A qualified invoice names its recipient; an erased name never replaces a real one.
        if name and name != ERASED and (effective_date, name) not in self.recipients:
            self._recipient_changed(name, effective_date)

    @event("RecipientChanged")
    def _recipient_changed(self, recipient_name: str, effective_date: date) -> None:
        kept = [r for r in self.recipients if r[0] != effective_date]
        kept.append((effective_date, recipient_name))
        kept.sort(key=lambda r: r[0])
        self.recipients = kept

    @event("ChargingStarted")
    def _charging_started(self, start_date: date) -> None:
        self.tariff.start = start_date
        self._mark_dirty(start_date)

    @event("IdCountRecorded")
    def _id_count_recorded(self, id_count: int, effective_date: date) -> None:
        self.tariff.set_id_count(effective_date, id_count)
        self._mark_dirty(effective_date)

    # Events recorded before the fee schedule existed (ADR 0016) still replay.
    @event("FeeRecorded")
    def _fee_recorded(self, monthly_fee_per_id: int, effective_date: date) -> None:
        self.tariff.set_fee(effective_date, monthly_fee_per_id)
        self._mark_dirty(effective_date)

    @event("ChargingEnded")
    def _charging_ended(self, end_date: date) -> None:
        previous = self.tariff.end
        self.tariff.end = end_date
        self._mark_dirty(min(end_date, previous) if previous else end_date)

    @event("Closed")
    def _closed(self) -> None:
        self.closed = True
        self.pending = []

    @event("ConstructionStartRecorded")
    def _construction_started(self) -> None:
        self.construction_started = True

    @event("ConstructionCancellationRecorded")
    def _construction_cancelled(self) -> None:
        self.construction_cancelled = True
        self.pending.append(
            Line(
                LineKind.CONSTRUCTION_FEE_CREDIT,
                "工事費の返還 (工事着手前の取消)",
                -self.construction_fee,
            )
        )

    def _mark_dirty(self, effective: date) -> None:
        # A fact dated in an invoiced month is settled by adjustment lines on the next invoice.
        month = periods.of(effective)
        if self.invoiced_through is not None and month <= self.invoiced_through:
            self.dirty_from = month if self.dirty_from is None else min(self.dirty_from, month)

    # Commands from billing itself -------------------------------------------------------------

    def assess_surcharge(self, evaded_amount: int, note: str | None = None) -> None:
        if evaded_amount <= 0:
            raise InvalidSurchargeError("evaded_amount must be a positive amount of yen")
        if self.closed:
            raise SurchargeNotAssessableError(
                f"contract {self.contract_id} was never formed: no fee can have been evaded"
            )
        self._surcharge_assessed(self.contract_id, evaded_amount, 2 * evaded_amount, note)

    @event("SurchargeAssessed")
    def _surcharge_assessed(
        self, contract_id: str, evaded_amount: int, surcharge: int, note: str | None
    ) -> None:
        suffix = f" ({note})" if note else ""
        self.pending.append(Line(LineKind.EVADED_FEE, f"不法に免れた料金{suffix}", evaded_amount))
        # Art. 13(3): twice the evaded amount (tax-exclusive), plus consumption tax.
        self.pending.append(Line(LineKind.SURCHARGE, f"割増金 (第13条第3項){suffix}", surcharge))

    def charge_late_interest(self, invoice: Invoice, amount: int) -> None:
        if amount > 0:
            self._late_interest_charged(self.contract_id, invoice.id, invoice.period, amount)

    @event("LateInterestCharged")
    def _late_interest_charged(
        self, contract_id: str, invoice_id: uuid.UUID, period: str, amount: int
    ) -> None:
        self.pending.append(Line(LineKind.LATE_INTEREST, f"延滞利息 ({period}分請求書)", amount))

    def carry_overpayment(self, invoice: Invoice, excess: int) -> None:
        if excess > 0:
            self._credit_carried(
                self.contract_id, invoice.id, "overpayment", excess, self.credit + excess
            )

    @event("CreditCarried")
    def _credit_carried(
        self, contract_id: str, invoice_id: uuid.UUID, reason: str, amount: int, balance: int
    ) -> None:
        self.credit = balance

    # Billing ----------------------------------------------------------------------------------

    def is_invoiced(self, period: str) -> bool:
        return self.invoiced_through is not None and self.invoiced_through >= period

    def tariff_under(self, schedule: FeeSchedule | None) -> Tariff:
        """The contract's tariff with the service-wide fee changes that apply to it (Art. 12)."""
        if schedule is None or not schedule.changes:
            return self.tariff
        return self.tariff.with_fee_steps(schedule.steps_for(self.applied_on))

    def bill(
        self, period: str, issued_on: date, schedule: FeeSchedule | None = None
    ) -> Invoice | None:
        """Issue the invoice for `period`, or None when it is already issued or nothing is owed.

        `schedule` holds the service-wide fee changes; those recorded since the last invoice
        and effective in an invoiced month are settled here by adjustment lines."""
        start = self.tariff.start
        if self.closed or start is None or self.is_invoiced(period):
            return None
        if period < periods.of(start):
            return None
        seen = len(schedule.changes) if schedule is not None else 0
        dirty_from = self.dirty_from
        if schedule is not None and seen > self.fee_changes_seen and self.invoiced_through:
            for day in schedule.effective_dates_since(self.fee_changes_seen, self.applied_on):
                month = periods.of(day)
                if month <= self.invoiced_through:
                    dirty_from = month if dirty_from is None else min(dirty_from, month)
        tariff = self.tariff_under(schedule)
        lines, billed, adjustments = self._fee_lines(period, start, tariff, dirty_from)
        lines.extend(self.pending)
        if not lines:
            return None
        amounts = figure(lines, self.credit)
        invoice = Invoice(
            contract_id=self.contract_id,
            period=period,
            issued_on=issued_on,
            due_date=periods.due_date(period),
            recipient_name=self.recipient_on(issued_on),
            lines=[line.to_dict() for line in lines],
            subtotal=amounts.subtotal,
            tax=amounts.tax,
            credit_brought_forward=amounts.credit_brought_forward,
            credit_carried_forward=amounts.credit_carried_forward,
            total=amounts.total,
        )
        for line in lines:
            if line.kind is LineKind.CONSTRUCTION_FEE:
                self._construction_fee_charged(self.contract_id, invoice.id, line.amount)
            elif line.kind is LineKind.CONSTRUCTION_FEE_CREDIT:
                self._construction_fee_credited(self.contract_id, invoice.id, -line.amount)
        for adjusted_period, amount in adjustments:
            self._adjustment_issued(self.contract_id, invoice.id, adjusted_period, amount)
        self._invoiced(
            period,
            invoice.id,
            billed,
            amounts.credit_carried_forward,
            max(seen, self.fee_changes_seen),
        )
        if amounts.credit_carried_forward > 0:
            carried = amounts.credit_carried_forward
            self._credit_carried(
                self.contract_id, invoice.id, "credit_exceeds_charges", carried, carried
            )
        return invoice

    def _fee_lines(
        self, period: str, start: date, tariff: Tariff, dirty_from: str | None
    ) -> tuple[list[Line], dict[str, int], list[tuple[str, int]]]:
        first = periods.of(start)
        if self.invoiced_through is not None:
            first = max(first, periods.following(self.invoiced_through))
        if dirty_from is not None:
            first = min(first, max(dirty_from, periods.of(start)))
        lines: list[Line] = []
        billed: dict[str, int] = {}
        adjustments: list[tuple[str, int]] = []
        for month in periods.between(first, period):
            month_lines = tariff.fee_lines(month)
            expected = sum(line.amount for line in month_lines)
            if month in self.billed:
                difference = expected - self.billed[month]
                if difference != 0:
                    text = f"{month} 利用料の調整 (請求済 ¥{self.billed[month]:,} → ¥{expected:,})"
                    lines.append(Line(LineKind.ADJUSTMENT, text, difference))
                    adjustments.append((month, difference))
            else:
                lines.extend(month_lines)
            billed[month] = expected
        return lines, billed, adjustments

    @event("ConstructionFeeCharged")
    def _construction_fee_charged(
        self, contract_id: str, invoice_id: uuid.UUID, amount: int
    ) -> None:
        pass

    @event("ConstructionFeeCredited")
    def _construction_fee_credited(
        self, contract_id: str, invoice_id: uuid.UUID, amount: int
    ) -> None:
        pass

    @event("AdjustmentIssued")
    def _adjustment_issued(
        self, contract_id: str, invoice_id: uuid.UUID, adjusted_period: str, amount: int
    ) -> None:
        pass

    @event("Invoiced")
    def _invoiced(
        self,
        period: str,
        invoice_id: uuid.UUID,
        billed: dict[str, int],
        credit_balance: int,
        fee_changes_seen: int = 0,
    ) -> None:
        self.billed.update(billed)
        self.invoiced_through = period
        self.dirty_from = None
        self.pending = []
        self.credit = credit_balance
        self.invoice_ids.append(invoice_id)
        self.fee_changes_seen = fee_changes_seen


def _require_non_negative(value: int, field: str) -> None:
    if value < 0:
        raise InvalidFactError(f"{field} must not be negative, got {value}")
