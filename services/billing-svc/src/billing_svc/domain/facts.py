"""The contract facts billing acts on, as contract-svc publishes them (one dataclass per event)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Applied:
    contractor_name: str
    monthly_fee_per_id: int
    id_count: int
    construction_fee: int | None = None
    tenant_id: str | None = None  # the contractor account whose tokens may see the invoices


@dataclass(frozen=True)
class TenantChanged:
    """Art. 5 succession or Art. 6 approved transfer: the contract now belongs to `tenant_id`."""

    tenant_id: str
    effective_date: date


@dataclass(frozen=True)
class Approved:
    start_date: date


@dataclass(frozen=True)
class IdCountChanged:
    id_count: int
    effective_date: date


@dataclass(frozen=True)
class FeeChanged:
    monthly_fee_per_id: int
    effective_date: date


@dataclass(frozen=True)
class Suspended:
    start_date: date | None = None


@dataclass(frozen=True)
class Resumed:
    effective_date: date | None = None


@dataclass(frozen=True)
class Terminated:
    effective_date: date  # the last day of service


@dataclass(frozen=True)
class ApprovalRevoked:
    effective_date: date  # the last day billed: costs so far are borne (Art. 4(4))


@dataclass(frozen=True)
class Rejected:
    reason_code: str | None = None


@dataclass(frozen=True)
class ConstructionStarted:
    started_on: date | None = None


@dataclass(frozen=True)
class ConstructionCancelled:
    cancelled_on: date | None = None


ContractFact = (
    Applied
    | TenantChanged
    | Approved
    | IdCountChanged
    | FeeChanged
    | Suspended
    | Resumed
    | Terminated
    | ApprovalRevoked
    | Rejected
    | ConstructionStarted
    | ConstructionCancelled
)
