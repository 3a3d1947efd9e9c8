"""The checked-in JSON Schemas and AsyncAPI document are what the registry says."""

from __future__ import annotations

import json
from pathlib import Path

from smartid_events.asyncapi import build_asyncapi
from smartid_events.registry import EventSpec, Registry, load_all
from smartid_events.schemas_export import drift, export

APPROVED = {"type": "object", "properties": {"start_date": {"type": "string"}}}


def a_registry() -> Registry:
    registry = Registry()
    registry.register(EventSpec("contract", "Approved", 1, APPROVED, "approved (Art. 4)"))
    return registry


def test_checked_in_schemas_and_asyncapi_match_the_registry() -> None:
    stale = drift(load_all())
    assert stale == [], f"run `smartid schemas export`: out of date {stale}"


def test_a_changed_schema_is_reported_as_drift_until_exported(tmp_path: Path) -> None:
    registry = a_registry()
    export(registry, tmp_path)
    changed = Registry()
    changed.register(
        EventSpec("contract", "Approved", 1, {**APPROVED, "required": ["start_date"]}, "approved")
    )
    assert drift(changed, tmp_path) == [
        "asyncapi.json",
        "schemas/smartid.contract.Approved.v1.json",
    ]
    export(changed, tmp_path)
    assert drift(changed, tmp_path) == []


def test_a_schema_no_longer_registered_is_removed_on_export(tmp_path: Path) -> None:
    export(a_registry(), tmp_path)
    export(Registry(), tmp_path)
    assert list((tmp_path / "schemas").iterdir()) == []


def test_asyncapi_names_each_event_on_its_channel_and_subject() -> None:
    document = build_asyncapi(a_registry())
    channel = document["channels"]["contract.Approved"]
    assert document["asyncapi"].startswith("3.")
    assert channel["address"] == "smartid.contract.{partition}.{contract_id}.Approved"
    assert "contract.Approved.v1" in channel["messages"]
    schema = document["components"]["schemas"]["contract.Approved.v1"]
    assert schema["properties"] == APPROVED["properties"]
    json.dumps(document)  # serialisable as it is checked in
