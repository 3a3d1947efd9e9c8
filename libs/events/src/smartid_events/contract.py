"""contract-svc's published events: JSON Schemas of their CloudEvent `data`, version 1.

No personal data leaves contract-svc except a user's name and e-mail in `UserRegistered`,
which idp-bridge passes to the NTT Com app (Art. 26(2)), and the contractor's legal name, which
billing needs to address invoices; contractors' contact details (address, e-mail, FAX) stay in
contract-svc and are read from its API by whoever must send a notice.
"""

from __future__ import annotations

from typing import Any

from smartid_events.registry import REGISTRY, EventSpec

_UUID = {"type": "string", "format": "uuid"}
_DATE = {"type": "string", "format": "date"}
_MOMENT = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string", "minLength": 1}
_YEN = {"type": "integer", "minimum": 0}


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _codes(prefix: str, count: int) -> list[str]:
    return [f"{prefix}.{i}" for i in range(1, count + 1)]


REJECTION_CODES = _codes("art4.3", 6)
TERMINATION_CODES = ["art7", *_codes("art8.1", 7), *_codes("art8.2", 5), "art22"]
SUSPENSION_CODES = ["art11.1.1", "art11.1.2"]
INTERRUPTION_CODES = _codes("art10.1", 5)


def _contract_event(
    required: dict[str, Any], optional: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["contract_id", *required],
        "properties": {"contract_id": _UUID, **required, **(optional or {})},
        "additionalProperties": False,
    }


# The contractor's legal name: the addressee of invoices (a qualified invoice must name its
# recipient). Added to v1 as an optional field; "[erased]" once the contract's data is erased.
_CONTRACTOR_NAME = {"contractor_name": _TEXT}


def _service_event(required: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": required,
        "additionalProperties": False,
    }


def _register(name: str, description: str, schema: dict[str, Any]) -> EventSpec:
    return REGISTRY.register(
        EventSpec(service="contract", name=name, version=1, schema=schema, description=description)
    )


_EFFECTIVE = {"effective_date": _DATE}

APPLIED = _register(
    "Applied",
    "Art. 4(1): an application with its plan, construction fee and the agreed terms version.",
    _contract_event(
        {
            "tenant_id": _TEXT,
            "terms_version": _TEXT,
            "plan": {
                "type": "object",
                "required": ["monthly_fee_per_id", "id_count"],
                "properties": {
                    "monthly_fee_per_id": _YEN,
                    "id_count": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
            },
            "construction_fee": _optional(_YEN),
        },
        _CONTRACTOR_NAME,
    ),
)
APPROVED = _register(
    "Approved",
    "Art. 4(2), 3(4): the contract is formed; fees accrue from `start_date`.",
    _contract_event({"start_date": _DATE}),
)
REJECTED = _register(
    "Rejected",
    "Art. 4(3): the application was refused on ground art4.3.N; notified to the applicant (4(5)).",
    _contract_event({"reason_code": {"enum": REJECTION_CODES}}),
)
APPROVAL_REVOKED = _register(
    "ApprovalRevoked",
    "Art. 4(4): the approval was revoked; `effective_date` is the last day costs accrue.",
    _contract_event({"reason_code": {"enum": REJECTION_CODES}, **_EFFECTIVE}),
)
ID_COUNT_CHANGED = _register(
    "IdCountChanged",
    "Art. 13(1): the number of IDs billed from `effective_date` on.",
    _contract_event({"id_count": {"type": "integer", "minimum": 1}, **_EFFECTIVE}),
)
SUSPENDED = _register(
    "Suspended",
    "Art. 11: a suspension was decided; it takes effect with SuspensionTookEffect. Fees accrue.",
    _contract_event(
        {
            "reason_code": {"enum": SUSPENSION_CODES},
            "start_date": _DATE,
            "end_date": _optional(_DATE),
            "urgent": {"type": "boolean"},
            "notice_required": {"type": "boolean"},
        }
    ),
)
SUSPENSION_TOOK_EFFECT = _register(
    "SuspensionTookEffect",
    "Art. 11: the contract's IDs stop working from `effective_date`.",
    _contract_event(_EFFECTIVE),
)
RESUMED = _register(
    "Resumed",
    "Art. 11: the suspension ends; service again from `effective_date`.",
    _contract_event(_EFFECTIVE),
)
RESUMPTION_TOOK_EFFECT = _register(
    "ResumptionTookEffect",
    "Art. 11: the contract's IDs work again from `effective_date`.",
    _contract_event(_EFFECTIVE),
)
TERMINATED = _register(
    "Terminated",
    "Arts. 7, 8, 22: the contract ends; `effective_date` is the last day of service (fees end).",
    _contract_event(
        {
            "initiator": {"enum": ["contractor", "company"]},
            "reason_code": {"enum": TERMINATION_CODES},
            "effective_date": _DATE,
            "notice_required": {"type": "boolean"},
            "written_notice_received_on": _optional(_DATE),
        }
    ),
)
TERMINATION_TOOK_EFFECT = _register(
    "TerminationTookEffect",
    "The contract has ended; `effective_date` was its last day of service.",
    _contract_event(_EFFECTIVE),
)
NOTICE_COMPLETED = _register(
    "NoticeCompleted",
    "Art. 24: the prior notice of a suspension, termination or user-ID change (Art. 23(7)) was "
    "complete at `completed_at`; for an ID change, `user_id` names the user whose ID changed.",
    _contract_event(
        {"notice_for": {"enum": ["suspension", "termination", "reissue"]}, "completed_at": _MOMENT},
        {"user_id": _UUID},
    ),
)
CONTRACTOR_SUCCEEDED = _register(
    "ContractorSucceeded",
    "Art. 5: a corporation succeeded the contractor by merger or split.",
    _contract_event(
        {"cause": {"enum": ["merger", "split"]}, "tenant_id": _TEXT, **_EFFECTIVE},
        _CONTRACTOR_NAME,
    ),
)
TRANSFER_APPROVED = _register(
    "TransferApproved",
    "Art. 6: the company approved the transfer of the contract to `tenant_id`.",
    _contract_event({"tenant_id": _TEXT, **_EFFECTIVE}, _CONTRACTOR_NAME),
)
CONTRACTOR_DETAILS_CHANGED = _register(
    "ContractorDetailsChanged",
    "Art. 23(8): the contractor's name or address changed; read the details from contract-svc.",
    _contract_event(_EFFECTIVE, _CONTRACTOR_NAME),
)
USER_REGISTERED = _register(
    "UserRegistered",
    "Art. 26(2)-(3): a user with recorded consent; name and e-mail go to the NTT Com app.",
    _contract_event(
        {
            "user_id": _UUID,
            "name": _TEXT,
            "email": {"type": "string", "pattern": "@"},
            "consent_obtained_at": _MOMENT,
        }
    ),
)
USER_REMOVED = _register(
    "UserRemoved", "A user was removed from the contract.", _contract_event({"user_id": _UUID})
)
USER_CREDENTIALS_COMPROMISED = _register(
    "UserCredentialsCompromised",
    "Art. 23(5): the contractor reported that a user's ID may have been misused.",
    _contract_event({"user_id": _UUID, "reported_at": _MOMENT}),
)
USER_ID_REISSUED = _register(
    "UserIdReissued",
    "Art. 23(6)-(7): the user's ID is replaced by `new_user_id`: at once when urgent, otherwise "
    "once the notice with the reason is complete (`NoticeCompleted` with notice_for reissue).",
    _contract_event(
        {
            "user_id": _UUID,
            "new_user_id": _UUID,
            "urgent": {"type": "boolean"},
            "notice_required": {"type": "boolean"},
        }
    ),
)
CONSTRUCTION_STARTED = _register(
    "ConstructionStarted",
    "Art. 14: construction started; the construction fee can no longer be waived.",
    _contract_event({"started_on": _DATE}),
)
CONSTRUCTION_CANCELLED = _register(
    "ConstructionCancelled",
    "Art. 14(2): cancelled before it started; the construction fee is not owed (refund if paid).",
    _contract_event(
        {
            "cancelled_on": _optional(_DATE),
            "reason": {
                "enum": [
                    "request-cancelled",
                    "contract-terminated",
                    "application-rejected",
                    "approval-revoked",
                    "service-discontinued",
                ]
            },
        }
    ),
)
PERSONAL_DATA_ERASED = _register(
    "PersonalDataErased",
    "Art. 18: the contract's personal data is erased; purge copies (read models, streams, IdP).",
    _contract_event({}),
)
TERMS_PUBLISHED = _register(
    "TermsPublished",
    "Art. 2: a terms version was posted with its content and effective date.",
    _service_event(
        {"version": _TEXT, "content": _TEXT, "effective_date": _DATE, "published_at": _MOMENT}
    ),
)
INTERRUPTION_ANNOUNCED = _register(
    "InterruptionAnnounced",
    "Art. 10: all or part of the service is interrupted; prior notice unless urgent (10(2)).",
    _service_event(
        {
            "interruption_id": _UUID,
            "reason_code": {"enum": INTERRUPTION_CODES},
            "starts_at": _MOMENT,
            "ends_at": _optional(_MOMENT),
            "scope": {"enum": ["all", "partial"]},
            "description": {"type": "string"},
            "urgent": {"type": "boolean"},
            "notice_required": {"type": "boolean"},
        }
    ),
)
DISCONTINUATION_ANNOUNCED = _register(
    "DiscontinuationAnnounced",
    "Art. 22: all or part of the service ends after `effective_date`; notice in advance (22(4)).",
    _service_event(
        {
            "reason_code": {"enum": ["art22"]},
            "effective_date": _DATE,
            "scope": {"enum": ["all", "partial"]},
            "description": {"type": "string"},
            "announced_on": _DATE,
            "notice_required": {"type": "boolean"},
        }
    ),
)
FEE_CHANGED = _register(
    "FeeChanged",
    "Art. 12(2): the monthly fee per ID for every contract from `effective_date`, after notice.",
    _service_event(
        {
            "monthly_fee_per_id": _YEN,
            "effective_date": _DATE,
            "announced_on": _DATE,
            "notice_required": {"type": "boolean"},
        }
    ),
)
