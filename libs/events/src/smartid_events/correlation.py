"""Carrying a request's correlation id into the events it causes, and out to their NATS headers.

The id travels in the stored event's state under `_correlation_id`: the mapper stamps it from
the request's context when the event is saved in the request's thread, and the group
committer stamps it per command (its writer thread has no request context). eventsourcing
passes only declared parameters to aggregates' methods, so the extra attribute never reaches
the domain.
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import CanSnapshotAggregate
from eventsourcing.persistence import Mapper, StoredEvent

from smartid_events.logs import current_correlation_id

CORRELATION_ATTRIBUTE = "_correlation_id"

TID = TypeVar("TID", bound=UUID | str)


def correlation_of(event: Any) -> str | None:
    """The correlation id an event was recorded with, if any."""
    value = vars(event).get(CORRELATION_ATTRIBUTE)
    return value if isinstance(value, str) else None


def is_snapshot(event: Any) -> bool:
    return isinstance(event, CanSnapshotAggregate)


def stamp(event: Any, correlation_id: str | None) -> None:
    """Record `correlation_id` on a new event (never on snapshots, never overwriting)."""
    if correlation_id and not is_snapshot(event):
        event.__dict__.setdefault(CORRELATION_ATTRIBUTE, correlation_id)


class CorrelatingMapper(Mapper[TID]):
    """A mapper that stamps events saved inside a request with that request's correlation id."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        correlation_id = current_correlation_id()
        if (
            correlation_id
            and CORRELATION_ATTRIBUTE not in vars(domain_event)
            and not is_snapshot(domain_event)
        ):
            stamped = object.__new__(type(domain_event))
            object.__setattr__(
                stamped,
                "__dict__",
                {**vars(domain_event), CORRELATION_ATTRIBUTE: correlation_id},
            )
            domain_event = stamped
        return super().to_stored_event(domain_event)
