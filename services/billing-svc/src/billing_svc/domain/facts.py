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
    # The day contract-svc recorded the application (JST): the plan's fee was agreed then, so
    # only fee changes effective after it override the plan (Art. 12). None: before every change.
    applied_on: date | None = None


@dataclass(frozen=True)
class TenantChanged:
    """Art. 5 succession or Art. 6 approved transfer: the contract now belongs to `tenant_id`."""

    tenant_id: str
    effective_date: date
    contractor_name: str | None = None  # the successor's or transferee's legal name, if sent


@dataclass(frozen=True)
class ContractorRenamed:
    """Art. 23(8): the contractor's (legal) name changed from `effective_date` on."""

    contractor_name: str
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
    """Art. 12(2): service-wide, the monthly fee per ID from `effective_date` on, after notice."""

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
    | ContractorRenamed
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
