"""The registry validates published data against its type's schema, every time."""

from __future__ import annotations

from datetime import UTC, datetime

import jsonschema
import pytest

from smartid_events.envelope import CloudEvent
from smartid_events.registry import Registry, load_all


def an_approval(data: dict[str, object]) -> CloudEvent:
    return CloudEvent(
        id="e-1",
        source="smartid/contract-svc",
        type="smartid.contract.Approved.v1",
        subject="0f6a5f5e-3f5e-4b8e-9d6e-8c1f2d3a4b5c",
        time=datetime(2026, 6, 1, tzinfo=UTC),
        data=data,
        position=1,
    )


def test_valid_data_passes_and_invalid_data_is_refused_even_after_a_valid_one() -> None:
    registry = load_all()
    contract_id = "0f6a5f5e-3f5e-4b8e-9d6e-8c1f2d3a4b5c"
    registry.validate(an_approval({"contract_id": contract_id, "start_date": "2026-07-01"}))
    with pytest.raises(jsonschema.ValidationError):
        registry.validate(an_approval({"contract_id": contract_id}))
    with pytest.raises(jsonschema.ValidationError):
        registry.validate(an_approval({"contract_id": contract_id, "start_date": 20260701}))


def test_an_unknown_type_is_not_validated_as_anything() -> None:
    with pytest.raises(LookupError):
        Registry().validate(an_approval({}))
