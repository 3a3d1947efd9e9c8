"""The registry of published event types: one JSON Schema per type and version, and upcasters.

Producers' schema modules (`smartid_events.contract`, `smartid_events.billing`, …) register
their specs at import; `load_all()` imports every one of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from smartid_events.envelope import CloudEvent, event_type, parse_event_type

# Modules that register published events; a new producer adds its module here.
PRODUCER_MODULES = ("smartid_events.contract", "smartid_events.billing")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EventSpec:
    """One published event type at one version.

    `schema` is the JSON Schema of the CloudEvent's `data`; `upcast` turns the previous
    version's data into this version's (None for version 1).
    """

    service: str
    name: str
    version: int
    schema: dict[str, Any]
    description: str
    upcast: Upcaster | None = field(default=None, compare=False)

    @property
    def type(self) -> str:
        return event_type(self.service, self.name, self.version)

    def full_schema(self) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://schemas.smartid.secom.example/{self.type}.json",
            "title": self.type,
            "description": self.description,
            **self.schema,
        }


class UnknownEventTypeError(LookupError):
    pass


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, EventSpec] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def register(self, spec: EventSpec) -> EventSpec:
        existing = self._specs.get(spec.type)
        if existing is not None and existing != spec:
            raise ValueError(f"{spec.type} is registered twice with different schemas")
        if spec.version > 1 and spec.upcast is None:
            raise ValueError(f"{spec.type} needs an upcaster from v{spec.version - 1}")
        self._specs[spec.type] = spec
        self._validators.pop(spec.type, None)
        return spec

    def get(self, type_: str) -> EventSpec:
        try:
            return self._specs[type_]
        except KeyError:
            raise UnknownEventTypeError(type_) from None

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.service, s.name, s.version)))

    def knows(self, service: str, name: str) -> bool:
        """Whether any version of the event is registered."""
        return any(s.service == service and s.name == name for s in self._specs.values())

    def latest(self, service: str, name: str) -> EventSpec:
        versions = [s for s in self._specs.values() if s.service == service and s.name == name]
        if not versions:
            raise UnknownEventTypeError(f"{service}.{name}")
        return max(versions, key=lambda s: s.version)

    def validate(self, event: CloudEvent) -> None:
        """Raise `jsonschema.ValidationError` unless the event's data fits its type's schema."""
        self.validator(event.type).validate(event.data)

    def validator(self, type_: str) -> jsonschema.protocols.Validator:
        """A compiled validator per type: `jsonschema.validate` re-checks the schema itself and
        builds a new validator on every call, which dominated a consumer's CPU."""
        validator = self._validators.get(type_)
        if validator is None:
            schema = self.get(type_).full_schema()
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = self._validators[type_] = cls(schema)
        return validator

    def upcast(self, type_: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Bring data of `type_` up to the latest registered version of that event."""
        service, name, version = parse_event_type(type_)
        self.get(type_)  # a version newer than we know cannot be read as the latest
        latest = self.latest(service, name)
        while version < latest.version:
            version += 1
            step = self.get(event_type(service, name, version))
            assert step.upcast is not None
            data = step.upcast(data)
        return latest.type, data


REGISTRY = Registry()


def load_all() -> Registry:
    for module in PRODUCER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    return REGISTRY
