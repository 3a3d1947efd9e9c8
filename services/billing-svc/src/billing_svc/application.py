"""Billing: the event-sourced use cases of billing-svc (facts in, runs, payments, invoices out)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    ProcessRecorder,
    Tracking,
    Transcoding,
)
from eventsourcing.utils import get_topic

from billing_svc.bulk import BulkWriter
from billing_svc.domain import facts, periods
from billing_svc.domain.account import Account
from billing_svc.domain.errors import (
    AccountNotFoundError,
    InvoiceNotFoundError,
    PeriodNotOverError,
)
from billing_svc.domain.fee_schedule import FEE_SCHEDULE_ID, FeeSchedule
from billing_svc.domain.invoice import Invoice
from billing_svc.domain.liability import LiabilityCap, liability_cap
from billing_svc.domain.run_ledger import RUN_LEDGER_ID, RunLedger
from billing_svc.issuer import Issuer
from billing_svc.views import InvoiceView
from smartid_events.aggregates import find
from smartid_events.bulkload import AnyAggregate, BulkLoader

JST = timezone(timedelta(hours=9))
OPENED_TOPIC = get_topic(Account.Opened)  # type: ignore[attr-defined]
MAX_BATCH_RETRIES = 3

Progress = Callable[["RunProgress"], None]


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@dataclass(frozen=True)
class RunProgress:
    """Where a billing run is: accounts looked at so far of `total`, invoices issued so far."""

    period: str
    done: int
    total: int
    issued: int


@dataclass(frozen=True)
class RunReport:
    period: str
    accounts: int
    issued: int
    invoice_ids: list[UUID]
    # The period's run had finished before: nothing was looked at, nothing issued.
    finished_before: bool = False


class Billing(Application[UUID]):
    """billing-svc's application. Every method is synchronous; each command is one transaction.

    Methods fed by other services' events take an eventsourcing `Tracking`: the upstream
    position is recorded in the transaction that saves the events it caused, and
    `already_handled` tells a consumer whether a redelivery was recorded before.
    """

    name = "billing"

    def __init__(self, env: dict[str, str] | None = None, issuer: Issuer | None = None) -> None:
        super().__init__(env)
        self.issuer = issuer
        self._loader = BulkLoader(self)
        self._writer = BulkWriter(self)

    def construct_recorder(self) -> ProcessRecorder:
        # The process recorder stores tracking records beside the events, atomically.
        return self.factory.process_recorder()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # Facts from contract-svc ------------------------------------------------------------------

    def already_handled(self, tracking: Tracking) -> bool:
        recorder = self.recorder
        assert isinstance(recorder, ProcessRecorder)
        return recorder.has_tracking_id(tracking.application_name, tracking.notification_id)

    def record_contract_fact(
        self, contract_id: str, fact: facts.ContractFact, tracking: Tracking | None = None
    ) -> None:
        """Apply one contract fact; a fact already handled (by its tracking) changes nothing.

        Whether it was handled is asked only when applying or saving it fails: its tracking is
        saved with its effect, so a handled fact's save is refused whole (a query less a fact
        on the consumer's path, which has asked already)."""
        if isinstance(fact, facts.FeeChanged):
            self.record_fee_change(fact, tracking)
            return
        with self._unless_handled(tracking):
            if isinstance(fact, facts.Applied):
                try:
                    account = self._account(contract_id)
                except AccountNotFoundError:
                    account = Account.open(contract_id, fact)
            else:
                account = self._account(contract_id)
                account.record(fact)
            self._save(account, tracking=tracking)

    def record_fee_change(self, fact: facts.FeeChanged, tracking: Tracking | None = None) -> None:
        """Art. 12(2): record a service-wide fee change on the fee schedule, with its tracking.

        No account is touched: each derives its fees from the schedule when it is billed, so a
        contract whose events arrive after the change (another partition) still gets it, and
        a change effective in an invoiced month is adjusted on the account's next invoice."""
        with self._unless_handled(tracking):
            schedule = self.fee_schedule() or FeeSchedule()
            schedule.record(fact)
            self._save(schedule, tracking=tracking)

    @contextlib.contextmanager
    def _unless_handled(self, tracking: Tracking | None) -> Iterator[None]:
        """A failure inside is no failure if the fact was handled already (its tracking is
        saved with its effect, so a redelivered fact's save is refused whole)."""
        try:
            yield
        except Exception:
            if tracking is None or not self.already_handled(tracking):
                raise

    def fee_schedule(self) -> FeeSchedule | None:
        """The service-wide fee changes recorded so far; None before the first one."""
        return find(self, FEE_SCHEDULE_ID, FeeSchedule)

    # Billing runs -----------------------------------------------------------------------------

    def run_billing(
        self,
        period: str,
        *,
        issued_on: date | None = None,
        batch_size: int = 500,
        progress: Progress | None = None,
    ) -> RunReport:
        """Issue `period`'s invoices. A run that went through every account is final: running
        it again issues nothing new, and facts told since are settled by the next period's
        invoices (`RunLedger`). A run that stopped half-way resumes: an invoice's id derives
        from contract and month and each account knows the months it has invoiced, so only
        what is missing is issued. Each batch of accounts is one transaction."""
        periods.parse(period)
        issued_on = issued_on or datetime.now(JST).date()
        if issued_on <= periods.last_day(period):
            raise PeriodNotOverError(
                f"{period} is invoiced from {periods.following(period)}-01 on, not {issued_on}"
            )
        ledger = self._run_ledger()
        if ledger is not None and ledger.is_finished(period):
            return RunReport(period, 0, 0, [], finished_before=True)
        account_ids = list(self._account_ids())
        # Loaded once: a fee change recorded during the run reaches the accounts billed with
        # the old schedule on their next invoice (they remember how much of it they saw).
        schedule = self.fee_schedule()
        batches = [
            account_ids[offset : offset + batch_size]
            for offset in range(0, len(account_ids), batch_size)
        ]
        issued: list[UUID] = []
        done = 0
        # The next batch loads while this one is billed and saved: the database's time and
        # ours overlap instead of adding up.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="billing-prefetch") as pool:
            upcoming = pool.submit(self._loader.aggregates, batches[0]) if batches else None
            for index, batch in enumerate(batches):
                assert upcoming is not None
                loaded = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = pool.submit(self._loader.aggregates, batches[index + 1])
                issued.extend(self._bill_batch(batch, period, issued_on, loaded, schedule))
                done += len(batch)
                if progress is not None:
                    progress(RunProgress(period, done, len(account_ids), len(issued)))
        self._record_run(period, issued_on, len(account_ids), len(issued))
        return RunReport(period, len(account_ids), len(issued), issued)

    def _run_ledger(self) -> RunLedger | None:
        return find(self, RUN_LEDGER_ID, RunLedger)

    def _record_run(self, period: str, issued_on: date, accounts: int, issued: int) -> None:
        for _attempt in range(MAX_BATCH_RETRIES):
            ledger = self._run_ledger() or RunLedger()
            ledger.finish(period, issued_on, accounts, issued)
            try:
                self.save(ledger)
                return
            except IntegrityError:  # another run recorded itself meanwhile: read it again
                continue
        raise RuntimeError(f"could not record the billing run of {period}")

    def _bill_batch(
        self,
        ids: list[UUID],
        period: str,
        issued_on: date,
        loaded: dict[UUID, AnyAggregate],
        schedule: FeeSchedule | None,
    ) -> list[UUID]:
        for _attempt in range(MAX_BATCH_RETRIES):
            changed: list[Aggregate] = []
            invoices: list[UUID] = []
            for account in loaded.values():
                assert isinstance(account, Account)
                invoice = account.bill(period, issued_on, schedule)
                if invoice is not None:
                    changed.extend((account, invoice))
                    invoices.append(invoice.id)
            try:
                if changed:
                    self._save_batch(changed)
            except IntegrityError:
                # A fact for one of these accounts was saved meanwhile: reload and bill again.
                loaded = self._loader.aggregates(ids)
                continue
            return invoices
        raise RuntimeError(f"billing run {period}: batch kept conflicting with concurrent writes")

    def _account_ids(self) -> Iterator[UUID]:
        start: int | None = None
        page = 1000
        while True:
            notifications = self.recorder.select_notifications(
                start=start, limit=page, topics=[OPENED_TOPIC], inclusive_of_start=False
            )
            for notification in notifications:
                yield UUID(str(notification.originator_id))
            if len(notifications) < page:
                return
            start = notifications[-1].id

    # Payments and surcharges ------------------------------------------------------------------

    def record_payment(
        self,
        invoice_id: UUID,
        amount: int,
        paid_on: date,
        tracking: Tracking | None = None,
    ) -> InvoiceView:
        """Record a payment. When it completes a late invoice, the interest its lateness owes is
        charged to the account (Art. 15) for the next invoice; an overpayment becomes credit."""
        invoice = self._invoice(invoice_id)
        account = self._account(invoice.contract_id)
        was_settled = invoice.outstanding == 0
        excess = invoice.record_payment(amount, paid_on)
        if not was_settled and invoice.outstanding == 0:
            account.charge_late_interest(invoice, invoice.late_interest(paid_on))
        account.carry_overpayment(invoice, excess)
        self._save(invoice, account, tracking=tracking)
        return InvoiceView.of(invoice, paid_on)

    def assess_surcharge(
        self, contract_id: str, evaded_amount: int, note: str | None = None
    ) -> None:
        """Art. 13(3): bill the evaded fee E and a surcharge of 2E on the next invoice."""
        account = self._account(contract_id)
        account.assess_surcharge(evaded_amount, note)
        self._save(account)

    # Queries ----------------------------------------------------------------------------------

    def get_invoice(self, invoice_id: UUID, as_of: date | None = None) -> InvoiceView:
        return InvoiceView.of(self._invoice(invoice_id), as_of or datetime.now(JST).date())

    def invoices_of(self, contract_id: str, as_of: date | None = None) -> list[InvoiceView]:
        account = self._account(contract_id)
        return [self.get_invoice(i, as_of) for i in account.invoice_ids]

    def tenant_of(self, contract_id: str) -> str | None:
        """The contractor account (tenant) the contract belongs to, as contract-svc said."""
        return self._account(contract_id).tenant_id

    def liability_cap(self, contract_id: str, period: str) -> LiabilityCap:
        periods.parse(period)
        tariff = self._account(contract_id).tariff_under(self.fee_schedule())
        return liability_cap(contract_id, tariff, period)

    def invoice_pdf(self, invoice_id: UUID, as_of: date | None = None) -> bytes:
        from billing_svc.pdf import render_invoice

        if self.issuer is None:
            raise RuntimeError(
                "no issuer configured (BILLING_ISSUER_NAME, ..._REGISTRATION_NUMBER)"
            )
        return render_invoice(self.get_invoice(invoice_id, as_of), self.issuer)

    # Plumbing ---------------------------------------------------------------------------------

    def _account(self, contract_id: str) -> Account:
        account = find(self, Account.create_id(contract_id), Account)
        if account is None:
            raise AccountNotFoundError(f"no account for contract {contract_id}")
        return account

    def _invoice(self, invoice_id: UUID) -> Invoice:
        invoice = find(self, invoice_id, Invoice)
        if invoice is None:
            raise InvoiceNotFoundError(f"no invoice {invoice_id}")
        return invoice

    def _save_batch(self, aggregates: list[Aggregate]) -> None:
        """`save()` for aggregates known to be ours: it skips `save()`'s runtime Protocol checks,
        which cost a billing run more than the insert (mirrors eventsourcing 9.5.6, pinned), and
        inserts by COPY on PostgreSQL (`BulkWriter`). No snapshots, no in-process followers and
        no repository cache are configured, so nothing else of `save()` is skipped."""
        if self._writer.is_bulk and not self.snapshots and not self.repository.cache:
            to_stored = self.mapper.to_stored_event
            self._writer.insert([to_stored(e) for a in aggregates for e in a.collect_events()])
            return
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        processing.events = [e for a in aggregates for e in a.collect_events()]
        processing.aggregates = {a.id: a for a in aggregates}
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)

    def _save(self, *aggregates: Aggregate, tracking: Tracking | None = None) -> None:
        if tracking is None:
            self.save(*aggregates)
            return
        processing: ProcessingEvent[UUID] = ProcessingEvent(tracking)
        processing.collect_events(*aggregates)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
