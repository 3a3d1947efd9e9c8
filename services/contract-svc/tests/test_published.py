"""Every published contract event fits its registered schema and carries no stray personal data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from contract_builders import a_consent, a_contractor, an_active_contract
from eventsourcing.persistence import StoredEvent

from contract_svc.application import Contracts
from contract_svc.domain import Contract, Initiator, NoticeFor, Service, SuccessionCause
from contract_svc.published import CONTRACT_EVENTS, SERVICE_EVENTS, publish
from smartid_events.envelope import SERVICE_WIDE
from smartid_events.registry import REGISTRY

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def every_event() -> list[Any]:
    contract = an_active_contract(construction_fee=30000)
    contract.change_id_count(5, date(2026, 5, 1))
    user_id = contract.register_user("Sato Hanako", "hanako@x.example", a_consent())
    contract.report_compromise(user_id, NOW)
    new_id = contract.reissue_user_id(user_id, "stolen phone")
    contract.record_notice_completion(NoticeFor.REISSUE, NOW, user_id)
    contract.remove_user(new_id)
    contract.record_succession(
        a_contractor("B K.K."), SuccessionCause.MERGER, "D-1", date(2026, 5, 2)
    )
    contract.change_contractor_details(a_contractor("B2 K.K."), "D-2", date(2026, 5, 3))
    contract.approve_transfer(a_contractor("C K.K."), "APR-9", date(2026, 5, 4), "tenant-9")
    contract.start_construction(date(2026, 5, 5))
    contract.suspend("art11.1.1", date(2026, 5, 10), date(2026, 5, 20))
    contract.record_notice_completion(NoticeFor.SUSPENSION, NOW)
    contract.take_effect(date(2026, 5, 10))
    contract.resume(date(2026, 5, 15))
    contract.take_effect(date(2026, 5, 15))
    contract.terminate(
        initiator=Initiator.COMPANY,
        reason_code="art8.1.4",
        effective_date=date(2026, 6, 30),
        today=date(2026, 6, 1),
    )
    contract.record_notice_completion(NoticeFor.TERMINATION, NOW)
    contract.take_effect(date(2026, 7, 1))
    contract.erase_personal_data()
    rejected = Contract.apply(
        tenant_id="t",
        contractor=a_contractor(),
        plan=contract_plan(),
        construction_fee=100,
        terms_version="v",
        agreed_to_terms=True,
        published_terms={"v"},
    )
    rejected.reject("art4.3.2", note="called Mr. Suzuki")
    revoked = an_active_contract()
    revoked.revoke_approval("art4.3.4", date(2026, 4, 30))
    service = Service.open()
    service.publish_terms("v", "本規約", date(2026, 4, 1), NOW)
    service.announce_interruption(
        reason_code="art10.1.1",
        starts_at=NOW,
        ends_at=None,
        scope="all",
        description="",
        urgent=False,
    )
    service.announce_discontinuation(date(2027, 3, 31), "partial", "FAX option", date(2026, 5, 1))
    service.change_fee(600, date(2026, 10, 1), today=date(2026, 5, 1))
    return [
        *contract.collect_events(),
        *rejected.collect_events(),
        *revoked.collect_events(),
        *service.collect_events(),
    ]


def contract_plan() -> Any:
    from contract_svc.domain import Plan

    return Plan(500, 1)


def test_every_published_event_validates_against_its_schema() -> None:
    published = [
        publish(e, position=n, correlation_id="c-1") for n, e in enumerate(every_event(), 1)
    ]
    seen = set()
    for cloud_event in published:
        if cloud_event is not None:
            REGISTRY.validate(cloud_event)
            seen.add(cloud_event.name)
    assert seen == {cls.__name__ for cls in (*CONTRACT_EVENTS, *SERVICE_EVENTS)}


def test_only_user_registration_publishes_personal_data() -> None:
    """Contact details never leave; the contractor's legal name does, to address invoices."""
    for domain_event in every_event():
        cloud_event = publish(domain_event, 1, None)
        if cloud_event is None or cloud_event.name == "UserRegistered":
            continue
        data = dict(cloud_event.data)
        data.pop("contractor_name", None)
        body = str(data)
        assert "Yamada" not in body and "@" not in body and "Suzuki" not in body
        assert "Chiyoda" not in cloud_event.to_json().decode()


def test_invoices_can_be_addressed_to_the_contractors_legal_name() -> None:
    applied = publish(every_event()[0], 1, None)
    assert applied is not None and applied.data["contractor_name"] == "Yamada Shoji K.K."


def test_the_same_stored_event_always_gets_the_same_id() -> None:
    applied = every_event()[0]
    first, again = publish(applied, 1, None), publish(applied, 7, None)
    assert first is not None and again is not None and first.id == again.id


def test_service_wide_events_use_the_service_subject() -> None:
    terms = next(e for e in every_event() if isinstance(e, Service.TermsPublished))
    cloud_event = publish(terms, 1, None)
    assert cloud_event is not None and cloud_event.subject == SERVICE_WIDE


def test_internal_events_stay_inside() -> None:
    assert publish(Service.open().collect_events()[0], 1, None) is None


def test_a_termination_stored_as_version_1_is_read_as_version_2() -> None:
    mapper = Contracts(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    transcoder = mapper.transcoder
    contract = an_active_contract()
    v1_state = {
        "timestamp": NOW,
        "initiator": "company",
        "reason_code": "art8.1.3",
        "effective_date": date(2026, 6, 30),
        "written_notice_ref": None,
        "written_notice_received_on": None,
    }
    stored = StoredEvent(
        originator_id=contract.id,
        originator_version=3,
        topic="contract_svc.domain.contract:Contract.Terminated",
        state=transcoder.encode(v1_state),
    )
    terminated = mapper.to_domain_event(stored)
    assert isinstance(terminated, Contract.Terminated)
    assert terminated.notice_required is True


@pytest.mark.parametrize("cls", [*CONTRACT_EVENTS, *SERVICE_EVENTS])
def test_every_published_event_has_a_registered_schema(cls: type[Any]) -> None:
    assert REGISTRY.get(f"smartid.contract.{cls.__name__}.v1").description


def test_the_application_publishes_what_it_stores() -> None:
    contracts = Contracts(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    contracts.publish_terms("v", "本規約", date(2026, 4, 1))
    notifications = contracts.notification_log.select(start=1, limit=10)
    event = contracts.mapper.to_domain_event(notifications[-1])
    cloud_event = publish(event, notifications[-1].id, None)
    assert cloud_event is not None and cloud_event.position == notifications[-1].id
