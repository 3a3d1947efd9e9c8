"""Contracts: one method per use case of contract-svc, on the event store."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProjectorFunction,
    Repository,
)
from eventsourcing.domain import Aggregate, BaseAggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper
from eventsourcing.utils import get_topic
from psycopg.conninfo import make_conninfo

from contract_svc.domain import (
    SERVICE_ID,
    Consent,
    Contract,
    Contractor,
    ContractRuleError,
    DueChange,
    Initiator,
    NoticeFor,
    Plan,
    Service,
    SuccessionCause,
)
from contract_svc.keys import InMemoryKeyStore, KeyStore, PostgresKeyStore
from contract_svc.personal import PersonalDataMapper, SnapshotErasedError
from contract_svc.transcodings import register_transcodings
from contract_svc.views import contract_view, event_view
from smartid_events.aggregates import find
from smartid_events.groupcommit import DEFAULT_MAX_WAIT_S, Command, GroupCommitter

JST = timezone(timedelta(hours=9), "JST")
SNAPSHOT_INTERVAL = 100
MAX_ATTEMPTS = 50  # retries of a command that lost a race without an expected version
LOG_PAGE = 500

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


class StaleVersionError(Exception):
    """The aggregate is not at the version the caller expected (HTTP 412)."""

    rule = "version-mismatch"

    def __init__(self, aggregate_id: UUID, expected: int | None, actual: int) -> None:
        super().__init__(f"{aggregate_id} is at version {actual}, not {expected}")
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual


class ContractNotFoundError(LookupError):
    rule = "contract-not-found"

    def __init__(self, contract_id: UUID) -> None:
        super().__init__(f"no contract {contract_id}")
        self.contract_id = contract_id


class RegisteredUser(NamedTuple):
    user_id: UUID
    contract: Contract


@dataclass
class Discontinuation:
    service: Service
    ended: list[UUID] = field(default_factory=list)
    refused: dict[UUID, ContractRuleError] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewContract(Command[R]):
    """A command that creates contract `contract_id`.

    Its key is made before the command is submitted (unless `key_made`: the id came from
    the key store's reserve), so that sealing the contract's first event on the committer's
    writer thread finds it cached (ADR 0015).
    """

    contract_id: UUID = field(kw_only=True)
    key_made: bool = field(default=False, kw_only=True)


class ErasureAwareRepository(Repository[UUID]):
    """Rebuilds from events when a snapshot is sealed with a destroyed key."""

    def _reconstruct_aggregate(
        self,
        aggregate_id: UUID,
        version: int | None,
        projector_func: ProjectorFunction[Any, Any],
    ) -> Any:
        try:
            return super()._reconstruct_aggregate(aggregate_id, version, projector_func)
        except SnapshotErasedError:
            events = self.event_store.get(originator_id=aggregate_id, lte=version)
            aggregate = projector_func(None, events)
            if aggregate is None:
                raise AggregateNotFoundError(aggregate_id) from None
            return aggregate


class ContractCommands:
    """Every use case that changes something, as a `Command` for `Contracts.execute`.

    A command's `apply` loads nothing itself: it receives the aggregate it names, checks the
    expected version, changes it and returns a detached copy. It runs on the group committer's
    writer thread (or inline without one), so an expected version is checked against the very
    state the change is applied to, also when a failed batch is redone one command at a time.
    """

    def __init__(self, contracts: Contracts) -> None:
        self._contracts = contracts

    # Application and approval (Art. 4)

    def apply(
        self,
        *,
        tenant_id: str,
        contractor: Contractor,
        plan: Plan,
        terms_version: str,
        agreed_to_terms: bool,
        construction_fee: int | None = None,
    ) -> Command[Contract]:
        reserved = self._contracts.key_store.reserved_id()
        contract_id = reserved or uuid4()

        # Named after the service aggregate: the published terms arrive with the batch's load.
        def apply(service: object) -> tuple[Sequence[Aggregate], Contract]:
            contract = Contract.apply(
                tenant_id=tenant_id,
                contractor=contractor,
                plan=plan,
                construction_fee=construction_fee,
                terms_version=terms_version,
                agreed_to_terms=agreed_to_terms,
                published_terms=service.terms if isinstance(service, Service) else (),
                contract_id=contract_id,
            )
            return [contract], _detached(contract)

        return NewContract(SERVICE_ID, apply, contract_id=contract_id, key_made=bool(reserved))

    def approve(
        self, contract_id: UUID, start_date: date, *, expected_version: int | None = None
    ) -> Command[Contract]:
        return self._change(contract_id, expected_version, lambda c: c.approve(start_date))

    def reject(
        self,
        contract_id: UUID,
        reason_code: str,
        note: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        return self._change(contract_id, expected_version, lambda c: c.reject(reason_code, note))

    def revoke_approval(
        self,
        contract_id: UUID,
        reason_code: str,
        effective_date: date,
        note: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.revoke_approval(reason_code, effective_date, note),
        )

    def change_id_count(
        self,
        contract_id: UUID,
        id_count: int,
        effective_date: date,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        return self._change(
            contract_id, expected_version, lambda c: c.change_id_count(id_count, effective_date)
        )

    # Suspension, resumption, termination (Arts. 7, 8, 11)

    def suspend(
        self,
        contract_id: UUID,
        reason_code: str,
        start_date: date,
        end_date: date | None = None,
        urgent: bool = False,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.suspend(reason_code, start_date, end_date, urgent),
        )

    def resume(
        self, contract_id: UUID, effective_date: date, *, expected_version: int | None = None
    ) -> Command[Contract]:
        return self._change(contract_id, expected_version, lambda c: c.resume(effective_date))

    def terminate(
        self,
        contract_id: UUID,
        initiator: Initiator | str,
        reason_code: str,
        effective_date: date,
        written_notice_ref: str | None = None,
        written_notice_received_on: date | None = None,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        today = self._contracts.today()
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.terminate(
                initiator=Initiator(initiator),
                reason_code=reason_code,
                effective_date=effective_date,
                today=today,
                written_notice_ref=written_notice_ref,
                written_notice_received_on=written_notice_received_on,
            ),
        )

    def record_notice_completion(
        self,
        contract_id: UUID,
        notice_for: NoticeFor | str,
        completed_at: datetime,
        user_id: UUID | None = None,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        """The notification service reports a prior notice complete (Art. 24)."""
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.record_notice_completion(NoticeFor(notice_for), completed_at, user_id),
        )

    def take_effect(self, contract_id: UUID, today: date) -> Command[list[DueChange]]:
        """Record the contract's changes due on `today`."""
        return self._change_with(
            contract_id, None, lambda c: c.take_effect(today), _outcome, today=today
        )

    def end_by_discontinuation(
        self, contract_id: UUID, effective_date: date, today: date
    ) -> Command[Contract]:
        return self._change(
            contract_id, None, lambda c: c.end_by_discontinuation(effective_date, today)
        )

    # The contractor (Arts. 5, 6, 23(8))

    def record_succession(
        self,
        contract_id: UUID,
        successor: Contractor,
        cause: SuccessionCause | str,
        evidence_ref: str,
        effective_date: date,
        tenant_id: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.record_succession(
                successor, SuccessionCause(cause), evidence_ref, effective_date, tenant_id
            ),
        )

    def approve_transfer(
        self,
        contract_id: UUID,
        transferee: Contractor,
        approval_ref: str,
        effective_date: date,
        tenant_id: str,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.approve_transfer(transferee, approval_ref, effective_date, tenant_id),
        )

    def change_contractor_details(
        self,
        contract_id: UUID,
        details: Contractor,
        evidence_ref: str,
        effective_date: date,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.change_contractor_details(details, evidence_ref, effective_date),
        )

    # Users (Arts. 23, 26)

    def register_user(
        self,
        contract_id: UUID,
        name: str,
        email: str,
        consent: Consent | None,
        *,
        expected_version: int | None = None,
    ) -> Command[RegisteredUser]:
        return self._change_with(
            contract_id,
            expected_version,
            lambda c: c.register_user(name, email, consent),
            RegisteredUser,
        )

    def remove_user(
        self, contract_id: UUID, user_id: UUID, *, expected_version: int | None = None
    ) -> Command[Contract]:
        return self._change(contract_id, expected_version, lambda c: c.remove_user(user_id))

    def report_compromise(
        self,
        contract_id: UUID,
        user_id: UUID,
        reported_at: datetime | None = None,
        *,
        expected_version: int | None = None,
    ) -> Command[Contract]:
        at = reported_at or self._contracts.now()
        return self._change(
            contract_id, expected_version, lambda c: c.report_compromise(user_id, at)
        )

    def reissue_user_id(
        self,
        contract_id: UUID,
        user_id: UUID,
        reason: str,
        urgent: bool = False,
        *,
        expected_version: int | None = None,
    ) -> Command[RegisteredUser]:
        return self._change_with(
            contract_id,
            expected_version,
            lambda c: c.reissue_user_id(user_id, reason, urgent),
            RegisteredUser,
        )

    # Construction (Art. 14)

    def start_construction(
        self, contract_id: UUID, started_on: date, *, expected_version: int | None = None
    ) -> Command[Contract]:
        return self._change(
            contract_id, expected_version, lambda c: c.start_construction(started_on)
        )

    def cancel_construction(
        self, contract_id: UUID, cancelled_on: date, *, expected_version: int | None = None
    ) -> Command[Contract]:
        return self._change(
            contract_id, expected_version, lambda c: c.cancel_construction(cancelled_on)
        )

    # Personal data (Art. 18)

    def erase_personal_data(self, contract_id: UUID) -> Command[Contract]:
        """Only the event: `Contracts.erase_personal_data` destroys the key after it commits."""
        return self._change(contract_id, None, lambda c: c.erase_personal_data())

    # Service-wide facts (Arts. 2, 10, 12(2), 22)

    def publish_terms(
        self,
        version: str,
        content: str,
        effective_date: date,
        *,
        expected_version: int | None = None,
    ) -> Command[Service]:
        published_at = self._contracts.now()
        return self._change_service(
            expected_version,
            lambda s: s.publish_terms(version, content, effective_date, published_at),
            _aggregate,
        )

    def announce_interruption(
        self,
        reason_code: str,
        starts_at: datetime,
        ends_at: datetime | None,
        scope: str = "all",
        description: str = "",
        urgent: bool = False,
        *,
        expected_version: int | None = None,
    ) -> Command[UUID]:
        return self._change_service(
            expected_version,
            lambda s: s.announce_interruption(
                reason_code=reason_code,
                starts_at=starts_at,
                ends_at=ends_at,
                scope=scope,
                description=description,
                urgent=urgent,
            ),
            _outcome,
        )

    def announce_discontinuation(
        self,
        effective_date: date,
        scope: str = "all",
        description: str = "",
        today: date | None = None,
        *,
        expected_version: int | None = None,
    ) -> Command[Service]:
        """Only the announcement: `Contracts.announce_discontinuation` also ends the contracts."""
        day = today or self._contracts.today()
        return self._change_service(
            expected_version,
            lambda s: s.announce_discontinuation(effective_date, scope, description, day),
            _aggregate,
        )

    def change_fee(
        self,
        monthly_fee_per_id: int,
        effective_date: date,
        *,
        expected_version: int | None = None,
    ) -> Command[Service]:
        today = self._contracts.today()
        return self._change_service(
            expected_version,
            lambda s: s.change_fee(monthly_fee_per_id, effective_date, today),
            _aggregate,
        )

    # Building blocks

    def _change(
        self, contract_id: UUID, expected_version: int | None, action: Callable[[Contract], object]
    ) -> Command[Contract]:
        return self._change_with(contract_id, expected_version, action, _aggregate)

    def _change_with(
        self,
        contract_id: UUID,
        expected_version: int | None,
        action: Callable[[Contract], T],
        result: Callable[[T, Contract], R],
        *,
        today: date | None = None,
    ) -> Command[R]:
        contracts = self._contracts

        def apply(contract: object) -> tuple[Sequence[Aggregate], R]:
            if not isinstance(contract, Contract):
                raise ContractNotFoundError(contract_id)
            _check_version(contract_id, expected_version, contract.version)
            outcome = action(contract)
            # Changes already due (e.g. an urgent suspension from today) take effect at once.
            contract.take_effect(today or contracts.today())
            return [contract], result(outcome, _detached(contract))

        return Command(contract_id, apply)

    def _change_service(
        self,
        expected_version: int | None,
        action: Callable[[Service], T],
        result: Callable[[T, Service], R],
    ) -> Command[R]:
        def apply(recorded: object) -> tuple[Sequence[Aggregate], R]:
            # A service aggregate not yet recorded is at version 0.
            service = recorded if isinstance(recorded, Service) else None
            _check_version(SERVICE_ID, expected_version, service.version if service else 0)
            service = service or Service.open()
            outcome = action(service)
            return [service], result(outcome, _detached(service))

        return Command(SERVICE_ID, apply)


def _executed(
    build: Callable[Concatenate[ContractCommands, P], Command[R]],
) -> Callable[Concatenate[Contracts, P], R]:
    """A `Contracts` method that builds the command with `build` and executes it."""

    def method(self: Contracts, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.execute(build(self.commands, *args, **kwargs))

    return functools.wraps(build)(method)


class Contracts(Application[UUID]):
    """The contract service's use cases. Synchronous: call it from a thread pool.

    With `group_commit=True` every command goes through one `GroupCommitter`, the process's
    single writer (ADR 0006); `execute_async` then awaits it without a thread. Without it (the
    worker, tests on the in-memory store) each command loads, applies and saves inline.
    """

    name = "contracts"
    snapshotting_intervals = {Contract: SNAPSHOT_INTERVAL}  # noqa: RUF012

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        key_store: KeyStore | None = None,
        clock: Callable[[], datetime] | None = None,
        group_commit: bool = False,
        group_commit_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        self._given_key_store = key_store
        self._clock = clock or (lambda: datetime.now(UTC))
        super().__init__(env)
        self.commands = ContractCommands(self)
        self.committer = (
            GroupCommitter(self, max_wait_s=group_commit_wait_s) if group_commit else None
        )

    # Wiring

    def construct_mapper(self) -> Mapper[UUID]:
        self.key_store = self._given_key_store or self._default_key_store()
        return PersonalDataMapper(self.construct_transcoder(), self.key_store)

    def _default_key_store(self) -> KeyStore:
        if self.env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres":
            return PostgresKeyStore(
                make_conninfo(
                    host=self.env.get("POSTGRES_HOST"),
                    port=self.env.get("POSTGRES_PORT"),
                    dbname=self.env.get("POSTGRES_DBNAME"),
                    user=self.env.get("POSTGRES_USER"),
                    password=self.env.get("POSTGRES_PASSWORD") or None,
                )
            )
        return InMemoryKeyStore()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_transcodings(transcoder)

    def construct_repository(self) -> Repository[UUID]:
        return ErasureAwareRepository(event_store=self.events, snapshot_store=self.snapshots)

    def close(self) -> None:
        if self.committer is not None:
            self.committer.close()
        close_keys = getattr(self.key_store, "close", None)
        if close_keys is not None:
            close_keys()
        super().close()

    def now(self) -> datetime:
        return self._clock()

    def today(self) -> date:
        """The business day in Japan, where the terms' dates are reckoned."""
        return self._clock().astimezone(JST).date()

    # Queries

    def get(self, contract_id: UUID) -> Contract:
        contract = find(self, contract_id, Contract)
        if contract is None:
            raise ContractNotFoundError(contract_id)
        return contract

    def get_service(self) -> Service | None:
        return find(self, SERVICE_ID, Service)

    def history(self, contract_id: UUID) -> list[dict[str, Any]]:
        """All events of a contract, oldest first."""
        views = [event_view(e) for e in self.events.get(contract_id)]
        if not views or views[0]["type"] != Contract.Applied.__name__:
            raise ContractNotFoundError(contract_id)
        return views

    def state_as_of(self, contract_id: UUID, at: datetime) -> Contract:
        """The contract as recorded at `at` (recording time, not effective dates)."""
        version = None
        for stored in self.events.get(contract_id):
            if _timestamp(stored) > at:
                break
            version = stored.originator_version
        if version is None:
            raise ContractNotFoundError(contract_id)
        contract: object = self.repository.get(contract_id, version=version)
        if not isinstance(contract, Contract):
            raise ContractNotFoundError(contract_id)
        return contract

    def export(self, contract_id: UUID) -> dict[str, Any]:
        """Art. 19(2): everything stored about the contract, its events included."""
        contract = self.get(contract_id)
        return {
            "format": "smartid.contract.export.v1",
            "exported_at": self._clock().isoformat(),
            "contract": contract_view(contract),
            "events": self.history(contract_id),
        }

    def contract_ids(self) -> Iterator[UUID]:
        """Every contract ever applied for, in application order (a scan of the log)."""
        topics = [get_topic(Contract.Applied)]
        start = 1
        while True:
            page = self.recorder.select_notifications(start, LOG_PAGE, topics=topics)
            for notification in page:
                yield UUID(str(notification.originator_id))
            if len(page) < LOG_PAGE:
                return
            start = page[-1].id + 1

    # Commands (each builds its `Command` in `ContractCommands` and executes it)

    apply = _executed(ContractCommands.apply)
    approve = _executed(ContractCommands.approve)
    reject = _executed(ContractCommands.reject)
    revoke_approval = _executed(ContractCommands.revoke_approval)
    change_id_count = _executed(ContractCommands.change_id_count)
    suspend = _executed(ContractCommands.suspend)
    resume = _executed(ContractCommands.resume)
    terminate = _executed(ContractCommands.terminate)
    record_notice_completion = _executed(ContractCommands.record_notice_completion)
    record_succession = _executed(ContractCommands.record_succession)
    approve_transfer = _executed(ContractCommands.approve_transfer)
    change_contractor_details = _executed(ContractCommands.change_contractor_details)
    register_user = _executed(ContractCommands.register_user)
    remove_user = _executed(ContractCommands.remove_user)
    report_compromise = _executed(ContractCommands.report_compromise)
    reissue_user_id = _executed(ContractCommands.reissue_user_id)
    start_construction = _executed(ContractCommands.start_construction)
    cancel_construction = _executed(ContractCommands.cancel_construction)
    publish_terms = _executed(ContractCommands.publish_terms)
    announce_interruption = _executed(ContractCommands.announce_interruption)
    change_fee = _executed(ContractCommands.change_fee)

    def apply_due_changes(
        self, today: date | None = None, contract_ids: Iterable[UUID] | None = None
    ) -> dict[UUID, list[DueChange]]:
        """Record the changes due on `today` (default: the clock's day in Japan)."""
        day = today or self.today()
        done: dict[UUID, list[DueChange]] = {}
        for contract_id in self.contract_ids() if contract_ids is None else contract_ids:
            taken = self.execute(self.commands.take_effect(contract_id, day))
            if taken:
                done[contract_id] = taken
        return done

    def announce_discontinuation(
        self,
        effective_date: date,
        scope: str = "all",
        description: str = "",
        contract_ids: Iterable[UUID] | None = None,
        *,
        expected_version: int | None = None,
    ) -> Discontinuation:
        """Art. 22: announce, then end every affected contract on `effective_date` (22(2))."""
        today = self.today()
        service = self.execute(
            self.commands.announce_discontinuation(
                effective_date, scope, description, today, expected_version=expected_version
            )
        )
        result = Discontinuation(service)
        affected = self.contract_ids() if contract_ids is None else contract_ids
        for contract_id in affected:
            try:
                self.execute(
                    self.commands.end_by_discontinuation(contract_id, effective_date, today)
                )
            except ContractRuleError as refused:
                # Contracts already ended or already terminating keep their own end.
                result.refused[contract_id] = refused
            else:
                result.ended.append(contract_id)
        return result

    def erase_personal_data(self, contract_id: UUID) -> Contract:
        """Record the erasure, destroy the contract's key, and re-snapshot without personal data."""
        self.execute(self.commands.erase_personal_data(contract_id))
        self.key_store.destroy(contract_id)
        if self.snapshots is not None:
            version = self.get(contract_id).version
            latest = self.snapshots.recorder.select_events(contract_id, desc=True, limit=1)
            # A snapshot sealed at this very version stays unreadable; loads then replay events.
            if not latest or latest[0].originator_version < version:
                self.take_snapshot(contract_id, version)
        return self.get(contract_id)

    # Executing commands

    def execute(self, command: Command[R]) -> R:
        """Run `command`: through the group committer when there is one, else load, apply, save.

        A command that lost a race is redone on fresh state: one without an expected version
        is applied again (no update is lost), one with an expected version then fails with
        `StaleVersionError`, since its `apply` checks the version it is given.
        """
        self.make_key(command)
        for _attempt in range(MAX_ATTEMPTS):
            if self.committer is not None:
                try:
                    return self.committer.submit(command)
                except IntegrityError:  # a writer outside this committer got there first
                    continue
            aggregate = self._load(command.aggregate_id)
            to_save, result = command.apply(aggregate)
            if self._save(*([aggregate] if aggregate is not None else []), *to_save):
                return result
        raise self._lost_every_race(command.aggregate_id)

    def make_key(self, command: Command[Any]) -> None:
        """A new contract's key, made before its command is submitted (ADR 0015)."""
        if _needs_key(command):
            assert isinstance(command, NewContract)
            self.key_store.create(command.contract_id)

    async def execute_async(self, command: Command[R]) -> R:
        """`execute` for a coroutine: awaits the committer, or runs `execute` in a thread."""
        if self.committer is None:
            return await asyncio.to_thread(self.execute, command)
        if _needs_key(command):
            # Off the writer thread, and off the event loop: the key store is synchronous.
            await asyncio.to_thread(self.make_key, command)
        for _attempt in range(MAX_ATTEMPTS):
            try:
                return await self.committer.submit_async(command)
            except IntegrityError:
                continue
        raise self._lost_every_race(command.aggregate_id)

    def _lost_every_race(self, aggregate_id: UUID | None) -> StaleVersionError:
        if aggregate_id is None:
            return StaleVersionError(UUID(int=0), None, 0)
        return StaleVersionError(aggregate_id, None, self._stored_version(aggregate_id))

    def _load(self, aggregate_id: UUID | None) -> Aggregate | None:
        if aggregate_id is None:
            return None
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate

    def _save(self, *aggregates: BaseAggregate[UUID]) -> bool:
        """Save; False when another writer got there first.

        A retried insert whose first attempt committed also comes back as a conflict, so on
        a conflict the stored events are compared with ours before reporting one.
        """
        pending = {
            a.id: [(e.originator_version, type(e), _timestamp(e)) for e in a.pending_events]
            for a in aggregates
            if a.pending_events
        }
        if not pending:
            return True
        try:
            self.save(*aggregates)
        except IntegrityError:
            for aggregate_id, ours in pending.items():
                stored = self.events.get(aggregate_id, gt=ours[0][0] - 1, lte=ours[-1][0])
                if [(e.originator_version, type(e), _timestamp(e)) for e in stored] != ours:
                    return False
        return True

    def _stored_version(self, aggregate_id: UUID) -> int:
        last = list(self.events.get(aggregate_id, desc=True, limit=1))
        return last[0].originator_version if last else 0


def _needs_key(command: Command[Any]) -> bool:
    return isinstance(command, NewContract) and not command.key_made


def visible_to(command: Command[R], can_access: Callable[[str], bool]) -> Command[R]:
    """`command`, failing with not-found when its contract's tenant may not be seen.

    Checked on the state the command is applied to, before its expected version, so that a
    stale `If-Match` on someone else's contract does not reveal that the contract exists.
    """
    inner = command.apply
    contract_id = command.aggregate_id

    def apply(contract: object) -> tuple[Sequence[BaseAggregate[UUID]], R]:
        if not isinstance(contract, Contract) or not can_access(contract.tenant_id):
            raise ContractNotFoundError(contract_id or UUID(int=0))
        return inner(contract)

    return Command(contract_id, apply, command.expected_version)


def _check_version(aggregate_id: UUID, expected: int | None, actual: int) -> None:
    if expected is not None and actual != expected:
        raise StaleVersionError(aggregate_id, expected, actual)


def _detached(aggregate: A) -> A:
    """A copy to hand back: later commands in the batch go on mutating the original."""
    state = {k: v.copy() if isinstance(v, dict | list) else v for k, v in vars(aggregate).items()}
    state["_pending_events"] = []
    copy = object.__new__(type(aggregate))
    object.__setattr__(copy, "__dict__", state)
    return copy


def _aggregate(_: object, aggregate: A) -> A:
    return aggregate


def _outcome(outcome: T, _: object) -> T:
    return outcome


def _timestamp(domain_event: object) -> datetime:
    timestamp = getattr(domain_event, "timestamp", None)
    assert isinstance(timestamp, datetime)
    return timestamp
