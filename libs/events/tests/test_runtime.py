"""After start-up a service freezes what it built and collects young objects less often."""

import gc
from collections.abc import Iterator

import pytest

from smartid_events.runtime import YOUNG_GENERATION_THRESHOLD, settle_after_startup


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_start_up_objects_are_frozen_and_the_young_generation_is_collected_less_often() -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    built_at_start_up = [object() for _ in range(10)]
    settle_after_startup()
    assert gc.get_freeze_count() > len(built_at_start_up)
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, middle, old)
