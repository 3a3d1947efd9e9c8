"""Value objects of a contract: contractor, plan, users and changes waiting to take effect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

ERASED = "[erased]"


@dataclass(frozen=True)
class Contractor:
    """Who holds the contract (Art. 3(3)); name, address, e-mail and FAX are personal data."""

    name: str
    address: str
    email: str
    fax: str | None = None
    corporate_number: str | None = None


@dataclass(frozen=True)
class Plan:
    """Art. 12(1): the fee comes from the application form."""

    monthly_fee_per_id: int
    id_count: int


@dataclass(frozen=True)
class Consent:
    """Art. 26(3): the user's prior consent, as the contractor recorded it."""

    obtained_at: datetime
    method: str


@dataclass(frozen=True)
class User:
    user_id: UUID
    name: str
    email: str
    consent_obtained_at: datetime
    consent_method: str
    compromised: bool = False
    # Art. 23(7): the ID it will be changed to once the notice of the change is complete.
    reissue_to: UUID | None = None


@dataclass(frozen=True)
class Suspension:
    """A decided suspension (Art. 11); `in_effect` once its start date and notice have passed."""

    reason_code: str
    start_date: date
    end_date: date | None
    urgent: bool
    notice_required: bool
    notice_completed_at: datetime | None = None
    in_effect: bool = False


@dataclass(frozen=True)
class Termination:
    """A decided termination; `effective_date` is the last day of service."""

    initiator: str
    reason_code: str
    effective_date: date
    notice_required: bool
    notice_completed_at: datetime | None = None
