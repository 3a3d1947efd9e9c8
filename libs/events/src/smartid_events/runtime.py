"""How a service process settles after start-up: the garbage collector's part."""

from __future__ import annotations

import gc

# Container allocations between two young-generation collections (CPython's default: 700). A
# command allocates a few thousand objects, so the default ran a collection every few
# requests; at 50,000 the command path ran 4-8% faster in paired runs (docs/performance.md).
# Garbage in reference cycles waits longer for collection: a few MiB at most.
YOUNG_GENERATION_THRESHOLD = 50_000


def settle_after_startup() -> None:
    """Freeze what start-up built (it lives as long as the process; left in the generations,
    the collector's full passes set the command path's p99, ADR 0006) and collect the young
    generation less often."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
