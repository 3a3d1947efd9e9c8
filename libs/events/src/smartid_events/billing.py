"""billing-svc's published events: JSON Schemas of their CloudEvent `data`, version 1."""

from __future__ import annotations

from typing import Any

from smartid_events.registry import REGISTRY, EventSpec

_UUID = {"type": "string", "format": "uuid"}
_DATE = {"type": "string", "format": "date"}
_PERIOD = {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}
_YEN = {"type": "integer"}
_YEN_NON_NEGATIVE = {"type": "integer", "minimum": 0}
_KINDS = [
    "monthly_fee",
    "prorated_fee",
    "construction_fee",
    "construction_fee_credit",
    "surcharge",
    "evaded_fee",
    "late_interest",
    "adjustment",
]
_LINE = {
    "type": "object",
    "required": ["kind", "description", "amount"],
    "properties": {"kind": {"enum": _KINDS}, "description": {"type": "string"}, "amount": _YEN},
    "additionalProperties": False,
}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["contract_id", *required],
        "properties": {"contract_id": {"type": "string"}, **required, **(optional or {})},
    }


def _register(name: str, description: str, schema: dict[str, Any]) -> EventSpec:
    return REGISTRY.register(
        EventSpec(service="billing", name=name, version=1, schema=schema, description=description)
    )


INVOICE_ISSUED = _register(
    "InvoiceIssued",
    "A month's invoice was issued; it never changes (corrections come as later adjustments).",
    _object(
        {
            "invoice_id": _UUID,
            "period": _PERIOD,
            "issued_on": _DATE,
            "due_date": _DATE,
            "lines": {"type": "array", "items": _LINE},
            "subtotal": _YEN,
            "tax": _YEN,
            "credit_brought_forward": _YEN_NON_NEGATIVE,
            "credit_carried_forward": _YEN_NON_NEGATIVE,
            "total": _YEN_NON_NEGATIVE,
        }
    ),
)
PAYMENT_RECORDED = _register(
    "PaymentRecorded",
    "A payment against an invoice; `excess` is what went beyond the amount outstanding.",
    _object(
        {
            "invoice_id": _UUID,
            "amount": {"type": "integer", "minimum": 1},
            "paid_on": _DATE,
            "excess": _YEN_NON_NEGATIVE,
        }
    ),
)
LATE_INTEREST_CHARGED = _register(
    "LateInterestCharged",
    "Art. 15: interest owed for an invoice paid late; billed on the next invoice, untaxed.",
    _object({"invoice_id": _UUID, "period": _PERIOD, "amount": {"type": "integer", "minimum": 1}}),
)
SURCHARGE_ASSESSED = _register(
    "SurchargeAssessed",
    "Art. 13(3): an evaded fee E and a surcharge of 2E, both billed on the next invoice.",
    _object(
        {"evaded_amount": {"type": "integer", "minimum": 1}, "surcharge": _YEN_NON_NEGATIVE},
        {"note": {"type": ["string", "null"]}},
    ),
)
CONSTRUCTION_FEE_CHARGED = _register(
    "ConstructionFeeCharged",
    "Art. 14(1): the contract's construction fee was charged on an invoice.",
    _object({"invoice_id": _UUID, "amount": _YEN_NON_NEGATIVE}),
)
CONSTRUCTION_FEE_CREDITED = _register(
    "ConstructionFeeCredited",
    "Art. 14(2): construction cancelled before it started; its fee credited on an invoice.",
    _object({"invoice_id": _UUID, "amount": _YEN_NON_NEGATIVE}),
)
ADJUSTMENT_ISSUED = _register(
    "AdjustmentIssued",
    "A late fact changed an invoiced month's fees; the difference is on a later invoice.",
    _object({"invoice_id": _UUID, "adjusted_period": _PERIOD, "amount": _YEN}),
)
CREDIT_CARRIED = _register(
    "CreditCarried",
    "Credit (tax included) carried to following invoices: from an overpayment or from "
    "credits exceeding a month's charges. `balance` is the account's credit afterwards.",
    _object(
        {
            "invoice_id": _UUID,
            "reason": {"enum": ["overpayment", "credit_exceeds_charges"]},
            "amount": _YEN_NON_NEGATIVE,
            "balance": _YEN_NON_NEGATIVE,
        }
    ),
)
