"""A supervised loop that fails is restarted; one that is stopped ends."""

import asyncio

import pytest

from smartid_events.supervise import supervise


@pytest.mark.asyncio
async def test_a_failing_loop_is_restarted_until_it_succeeds() -> None:
    stop = asyncio.Event()
    attempts: list[int] = []

    async def flaky(stop: asyncio.Event) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("database restarting")
        stop.set()

    await asyncio.wait_for(supervise("flaky", flaky, stop, initial_delay_s=0.01), 5)
    assert len(attempts) == 3


@pytest.mark.asyncio
async def test_a_stopped_loop_is_not_restarted() -> None:
    stop = asyncio.Event()
    runs: list[int] = []

    async def once(stop: asyncio.Event) -> None:
        runs.append(1)
        stop.set()

    await asyncio.wait_for(supervise("once", once, stop), 5)
    assert runs == [1]
