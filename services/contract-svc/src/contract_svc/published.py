"""Which domain events leave contract-svc, and as what: CloudEvents without personal data.

The one exception is `UserRegistered`'s name and e-mail, which idp-bridge must pass to the
NTT Com app (Art. 26(2)); erasing a contract purges its subjects from the stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

import smartid_events.contract  # noqa: F401  (registers the schemas)
from contract_svc.domain import Contract, Service
from contract_svc.views import jsonable
from smartid_events.correlation import correlation_of
from smartid_events.envelope import SERVICE_WIDE, CloudEvent
from smartid_events.registry import REGISTRY

SERVICE = "contract"
SOURCE = "smartid/contract-svc"
EVENT_ID_NAMESPACE = UUID("3d0f6a52-71f4-4c8e-a0a5-0c5cb6e2b1f7")

DataOf = Callable[[Any], dict[str, Any]]

# Values JSON takes as they are: most fields, skipped past `jsonable`'s checks.
_PLAIN = frozenset({str, int, bool, float, type(None)})


def _fields(*names: str) -> DataOf:
    def data(e: Any) -> dict[str, Any]:
        state = e.__dict__
        out: dict[str, Any] = {}
        for name in names:
            value = state[name] if name in state else getattr(e, name)
            out[name] = value if value.__class__ in _PLAIN else jsonable(value)
        return out

    return data


def _applied(e: Contract.Applied) -> dict[str, Any]:
    return {
        "tenant_id": e.tenant_id,
        "terms_version": e.terms_version,
        "plan": {"monthly_fee_per_id": e.monthly_fee_per_id, "id_count": e.id_count},
        "construction_fee": e.construction_fee,
        "contractor_name": e.contractor_name,
    }


_EFFECTIVE = _fields("effective_date")


def _notice_completed(e: Contract.NoticeCompleted) -> dict[str, Any]:
    data = {"notice_for": e.notice_for, "completed_at": jsonable(e.completed_at)}
    # Only a reissue notice names its user (events recorded before it existed have none).
    user_id = vars(e).get("user_id")
    if user_id is not None:
        data["user_id"] = str(user_id)
    return data


CONTRACT_EVENTS: dict[type[Any], DataOf] = {
    Contract.Applied: _applied,
    Contract.Approved: _fields("start_date"),
    Contract.Rejected: _fields("reason_code"),
    Contract.ApprovalRevoked: _fields("reason_code", "effective_date"),
    Contract.IdCountChanged: _fields("id_count", "effective_date"),
    Contract.Suspended: _fields(
        "reason_code", "start_date", "end_date", "urgent", "notice_required"
    ),
    Contract.SuspensionTookEffect: _EFFECTIVE,
    Contract.Resumed: _EFFECTIVE,
    Contract.ResumptionTookEffect: _EFFECTIVE,
    Contract.Terminated: _fields(
        "initiator",
        "reason_code",
        "effective_date",
        "notice_required",
        "written_notice_received_on",
    ),
    Contract.TerminationTookEffect: _EFFECTIVE,
    Contract.NoticeCompleted: _notice_completed,
    Contract.ContractorSucceeded: _fields(
        "cause", "tenant_id", "effective_date", "contractor_name"
    ),
    Contract.TransferApproved: _fields("tenant_id", "effective_date", "contractor_name"),
    Contract.ContractorDetailsChanged: _fields("effective_date", "contractor_name"),
    # Art. 26(2): the only personal data published.
    Contract.UserRegistered: _fields("user_id", "name", "email", "consent_obtained_at"),
    Contract.UserRemoved: _fields("user_id"),
    Contract.UserCredentialsCompromised: _fields("user_id", "reported_at"),
    Contract.UserIdReissued: _fields("user_id", "new_user_id", "urgent", "notice_required"),
    Contract.ConstructionStarted: _fields("started_on"),
    Contract.ConstructionCancelled: _fields("cancelled_on", "reason"),
    Contract.PersonalDataErased: _fields(),
}

SERVICE_EVENTS: dict[type[Any], DataOf] = {
    Service.TermsPublished: _fields("version", "content", "effective_date", "published_at"),
    Service.InterruptionAnnounced: _fields(
        "interruption_id",
        "reason_code",
        "starts_at",
        "ends_at",
        "scope",
        "description",
        "urgent",
        "notice_required",
    ),
    Service.DiscontinuationAnnounced: _fields(
        "reason_code", "effective_date", "scope", "description", "announced_on", "notice_required"
    ),
    Service.FeeChanged: _fields(
        "monthly_fee_per_id", "effective_date", "announced_on", "notice_required"
    ),
}


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def event_id(originator_id: UUID | str, originator_version: int) -> str:
    """Stable per stored event, so a republished event keeps its Nats-Msg-Id.

    `str(uuid5(EVENT_ID_NAMESPACE, "<originator_id>:<version>"))`, without building the UUID.
    """
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{originator_id}:{originator_version}".encode()).digest()
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest[:16].hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


# Each published class's CloudEvent type and data function, looked up once per class.
_TYPES: dict[type[Any], str] = {}


def _type_of(cls: type[Any]) -> str:
    type_ = _TYPES.get(cls)
    if type_ is None:
        type_ = _TYPES[cls] = REGISTRY.latest(SERVICE, cls.__name__).type
    return type_


def publish(
    domain_event: DomainEventProtocol[UUID], position: int, correlation_id: str | None
) -> CloudEvent | None:
    """The CloudEvent for a stored event, or None when the event stays inside the service."""
    cls = type(domain_event)
    originator_id = str(domain_event.originator_id)
    if (data_of := CONTRACT_EVENTS.get(cls)) is not None:
        subject = originator_id
        data = {"contract_id": subject, **data_of(domain_event)}
    elif (data_of := SERVICE_EVENTS.get(cls)) is not None:
        subject = SERVICE_WIDE
        data = data_of(domain_event)
    else:
        return None
    timestamp = getattr(domain_event, "timestamp", None)
    assert isinstance(timestamp, datetime)
    return CloudEvent.of(
        id=event_id(originator_id, domain_event.originator_version),
        source=SOURCE,
        type=_type_of(cls),
        subject=subject,
        time=timestamp,
        data=data,
        position=position,
        correlation_id=correlation_id,
    )


def publish_correlated(domain_event: DomainEventProtocol[UUID], position: int) -> CloudEvent | None:
    """`publish` with the correlation id the event was recorded with (for the relay)."""
    return publish(domain_event, position, correlation_of(domain_event))
