"""Keeping a worker's long-running loops alive: a failed loop is logged and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Loop = Callable[[asyncio.Event], Awaitable[None]]


async def supervise(
    name: str,
    loop: Loop,
    stop: asyncio.Event,
    *,
    initial_delay_s: float = 0.5,
    max_delay_s: float = 10.0,
) -> None:
    """Run `loop(stop)` until `stop` is set, restarting it with back-off whenever it fails.

    A relay or consumer that loses its PostgreSQL (a restart, a fail-over) raises; the process
    must not die with it, or one database restart would take every worker down for good.
    """
    delay = initial_delay_s
    while not stop.is_set():
        try:
            await loop(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s failed; restarting in %.1f s", name, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, max_delay_s)
        else:
            if not stop.is_set():
                logger.warning("%s returned before being stopped; restarting", name)
            delay = initial_delay_s
