"""Every event billing publishes fits its registered schema; private facts stay inside."""

from __future__ import annotations

from datetime import date

import smartid_events.billing  # noqa: F401  (registers billing's schemas)
from billing_svc.application import Billing
from billing_svc.domain import facts
from billing_svc.published import publish
from smartid_events.registry import REGISTRY

from .stories import an_active_contract

D = date


def a_billing_with_every_published_event() -> Billing:
    billing = Billing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    an_active_contract(billing, construction_fee=50000)
    billing.assess_surcharge("c-1", 1000, note="test")
    may = billing.run_billing("2026-05", issued_on=D(2026, 6, 1)).invoice_ids[0]
    billing.record_payment(may, 100000, D(2026, 7, 31))  # late and overpaid
    billing.record_contract_fact("c-1", facts.IdCountChanged(20, D(2026, 5, 11)))
    billing.record_contract_fact("c-1", facts.ConstructionCancelled())
    billing.run_billing("2026-06", issued_on=D(2026, 7, 1))
    return billing


def test_every_published_billing_event_validates_against_its_schema() -> None:
    billing = a_billing_with_every_published_event()
    names = set()
    for notification in billing.recorder.select_notifications(start=1, limit=1000):
        domain_event = billing.mapper.to_domain_event(notification)
        cloud_event = publish(domain_event, notification.id, "corr-1")
        if cloud_event is None:
            continue
        REGISTRY.validate(cloud_event)
        assert cloud_event.subject == "c-1"
        assert cloud_event.source == "smartid/billing-svc"
        assert cloud_event.position == notification.id
        names.add(cloud_event.name)
    assert names == {spec.name for spec in REGISTRY if spec.service == "billing"}


def test_the_published_id_is_stable_for_the_same_stored_event() -> None:
    billing = a_billing_with_every_published_event()
    [notification] = billing.recorder.select_notifications(start=1, limit=1)
    event = billing.mapper.to_domain_event(notification)
    assert publish(event, 1) is None  # the account's opening is private
    issued = next(
        billing.mapper.to_domain_event(n)
        for n in billing.recorder.select_notifications(start=1, limit=1000)
        if n.topic.endswith("Invoice.Issued")
    )
    first, second = publish(issued, 5), publish(issued, 5)
    assert first is not None and second is not None
    assert first.id == second.id
    assert first.type == "smartid.billing.InvoiceIssued.v1"
