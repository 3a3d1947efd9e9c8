"""Contracts: one method per use case of contract-svc, on the event store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProjectorFunction,
    Repository,
)
from eventsourcing.domain import Aggregate
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

JST = timezone(timedelta(hours=9), "JST")
SNAPSHOT_INTERVAL = 100
MAX_ATTEMPTS = 50  # retries of a command that lost a race without an expected version
LOG_PAGE = 500

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")


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


class Contracts(Application[UUID]):
    """The contract service's use cases. Synchronous: call it from a thread pool."""

    name = "contracts"
    snapshotting_intervals = {Contract: SNAPSHOT_INTERVAL}  # noqa: RUF012

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        key_store: KeyStore | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._given_key_store = key_store
        self._clock = clock or (lambda: datetime.now(UTC))
        super().__init__(env)

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
        close_keys = getattr(self.key_store, "close", None)
        if close_keys is not None:
            close_keys()
        super().close()

    def today(self) -> date:
        """The business day in Japan, where the terms' dates are reckoned."""
        return self._clock().astimezone(JST).date()

    # Queries

    def get(self, contract_id: UUID) -> Contract:
        try:
            contract: object = self.repository.get(contract_id)
        except AggregateNotFoundError:
            raise ContractNotFoundError(contract_id) from None
        if not isinstance(contract, Contract):
            raise ContractNotFoundError(contract_id)
        return contract

    def get_service(self) -> Service | None:
        try:
            service: object = self.repository.get(SERVICE_ID)
        except AggregateNotFoundError:
            return None
        assert isinstance(service, Service)
        return service

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
    ) -> Contract:
        service = self.get_service()
        contract = Contract.apply(
            tenant_id=tenant_id,
            contractor=contractor,
            plan=plan,
            construction_fee=construction_fee,
            terms_version=terms_version,
            agreed_to_terms=agreed_to_terms,
            published_terms=service.terms if service else (),
        )
        if not self._save(contract):
            raise StaleVersionError(contract.id, None, contract.version)
        return contract

    def approve(
        self, contract_id: UUID, start_date: date, *, expected_version: int | None = None
    ) -> Contract:
        return self._change(contract_id, expected_version, lambda c: c.approve(start_date))

    def reject(
        self,
        contract_id: UUID,
        reason_code: str,
        note: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Contract:
        return self._change(contract_id, expected_version, lambda c: c.reject(reason_code, note))

    def revoke_approval(
        self,
        contract_id: UUID,
        reason_code: str,
        effective_date: date,
        note: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Contract:
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
    ) -> Contract:
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
    ) -> Contract:
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.suspend(reason_code, start_date, end_date, urgent),
        )

    def resume(
        self, contract_id: UUID, effective_date: date, *, expected_version: int | None = None
    ) -> Contract:
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
    ) -> Contract:
        today = self.today()
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
        *,
        expected_version: int | None = None,
    ) -> Contract:
        """The notification service reports a prior notice complete (Art. 24)."""
        return self._change(
            contract_id,
            expected_version,
            lambda c: c.record_notice_completion(NoticeFor(notice_for), completed_at),
        )

    def apply_due_changes(
        self, today: date | None = None, contract_ids: Iterable[UUID] | None = None
    ) -> dict[UUID, list[DueChange]]:
        """Record the changes due on `today` (default: the clock's day in Japan)."""
        day = today or self.today()
        done: dict[UUID, list[DueChange]] = {}
        for contract_id in self.contract_ids() if contract_ids is None else contract_ids:
            taken: list[DueChange] = []

            def take(contract: Contract, taken: list[DueChange] = taken) -> None:
                taken[:] = contract.take_effect(day)

            self._change(contract_id, None, take, today=day)
            if taken:
                done[contract_id] = taken
        return done

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
    ) -> Contract:
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
    ) -> Contract:
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
    ) -> Contract:
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
    ) -> RegisteredUser:
        ids: list[UUID] = []
        contract = self._change(
            contract_id,
            expected_version,
            lambda c: ids.append(c.register_user(name, email, consent)),
        )
        return RegisteredUser(ids[-1], contract)

    def remove_user(
        self, contract_id: UUID, user_id: UUID, *, expected_version: int | None = None
    ) -> Contract:
        return self._change(contract_id, expected_version, lambda c: c.remove_user(user_id))

    def report_compromise(
        self,
        contract_id: UUID,
        user_id: UUID,
        reported_at: datetime | None = None,
        *,
        expected_version: int | None = None,
    ) -> Contract:
        at = reported_at or self._clock()
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
    ) -> RegisteredUser:
        ids: list[UUID] = []
        contract = self._change(
            contract_id,
            expected_version,
            lambda c: ids.append(c.reissue_user_id(user_id, reason, urgent)),
        )
        return RegisteredUser(ids[-1], contract)

    # Construction (Art. 14)

    def start_construction(
        self, contract_id: UUID, started_on: date, *, expected_version: int | None = None
    ) -> Contract:
        return self._change(
            contract_id, expected_version, lambda c: c.start_construction(started_on)
        )

    def cancel_construction(
        self, contract_id: UUID, cancelled_on: date, *, expected_version: int | None = None
    ) -> Contract:
        return self._change(
            contract_id, expected_version, lambda c: c.cancel_construction(cancelled_on)
        )

    # Service-wide facts (Arts. 2, 10, 12(2), 22)

    def publish_terms(
        self,
        version: str,
        content: str,
        effective_date: date,
        *,
        expected_version: int | None = None,
    ) -> Service:
        published_at = self._clock()
        return self._change_service(
            expected_version,
            lambda s: s.publish_terms(version, content, effective_date, published_at),
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
    ) -> UUID:
        ids: list[UUID] = []
        self._change_service(
            expected_version,
            lambda s: ids.append(
                s.announce_interruption(
                    reason_code=reason_code,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    scope=scope,
                    description=description,
                    urgent=urgent,
                )
            ),
        )
        return ids[-1]

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
        service = self._change_service(
            expected_version,
            lambda s: s.announce_discontinuation(effective_date, scope, description, today),
        )
        result = Discontinuation(service)
        affected = self.contract_ids() if contract_ids is None else contract_ids
        for contract_id in affected:
            try:
                self._change(
                    contract_id, None, lambda c: c.end_by_discontinuation(effective_date, today)
                )
            except ContractRuleError as refused:
                # Contracts already ended or already terminating keep their own end.
                result.refused[contract_id] = refused
            else:
                result.ended.append(contract_id)
        return result

    def change_fee(
        self,
        monthly_fee_per_id: int,
        effective_date: date,
        *,
        expected_version: int | None = None,
    ) -> Service:
        today = self.today()
        return self._change_service(
            expected_version, lambda s: s.change_fee(monthly_fee_per_id, effective_date, today)
        )

    # Personal data (Art. 18, requirements: erasure)

    def erase_personal_data(self, contract_id: UUID) -> Contract:
        """Record the erasure, destroy the contract's key, and re-snapshot without personal data."""
        self._change(contract_id, None, lambda c: c.erase_personal_data())
        self.key_store.destroy(contract_id)
        if self.snapshots is not None:
            version = self.get(contract_id).version
            latest = self.snapshots.recorder.select_events(contract_id, desc=True, limit=1)
            # A snapshot sealed at this very version stays unreadable; loads then replay events.
            if not latest or latest[0].originator_version < version:
                self.take_snapshot(contract_id, version)
        return self.get(contract_id)

    # Saving with versions

    def _change(
        self,
        contract_id: UUID,
        expected_version: int | None,
        action: Callable[[Contract], object],
        today: date | None = None,
    ) -> Contract:
        def load() -> Contract:
            return self.get(contract_id)

        def act(contract: Contract) -> None:
            action(contract)
            # Changes already due (e.g. an urgent suspension from today) take effect at once.
            contract.take_effect(today or self.today())

        return self._run(contract_id, expected_version, load, act)

    def _change_service(
        self, expected_version: int | None, action: Callable[[Service], object]
    ) -> Service:
        return self._run(
            SERVICE_ID, expected_version, lambda: self.get_service() or Service.open(), action
        )

    def _run(
        self,
        aggregate_id: UUID,
        expected_version: int | None,
        load: Callable[[], A],
        action: Callable[[A], object],
    ) -> A:
        for _attempt in range(MAX_ATTEMPTS):
            aggregate = load()
            # A service aggregate not yet recorded is at version 0.
            version = aggregate.version if not aggregate.pending_events else 0
            if expected_version is not None and version != expected_version:
                raise StaleVersionError(aggregate_id, expected_version, version)
            action(aggregate)
            if self._save(aggregate):
                return aggregate
            if expected_version is not None:
                raise StaleVersionError(
                    aggregate_id, expected_version, self._stored_version(aggregate_id)
                )
        raise StaleVersionError(aggregate_id, expected_version, self._stored_version(aggregate_id))

    def _save(self, aggregate: Aggregate) -> bool:
        """Save; False when another writer got there first.

        A retried insert whose first attempt committed also comes back as a conflict, so on
        a conflict the stored events are compared with ours before reporting one.
        """
        pending = [(e.originator_version, type(e), _timestamp(e)) for e in aggregate.pending_events]
        if not pending:
            return True
        try:
            self.save(aggregate)
        except IntegrityError:
            stored = self.events.get(aggregate.id, gt=pending[0][0] - 1, lte=pending[-1][0])
            return [(e.originator_version, type(e), _timestamp(e)) for e in stored] == pending
        return True

    def _stored_version(self, aggregate_id: UUID) -> int:
        last = list(self.events.get(aggregate_id, desc=True, limit=1))
        return last[0].originator_version if last else 0


def _timestamp(domain_event: object) -> datetime:
    timestamp = getattr(domain_event, "timestamp", None)
    assert isinstance(timestamp, datetime)
    return timestamp
