"""Plain-dict views of a contract and its events, as the API, history and export show them."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from contract_svc.domain import Contract
from smartid_events.correlation import CORRELATION_ATTRIBUTE

EVENT_BOOKKEEPING = (
    "originator_id",
    "originator_version",
    "timestamp",
    "originator_topic",
    CORRELATION_ATTRIBUTE,
)

# Exact types only: an enum deriving from str or int still goes through the enum branch.
_PLAIN = frozenset({str, int, bool, float})


def jsonable(value: Any) -> Any:
    """Dates, moments, ids, enums, decimals and value objects as JSON-friendly values."""
    if value is None or type(value) in _PLAIN:  # most values: no isinstance chain
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def event_data(domain_event: DomainEventProtocol[UUID]) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in vars(domain_event).items() if k not in EVENT_BOOKKEEPING}


def event_view(domain_event: DomainEventProtocol[UUID]) -> dict[str, Any]:
    timestamp: datetime = getattr(domain_event, "timestamp")  # noqa: B009
    return {
        "type": type(domain_event).__name__,
        "version": domain_event.originator_version,
        "timestamp": timestamp.isoformat(),
        "data": event_data(domain_event),
    }


def contract_view(contract: Contract) -> dict[str, Any]:
    return {
        "id": str(contract.id),
        "tenant_id": contract.tenant_id,
        "status": contract.status.value,
        "version": contract.version,
        "terms_version": contract.terms_version,
        "contractor": jsonable(contract.contractor),
        "plan": {"monthly_fee_per_id": contract.monthly_fee_per_id, "id_count": contract.id_count},
        "id_count_effective_date": jsonable(contract.id_count_effective_date),
        "construction_fee": contract.construction_fee,
        "construction": contract.construction.value,
        "start_date": jsonable(contract.start_date),
        "end_date": jsonable(contract.end_date),
        "reason_code": contract.reason_code,
        "suspension": jsonable(contract.suspension),
        "resumption_date": jsonable(contract.resumption_date),
        "termination": jsonable(contract.termination),
        "users": [
            {
                "user_id": str(u.user_id),
                "name": u.name,
                "email": u.email,
                "consent": {
                    "obtained_at": u.consent_obtained_at.isoformat(),
                    "method": u.consent_method,
                },
                "compromised": u.compromised,
            }
            for u in contract.users.values()
        ],
        "personal_data_erased": contract.personal_data_erased,
    }
