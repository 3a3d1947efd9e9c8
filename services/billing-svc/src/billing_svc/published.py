"""Which of billing's domain events leave the service, and as what CloudEvent."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from eventsourcing.domain import DomainEventProtocol

from billing_svc.domain.account import Account
from billing_svc.domain.invoice import Invoice
from smartid_events.envelope import CloudEvent, event_type

SOURCE = "smartid/billing-svc"
EVENT_ID_NAMESPACE = uuid.UUID("a3c2d4e1-5f60-4b7a-8c9d-0e1f2a3b4c5d")

# Stored event class → published name. Facts echoed from contract-svc stay private.
PUBLISHED: dict[type[Any], str] = {
    Invoice.Issued: "InvoiceIssued",  # type: ignore[attr-defined]
    Invoice.PaymentRecorded: "PaymentRecorded",  # type: ignore[attr-defined]
    Account.LateInterestCharged: "LateInterestCharged",  # type: ignore[attr-defined]
    Account.SurchargeAssessed: "SurchargeAssessed",  # type: ignore[attr-defined]
    Account.ConstructionFeeCharged: "ConstructionFeeCharged",  # type: ignore[attr-defined]
    Account.ConstructionFeeCredited: "ConstructionFeeCredited",  # type: ignore[attr-defined]
    Account.AdjustmentIssued: "AdjustmentIssued",  # type: ignore[attr-defined]
    Account.CreditCarried: "CreditCarried",  # type: ignore[attr-defined]
}
_RENAMED = {"originator_id": "invoice_id"}
_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def event_id(domain_event: DomainEventProtocol[Any]) -> str:
    """Stable across republishing: the same stored event always gets the same id."""
    key = f"{domain_event.originator_id}/{domain_event.originator_version}"
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, key))


def publish(
    domain_event: DomainEventProtocol[Any], position: int, correlation_id: str | None = None
) -> CloudEvent | None:
    """The CloudEvent for a stored event at `position` in billing's log, or None if private."""
    name = PUBLISHED.get(type(domain_event))
    if name is None:
        return None
    data = {k: _plain(v) for k, v in vars(domain_event).items() if k not in _ENVELOPE}
    if isinstance(domain_event, Invoice.Issued):  # type: ignore[attr-defined]
        data["invoice_id"] = str(domain_event.originator_id)
        data.pop("recipient_name", None)
    if isinstance(domain_event, Invoice.PaymentRecorded):  # type: ignore[attr-defined]
        data["invoice_id"] = str(domain_event.originator_id)
    return CloudEvent(
        id=event_id(domain_event),
        source=SOURCE,
        type=event_type("billing", name, 1),
        subject=str(data["contract_id"]),
        time=vars(domain_event)["timestamp"],
        data=data,
        position=position,
        correlation_id=correlation_id,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, date | uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
