"""The wire form of every published event: a CloudEvents 1.0 JSON document on a JetStream subject.

Subject: `smartid.<service>.p<NN>.<contract_id>.<EventType>`; service-wide events use
`_service` for the contract id. The partition token `pNN` is derived from the contract id alone,
so every event of one contract lands in one partition and consumers that own partitions keep
each contract's order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

PARTITIONS = 16
SERVICE_WIDE = "_service"
SPEC_VERSION = "1.0"

# NATS header names we set on every message besides Nats-Msg-Id.
HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_CORRELATION_ID = "Smartid-Correlation-Id"
HEADER_POSITION = "Smartid-Position"
HEADER_TYPE = "Ce-Type"


def stream_name(service: str) -> str:
    """`contract` → `SMARTID_CONTRACT`: one stream per service."""
    return f"SMARTID_{service.upper().replace('-', '_')}"


def partition_of(contract_id: str, partitions: int = PARTITIONS) -> int:
    """Stable partition of a contract id (CRC-32, not Python's randomised hash)."""
    if contract_id == SERVICE_WIDE:
        return 0
    return zlib.crc32(contract_id.encode()) % partitions


def partition_token(partition: int) -> str:
    return f"p{partition:02d}"


def subject_for(service: str, contract_id: str, event_name: str) -> str:
    token = partition_token(partition_of(contract_id))
    return f"smartid.{service}.{token}.{contract_id}.{event_name}"


def subjects_of_service(service: str) -> str:
    return f"smartid.{service}.>"


def subjects_of_partition(service: str, partition: int) -> str:
    return f"smartid.{service}.{partition_token(partition)}.>"


def subjects_of_contract(service: str, contract_id: str) -> str:
    token = partition_token(partition_of(contract_id))
    return f"smartid.{service}.{token}.{contract_id}.>"


def event_type(service: str, name: str, version: int) -> str:
    """`smartid.contract.Approved.v1`."""
    return f"smartid.{service}.{name}.v{version}"


@lru_cache(maxsize=4096)
def parse_event_type(type_: str) -> tuple[str, str, int]:
    """`smartid.contract.Approved.v1` → (`contract`, `Approved`, 1)."""
    prefix, service, name, version = type_.split(".")
    if prefix != "smartid" or not version.startswith("v"):
        raise ValueError(f"not a SmartID event type: {type_!r}")
    return service, name, int(version[1:])


# `orjson.dumps` options for `CloudEvent.json_ready()`: a UTC moment ends in `Z`, as in `to_dict`.
JSON_OPTIONS = orjson.OPT_UTC_Z


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


@dataclass(frozen=True)
class CloudEvent:
    """One published event. `position` is its notification id in the producer's own log."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: dict[str, Any]
    position: int
    correlation_id: str | None = None
    datacontenttype: str = field(default="application/json")

    @property
    def service(self) -> str:
        return parse_event_type(self.type)[0]

    @property
    def name(self) -> str:
        return parse_event_type(self.type)[1]

    @property
    def version(self) -> int:
        return parse_event_type(self.type)[2]

    @property
    def contract_id(self) -> str:
        return self.subject

    @property
    def nats_subject(self) -> str:
        return subject_for(self.service, self.subject, self.name)

    def to_dict(self) -> dict[str, Any]:
        return self._body(_utc(self.time).isoformat().replace("+00:00", "Z"))

    def json_ready(self) -> dict[str, Any]:
        """`to_dict` with `time` left a UTC datetime: `orjson.dumps(_, option=JSON_OPTIONS)`
        writes the same JSON without formatting the moment in Python (~1 µs an event)."""
        return self._body(_utc(self.time))

    def _body(self, time: str | datetime) -> dict[str, Any]:
        body: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": time,
            "datacontenttype": self.datacontenttype,
            "data": self.data,
            "position": self.position,
        }
        if self.correlation_id is not None:
            body["correlationid"] = self.correlation_id
        return body

    def to_json(self) -> bytes:
        return orjson.dumps(self.json_ready(), option=JSON_OPTIONS)

    def wire(self) -> tuple[str, bytes, dict[str, str]]:
        """(NATS subject, body, headers) as the relay publishes them, in one pass.

        The same bytes, subject and headers as `to_json`, `nats_subject` and `headers()`,
        with the type parsed once (cached).
        """
        service, name, _ = parse_event_type(self.type)
        subject = subject_for(service, self.subject, name)
        return subject, self.to_json(), self.headers()

    def headers(self) -> dict[str, str]:
        headers = {
            HEADER_MSG_ID: self.id,
            HEADER_POSITION: str(self.position),
            HEADER_TYPE: self.type,
        }
        if self.correlation_id is not None:
            headers[HEADER_CORRELATION_ID] = self.correlation_id
        return headers

    @classmethod
    def of(
        cls,
        id: str,
        source: str,
        type: str,
        subject: str,
        time: datetime,
        data: dict[str, Any],
        position: int,
        correlation_id: str | None = None,
    ) -> CloudEvent:
        """`CloudEvent(...)` without the frozen dataclass's `object.__setattr__` per field: the
        relay and `GET /v1/events` build one per log row."""
        event = object.__new__(cls)
        event.__dict__.update(
            id=id,
            source=source,
            type=type,
            subject=subject,
            time=time,
            data=data,
            position=position,
            correlation_id=correlation_id,
            datacontenttype="application/json",
        )
        return event

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CloudEvent:
        if body.get("specversion") != SPEC_VERSION:
            raise ValueError(f"unsupported CloudEvents specversion: {body.get('specversion')!r}")
        return cls(
            id=str(body["id"]),
            source=str(body["source"]),
            type=str(body["type"]),
            subject=str(body["subject"]),
            time=datetime.fromisoformat(str(body["time"]).replace("Z", "+00:00")),
            data=dict(body["data"]),
            position=int(body["position"]),
            correlation_id=body.get("correlationid"),
            datacontenttype=str(body.get("datacontenttype", "application/json")),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> CloudEvent:
        return cls.from_dict(orjson.loads(raw))
