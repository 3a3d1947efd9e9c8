"""An event-sourced consumer records its new events and its position together, once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from plumbing_kit import an_event

from smartid_events.envelope import CloudEvent
from smartid_events.store import event_store_env
from smartid_events.tracking import EventSourcedTracker, ProcessContext, process_recorder_env

pytestmark = pytest.mark.asyncio


class Tally(Aggregate):
    @event("Counted")
    def __init__(self, source_event_id: str) -> None:
        self.source_event_id = source_event_id


class Tallies(Application[uuid.UUID]):
    name = "Tallies"


@pytest.fixture
def tallies(database_url: str) -> Iterator[Tallies]:
    app = Tallies(env=process_recorder_env(event_store_env(database_url)))
    yield app
    app.close()


async def count(event: CloudEvent, ctx: ProcessContext) -> None:
    await ctx.save(Tally(source_event_id=event.id))


def tallies_recorded(app: Tallies) -> int:
    return len(app.recorder.select_notifications(start=None, limit=1000))


async def test_an_event_handled_before_is_not_handled_again(tallies: Tallies) -> None:
    tracker = EventSourcedTracker(tallies)
    credited = an_event("upstream", "c1", "Credited", 7, {"amount": 1})
    assert await tracker.apply("tallies:p00", 7, credited, count) is True
    assert await tracker.apply("tallies:p00", 7, credited, count) is False
    assert tallies_recorded(tallies) == 1


async def test_a_handler_that_saves_nothing_still_moves_the_position(tallies: Tallies) -> None:
    tracker = EventSourcedTracker(tallies)

    async def ignore(_event: CloudEvent, _ctx: Any) -> None:
        return None

    credited = an_event("upstream", "c1", "Credited", 3, {"amount": 1})
    assert await tracker.apply("tallies:p00", 3, credited, ignore) is True
    assert await tracker.apply("tallies:p00", 3, credited, count) is False
    assert tallies_recorded(tallies) == 0
