"""Reading one aggregate of a known type from an application."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

A = TypeVar("A")


def find(app: Application[UUID], aggregate_id: UUID, cls: type[A]) -> A | None:
    """The aggregate of type `cls` with this id; None when there is none, or it is another
    kind of aggregate (an id from a request must not reach, say, the service-wide one)."""
    try:
        aggregate: object = app.repository.get(aggregate_id)
    except AggregateNotFoundError:
        return None
    return aggregate if isinstance(aggregate, cls) else None
