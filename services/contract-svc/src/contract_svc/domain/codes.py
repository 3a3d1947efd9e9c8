"""Reason codes: each names the article and item a decision rests on, and nothing else is valid."""

from __future__ import annotations

from enum import StrEnum


def _items(prefix: str, count: int) -> frozenset[str]:
    return frozenset(f"{prefix}.{i}" for i in range(1, count + 1))


# Art. 4(3) grounds (1)-(6); Art. 4(4) revokes an approval on the same grounds.
REJECTION = _items("art4.3", 6)
CONTRACTOR_TERMINATION = frozenset({"art7"})
# Art. 8(1) grounds (1)-(7) need a prior notice; Art. 8(2) grounds (1)-(5) do not.
COMPANY_TERMINATION_WITH_NOTICE = _items("art8.1", 7)
COMPANY_TERMINATION_WITHOUT_NOTICE = _items("art8.2", 5)
COMPANY_TERMINATION = COMPANY_TERMINATION_WITH_NOTICE | COMPANY_TERMINATION_WITHOUT_NOTICE
SUSPENSION = frozenset({"art11.1.1", "art11.1.2"})
INTERRUPTION = _items("art10.1", 5)
DISCONTINUATION = frozenset({"art22"})
# Art. 8(1)(1): the contractor stays suspended and has not cured the cause.
TERMINATION_AFTER_SUSPENSION = "art8.1.1"


class Initiator(StrEnum):
    CONTRACTOR = "contractor"
    COMPANY = "company"


class Status(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    REVOKED = "revoked"


ENDED = frozenset({Status.REJECTED, Status.TERMINATED, Status.REVOKED})
IN_FORCE = frozenset({Status.ACTIVE, Status.SUSPENDED})


class Construction(StrEnum):
    NONE = "none"
    PENDING = "pending"
    STARTED = "started"
    CANCELLED = "cancelled"


class SuccessionCause(StrEnum):
    MERGER = "merger"
    SPLIT = "split"


class NoticeFor(StrEnum):
    """The changes whose prior notice gates their effect."""

    SUSPENSION = "suspension"
    TERMINATION = "termination"
    REISSUE = "reissue"  # Art. 23(7): a user's ID is changed only after notice with the reason
