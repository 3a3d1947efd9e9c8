"""How dates, enums and value objects are written into stored events and snapshots."""

from __future__ import annotations

import dataclasses
from datetime import date
from enum import StrEnum
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from contract_svc.domain import (
    Construction,
    Contractor,
    Status,
    Suspension,
    Termination,
    User,
)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def enum_transcoding(enum: type[StrEnum]) -> Transcoding:
    class EnumAsValue(Transcoding):
        type = enum
        name = enum.__name__

        def encode(self, obj: StrEnum) -> str:
            return obj.value

        def decode(self, data: str) -> StrEnum:
            return enum(data)

    return EnumAsValue()


def dataclass_transcoding(cls: type[Any]) -> Transcoding:
    class DataclassAsDict(Transcoding):
        type = cls
        name = cls.__name__

        def encode(self, obj: Any) -> dict[str, Any]:
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}

        def decode(self, data: dict[str, Any]) -> Any:
            return cls(**data)

    return DataclassAsDict()


def register_transcodings(transcoder: JSONTranscoder) -> None:
    transcoder.register(DateAsISO())
    for enum in (Status, Construction):
        transcoder.register(enum_transcoding(enum))
    for cls in (Contractor, User, Suspension, Termination):
        transcoder.register(dataclass_transcoding(cls))
