"""Contract events → billing facts, and the consumer's ack or park, on plain objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from eventsourcing.persistence import Tracking

from billing_svc.application import Billing
from billing_svc.consumers import CONSUMER_NAME, contract_events_handler, to_fact
from billing_svc.domain import facts
from billing_svc.domain.account import Account
from smartid_events.consumer import Consumer
from smartid_events.envelope import SERVICE_WIDE, CloudEvent, event_type, subject_for
from smartid_events.parked import ParkedMessage, ParkedStore
from smartid_events.tracking import EventSourcedTracker, ProcessContext

from .builders import FEE

pytestmark = pytest.mark.asyncio

D = date
TENANT = "tenant-a"
PLAN = {"monthly_fee_per_id": 1000, "id_count": 10}


def contract_event(name: str, contract_id: str, position: int, **data: Any) -> CloudEvent:
    if contract_id != SERVICE_WIDE:
        data = {"contract_id": contract_id, **data}
    return CloudEvent(
        id=str(uuid.uuid4()),
        source="smartid/contract-svc",
        type=event_type("contract", name, 1),
        subject=contract_id,
        time=datetime(2026, 5, 1, tzinfo=UTC),
        data=data,
        position=position,
    )


def applied(contract_id: str, position: int = 1, tenant: str = TENANT) -> CloudEvent:
    return contract_event(
        "Applied",
        contract_id,
        position,
        tenant_id=tenant,
        terms_version="2026-04",
        plan=PLAN,
        construction_fee=None,
    )


def approved(contract_id: str, position: int = 2, start: str = "2026-05-01") -> CloudEvent:
    return contract_event("Approved", contract_id, position, start_date=start)


@pytest.fixture
def billing() -> Iterator[Billing]:
    app = Billing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def account_of(billing: Billing, contract_id: str) -> Account:
    account: object = billing.repository.get(Account.create_id(contract_id))
    assert isinstance(account, Account)
    return account


# Translation -------------------------------------------------------------------------------


CID = str(uuid.UUID(int=1))


@pytest.mark.parametrize(
    ("event", "fact"),
    [
        # Recorded 2026-05-01T00:00Z = 09:00 JST the same day: applied on 2026-05-01.
        (
            applied(CID),
            facts.Applied(TENANT, 1000, 10, None, tenant_id=TENANT, applied_on=D(2026, 5, 1)),
        ),
        (
            contract_event(
                "Applied",
                CID,
                1,
                tenant_id=TENANT,
                terms_version="2026-04",
                plan=PLAN,
                construction_fee=None,
                contractor_name="株式会社テスト",
            ),
            facts.Applied(
                "株式会社テスト", 1000, 10, None, tenant_id=TENANT, applied_on=D(2026, 5, 1)
            ),
        ),
        (
            contract_event(
                "ContractorSucceeded",
                CID,
                9,
                cause="split",
                tenant_id="tenant-s",
                effective_date="2026-08-01",
                contractor_name="承継株式会社",
            ),
            facts.TenantChanged("tenant-s", D(2026, 8, 1), "承継株式会社"),
        ),
        (
            contract_event(
                "ContractorDetailsChanged",
                CID,
                14,
                effective_date="2026-07-01",
                contractor_name="新商号株式会社",
            ),
            facts.ContractorRenamed("新商号株式会社", D(2026, 7, 1)),
        ),
        (approved(CID), facts.Approved(D(2026, 5, 1))),
        (
            contract_event("IdCountChanged", CID, 3, id_count=12, effective_date="2026-06-10"),
            facts.IdCountChanged(12, D(2026, 6, 10)),
        ),
        (
            contract_event(
                "Terminated",
                CID,
                4,
                initiator="contractor",
                reason_code="art7",
                effective_date="2026-09-30",
                notice_required=False,
                written_notice_received_on="2026-08-01",
            ),
            facts.Terminated(D(2026, 9, 30)),
        ),
        (
            contract_event(
                "ApprovalRevoked", CID, 5, reason_code="art4.3.2", effective_date="2026-06-15"
            ),
            facts.ApprovalRevoked(D(2026, 6, 15)),
        ),
        (
            contract_event("Rejected", CID, 6, reason_code="art4.3.1"),
            facts.Rejected("art4.3.1"),
        ),
        (
            contract_event(
                "Suspended",
                CID,
                7,
                reason_code="art11.1.1",
                start_date="2026-07-01",
                end_date=None,
                urgent=False,
                notice_required=True,
            ),
            facts.Suspended(D(2026, 7, 1)),
        ),
        (
            contract_event("Resumed", CID, 8, effective_date="2026-07-20"),
            facts.Resumed(D(2026, 7, 20)),
        ),
        (
            contract_event(
                "ContractorSucceeded",
                CID,
                9,
                cause="merger",
                tenant_id="tenant-b",
                effective_date="2026-08-01",
            ),
            facts.TenantChanged("tenant-b", D(2026, 8, 1)),
        ),
        (
            contract_event(
                "TransferApproved", CID, 10, tenant_id="tenant-c", effective_date="2026-09-01"
            ),
            facts.TenantChanged("tenant-c", D(2026, 9, 1)),
        ),
        (
            contract_event("ConstructionStarted", CID, 11, started_on="2026-05-10"),
            facts.ConstructionStarted(D(2026, 5, 10)),
        ),
        (
            contract_event(
                "ConstructionCancelled",
                CID,
                12,
                cancelled_on="2026-05-09",
                reason="request-cancelled",
            ),
            facts.ConstructionCancelled(D(2026, 5, 9)),
        ),
        (
            contract_event(
                "FeeChanged",
                SERVICE_WIDE,
                13,
                monthly_fee_per_id=1200,
                effective_date="2026-10-01",
                announced_on="2026-08-01",
                notice_required=True,
            ),
            facts.FeeChanged(1200, D(2026, 10, 1)),
        ),
    ],
    ids=lambda v: v.type.split(".")[2] if isinstance(v, CloudEvent) else "",
)
async def test_each_billable_contract_event_becomes_its_fact(
    event: CloudEvent, fact: facts.ContractFact
) -> None:
    assert to_fact(event) == fact


@pytest.mark.parametrize(
    "name",
    [
        "UserRegistered",
        "NoticeCompleted",
        "SuspensionTookEffect",
        "TermsPublished",
        # Without a name (an address change) or with an erased one, nothing billed changes.
        "ContractorDetailsChanged",
    ],
)
async def test_events_that_change_nothing_billed_become_no_fact(name: str) -> None:
    assert to_fact(contract_event(name, CID, 1)) is None


async def test_events_of_other_services_become_no_fact() -> None:
    event = contract_event("Applied", CID, 1)
    other = CloudEvent(**{**event.__dict__, "type": "smartid.billing.Applied.v1"})
    assert to_fact(other) is None


# The handler with tracking -------------------------------------------------------------------


async def test_a_handled_event_records_its_fact_and_position_together(billing: Billing) -> None:
    tracker = EventSourcedTracker(billing)
    handler = contract_events_handler(billing)
    assert await tracker.apply(f"{CONSUMER_NAME}:p01", 1, applied("c-1"), handler)
    assert await tracker.apply(f"{CONSUMER_NAME}:p01", 2, approved("c-1"), handler)
    account = account_of(billing, "c-1")
    assert (account.tenant_id, account.tariff.start) == (TENANT, D(2026, 5, 1))
    assert billing.recorder.max_tracking_id(f"{CONSUMER_NAME}:p01") == 2  # type: ignore[attr-defined]


async def test_a_redelivered_event_is_skipped_and_changes_nothing(billing: Billing) -> None:
    tracker = EventSourcedTracker(billing)
    handler = contract_events_handler(billing)
    name = f"{CONSUMER_NAME}:p01"
    await tracker.apply(name, 1, applied("c-1"), handler)
    changed = contract_event("IdCountChanged", "c-1", 2, id_count=12, effective_date="2026-06-01")
    assert await tracker.apply(name, 2, changed, handler)
    version = account_of(billing, "c-1").version
    assert not await tracker.apply(name, 2, changed, handler)
    assert account_of(billing, "c-1").version == version


async def test_an_event_billing_ignores_still_advances_the_position(billing: Billing) -> None:
    tracker = EventSourcedTracker(billing)
    name = f"{CONSUMER_NAME}:p01"
    event = contract_event("UserRemoved", "c-1", 7, user_id=str(uuid.uuid4()))
    assert await tracker.apply(name, 7, event, contract_events_handler(billing))
    assert billing.already_handled(Tracking(name, 7))


async def test_a_service_wide_fee_change_is_recorded_once_and_reaches_every_account(
    billing: Billing,
) -> None:
    tracker = EventSourcedTracker(billing)
    handler = contract_events_handler(billing)
    for n, cid in enumerate(["c-1", "c-2"]):
        await tracker.apply(f"p{n}", 1, applied(cid), handler)
        await tracker.apply(f"p{n}", 2, approved(cid), handler)
    fee_changed = contract_event(
        "FeeChanged",
        SERVICE_WIDE,
        9,
        monthly_fee_per_id=1200,
        effective_date="2026-10-01",
        announced_on="2026-08-01",
        notice_required=True,
    )
    assert await tracker.apply("p00", 9, fee_changed, handler)
    assert await tracker.apply("p00", 9, fee_changed, handler) is False  # redelivered
    schedule = billing.fee_schedule()
    assert schedule is not None and len(schedule.changes) == 1
    assert billing.already_handled(Tracking("p00", 9))
    for cid in ("c-1", "c-2"):
        tariff = account_of(billing, cid).tariff_under(schedule)
        assert tariff.monthly_fee_on(D(2026, 10, 1)) == 1200 * 10
        assert tariff.monthly_fee_on(D(2026, 9, 30)) == FEE * 10


# The consumer: ack, skip, park ---------------------------------------------------------------


@dataclass
class FakeMsg:
    """What the consumer reads of a JetStream message."""

    event: CloudEvent
    stream_seq: int
    body: bytes | None = None
    acked: bool = False

    @property
    def subject(self) -> str:
        return subject_for("contract", self.event.subject, self.event.name)

    @property
    def data(self) -> bytes:
        return self.body if self.body is not None else self.event.to_json()

    @property
    def headers(self) -> dict[str, str]:
        return self.event.headers()

    @property
    def metadata(self) -> Any:
        return SimpleNamespace(
            sequence=SimpleNamespace(stream=self.stream_seq), num_delivered=1, num_pending=0
        )

    async def ack(self) -> None:
        self.acked = True

    async def in_progress(self) -> None:
        pass


@dataclass
class FakeParked:
    """The parked-message store, in memory."""

    messages: list[ParkedMessage] = field(default_factory=list)

    async def setup(self) -> None:
        pass

    async def first_parked_seq(self, consumer: str, contract_id: str) -> int | None:
        seqs = [m.stream_seq for m in self.messages if m.contract_id == contract_id]
        return min(seqs) if seqs else None

    async def park(self, message: ParkedMessage) -> None:
        self.messages.append(message)

    async def count(self, consumer: str) -> int:
        return len(self.messages)


def a_consumer(billing: Billing, parked: FakeParked) -> Consumer[ProcessContext]:
    return Consumer(
        name=CONSUMER_NAME,
        upstream="contract",
        partitions=[0],
        handler=contract_events_handler(billing),
        tracker=EventSourcedTracker(billing),
        parked=cast(ParkedStore, parked),
        nats_url="nats://unused",
        max_attempts=1,
    )


async def test_the_consumer_acks_what_it_applied_and_what_it_had_applied(
    billing: Billing,
) -> None:
    consumer = a_consumer(billing, FakeParked())
    first = FakeMsg(applied("c-1"), stream_seq=1)
    await consumer.handle(cast(Any, first), 0)
    version = account_of(billing, "c-1").version
    again = FakeMsg(applied("c-1"), stream_seq=1)
    await consumer.handle(cast(Any, again), 0)
    assert first.acked and again.acked
    assert account_of(billing, "c-1").version == version


async def test_the_consumer_parks_an_undecodable_message_and_holds_the_contracts_next(
    billing: Billing,
) -> None:
    parked = FakeParked()
    consumer = a_consumer(billing, parked)
    broken = FakeMsg(applied("c-1"), stream_seq=1, body=b"not json")
    later = FakeMsg(approved("c-1"), stream_seq=2)
    await consumer.handle(cast(Any, broken), 0)
    await consumer.handle(cast(Any, later), 0)
    assert broken.acked and later.acked
    assert [m.stream_seq for m in parked.messages] == [1, 2]
    assert "not a CloudEvent" in parked.messages[0].reason


async def test_a_fact_for_an_unknown_contract_is_parked_not_lost(billing: Billing) -> None:
    parked = FakeParked()
    consumer = a_consumer(billing, parked)
    await consumer.handle(cast(Any, FakeMsg(approved("c-404"), stream_seq=5)), 0)
    [message] = parked.messages
    assert "AccountNotFoundError" in message.reason
