"""The contract domain: pure Python and `eventsourcing.domain`, no I/O."""

from contract_svc.domain.codes import Construction, Initiator, NoticeFor, Status, SuccessionCause
from contract_svc.domain.contract import Contract
from contract_svc.domain.errors import ContractRuleError
from contract_svc.domain.schedule import DueChange, due_changes, next_due_date
from contract_svc.domain.service import SERVICE_ID, Service
from contract_svc.domain.values import (
    ERASED,
    Consent,
    Contractor,
    Plan,
    Suspension,
    Termination,
    User,
)

__all__ = [
    "ERASED",
    "SERVICE_ID",
    "Consent",
    "Construction",
    "Contract",
    "ContractRuleError",
    "Contractor",
    "DueChange",
    "Initiator",
    "NoticeFor",
    "Plan",
    "Service",
    "Status",
    "SuccessionCause",
    "Suspension",
    "Termination",
    "User",
    "due_changes",
    "next_due_date",
]
