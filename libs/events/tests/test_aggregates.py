"""find(): the aggregate of the asked type, or None."""

from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from smartid_events.aggregates import find


class Dog(Aggregate):
    pass


class Cat(Aggregate):
    pass


def test_find_gives_the_aggregate_of_its_type_and_none_otherwise() -> None:
    app = Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    dog = Dog()
    app.save(dog)
    found = find(app, dog.id, Dog)
    assert found is not None and found.id == dog.id
    assert find(app, dog.id, Cat) is None  # another kind of aggregate
    assert find(app, uuid4(), Dog) is None  # none at all
