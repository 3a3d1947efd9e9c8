"""The CloudEvent envelope: its JSON, however it is built and encoded, is one JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from smartid_events.envelope import JSON_OPTIONS, CloudEvent
from smartid_events.log import LogPage, page_json

JST = timezone(timedelta(hours=9))
MOMENTS = [
    datetime(2026, 12, 2, 14, 16, 18, 123456, tzinfo=UTC),
    datetime(2026, 12, 2, 14, 16, 18, tzinfo=UTC),  # no microseconds: no fraction either way
    datetime(2026, 12, 2, 23, 16, 18, 5, tzinfo=JST),  # another zone: written in UTC
]


def an_event(time: datetime, correlation_id: str | None = "c-1") -> CloudEvent:
    return CloudEvent(
        id="e-1",
        source="smartid/contract-svc",
        type="smartid.contract.Approved.v1",
        subject="0b8f6a52-71f4-4c8e-a0a5-0c5cb6e2b1f7",
        time=time,
        data={"contract_id": "0b8f6a52-71f4-4c8e-a0a5-0c5cb6e2b1f7", "start_date": "2026-07-01"},
        position=7,
        correlation_id=correlation_id,
    )


@pytest.mark.parametrize("time", MOMENTS)
@pytest.mark.parametrize("correlation_id", ["c-1", None])
def test_every_encoding_writes_the_json_of_to_dict(
    time: datetime, correlation_id: str | None
) -> None:
    event = an_event(time, correlation_id)
    expected = orjson.dumps(event.to_dict())
    assert event.to_json() == expected
    assert orjson.dumps(event.json_ready(), option=JSON_OPTIONS) == expected
    assert event.wire()[1] == expected
    page = orjson.loads(page_json(LogPage([event], next_after=7)))
    assert page == {"events": [orjson.loads(expected)], "next_after": 7}


def test_the_moment_is_written_in_utc_with_a_z() -> None:
    assert an_event(MOMENTS[2]).to_dict()["time"] == "2026-12-02T14:16:18.000005Z"
    assert orjson.loads(an_event(MOMENTS[1]).to_json())["time"] == "2026-12-02T14:16:18Z"


def test_an_event_built_with_of_is_the_event_built_as_a_dataclass() -> None:
    event = an_event(MOMENTS[0])
    fast = CloudEvent.of(
        id=event.id,
        source=event.source,
        type=event.type,
        subject=event.subject,
        time=event.time,
        data=event.data,
        position=event.position,
        correlation_id=event.correlation_id,
    )
    assert fast == event
    assert fast.datacontenttype == "application/json"
    assert fast.to_json() == event.to_json()
    with pytest.raises(AttributeError):
        fast.position = 8  # type: ignore[misc]
