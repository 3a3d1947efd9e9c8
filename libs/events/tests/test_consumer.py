"""Consumers apply each event once, keep each contract's order, and park what they cannot handle."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import nats as nats_client
import pytest
import pytest_asyncio
from plumbing_kit import an_event, publish_events

from smartid_events.consumer import Consumer
from smartid_events.envelope import PARTITIONS, CloudEvent, stream_name
from smartid_events.parked import ParkedStore
from smartid_events.registry import EventSpec, Registry
from smartid_events.store import asyncpg_dsn
from smartid_events.testing.plugin import NatsUnderTest
from smartid_events.tracking import SqlTracker

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CREDITED_V1 = {
    "type": "object",
    "required": ["amount"],
    "properties": {"amount": {"type": "integer"}},
}
CREDITED_V2 = {
    "type": "object",
    "required": ["amount", "currency"],
    "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
}


def a_registry(service: str, *, with_v2: bool = False) -> Registry:
    registry = Registry()
    registry.register(EventSpec(service, "Credited", 1, CREDITED_V1, "money came in"))
    if with_v2:
        registry.register(
            EventSpec(
                service,
                "Credited",
                2,
                CREDITED_V2,
                "money came in, in a currency",
                upcast=lambda data: {**data, "currency": "JPY"},
            )
        )
    return registry


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=4)
    await pool.execute(
        # `applied` numbers the effects in the order they were applied: one contract's are
        # applied one after another. Physical order (ctid) is not that under concurrent inserts.
        "CREATE TABLE effects (contract_id text, position bigint, amount int, currency text,"
        " applied bigserial)"
    )
    yield pool
    await pool.close()


async def record_effect(event: CloudEvent, conn: Any) -> None:
    await conn.execute(
        "INSERT INTO effects VALUES ($1, $2, $3, $4)",
        event.contract_id,
        event.position,
        event.data.get("amount"),
        event.data.get("currency"),
    )


def a_consumer(
    service: str, pool: asyncpg.Pool, nats_url: str, registry: Registry, handler: Any = None
) -> Consumer[Any]:
    return Consumer(
        name=f"{service}-test",
        upstream=service,
        partitions=range(PARTITIONS),
        handler=handler or record_effect,
        tracker=SqlTracker(pool),
        parked=ParkedStore(pool),
        nats_url=nats_url,
        registry=registry,
        retry_delays_s=(0.01,),
        max_attempts=3,
        fetch_timeout_s=0.2,
    )


async def run_until(consumer: Consumer[Any], done: Any, within: float = 20.0) -> None:
    """Run the consumer until `done()` holds (polled with a deadline)."""
    await consumer.tracker.setup()  # type: ignore[attr-defined]
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    deadline = time.monotonic() + within
    try:
        while not await done():
            assert time.monotonic() < deadline, "consumer did not get there in time"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


def rows(pool: asyncpg.Pool, n: int) -> Any:
    async def done() -> bool:
        return int(await pool.fetchval("SELECT count(*) FROM effects")) >= n

    return done


async def test_a_redelivered_stream_changes_nothing(
    service: str, pool: asyncpg.Pool, nats: NatsUnderTest
) -> None:
    contracts = [str(uuid.uuid4()) for _ in range(4)]
    events = [
        an_event(service, contracts[i % 4], "Credited", i + 1, {"amount": i}) for i in range(20)
    ]
    await publish_events(nats.url, service, events)
    consumer = a_consumer(service, pool, nats.url, a_registry(service))
    await run_until(consumer, rows(pool, 20))
    # Forget every durable consumer: the whole stream is delivered again.
    nc = await nats_client.connect(nats.url)
    js = nc.jetstream()
    for p in range(PARTITIONS):
        await js.delete_consumer(stream_name(service), consumer.durable_name(p))

    async def all_redelivered_and_acked() -> bool:
        delivered = 0
        for p in range(PARTITIONS):
            try:
                info = await js.consumer_info(stream_name(service), consumer.durable_name(p))
            except nats_client.js.errors.NotFoundError:
                return False
            if info.num_pending or info.num_ack_pending:
                return False
            delivered += (info.delivered.stream_seq and info.delivered.consumer_seq) or 0
        return delivered >= 20

    try:
        await run_until(consumer, all_redelivered_and_acked)
    finally:
        await nc.close()
    counts = await pool.fetch("SELECT position, count(*) AS n FROM effects GROUP BY position")
    assert len(counts) == 20 and all(r["n"] == 1 for r in counts)


async def test_each_contracts_events_are_applied_in_order(
    service: str, pool: asyncpg.Pool, nats: NatsUnderTest
) -> None:
    contracts = [str(uuid.uuid4()) for _ in range(3)]
    events = [
        an_event(service, contracts[i % 3], "Credited", i + 1, {"amount": i}) for i in range(30)
    ]
    await publish_events(nats.url, service, events)
    await run_until(a_consumer(service, pool, nats.url, a_registry(service)), rows(pool, 30))
    for contract_id in contracts:
        applied = await pool.fetch(
            "SELECT position FROM effects WHERE contract_id = $1 ORDER BY applied", contract_id
        )
        positions = [r["position"] for r in applied]
        assert positions == sorted(positions) and len(positions) == 10


async def test_a_handler_that_fails_twice_is_retried_and_not_parked(
    service: str, pool: asyncpg.Pool, nats: NatsUnderTest
) -> None:
    failures = {"left": 2}

    async def flaky(event: CloudEvent, conn: Any) -> None:
        await record_effect(event, conn)
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("downstream not ready")

    await publish_events(nats.url, service, [an_event(service, "c1", "Credited", 1, {"amount": 5})])
    consumer = a_consumer(service, pool, nats.url, a_registry(service), flaky)
    await run_until(consumer, rows(pool, 1))
    assert await pool.fetchval("SELECT count(*) FROM effects") == 1
    assert await consumer.parked.count(consumer.name) == 0


async def test_an_event_stored_in_an_older_version_reaches_the_handler_upcast(
    service: str, pool: asyncpg.Pool, nats: NatsUnderTest
) -> None:
    await publish_events(nats.url, service, [an_event(service, "c1", "Credited", 1, {"amount": 7})])
    consumer = a_consumer(service, pool, nats.url, a_registry(service, with_v2=True))
    await run_until(consumer, rows(pool, 1))
    row = await pool.fetchrow("SELECT amount, currency FROM effects")
    assert (row["amount"], row["currency"]) == (7, "JPY")


async def test_a_poison_message_parks_its_contract_until_replayed_after_a_fix(
    service: str, pool: asyncpg.Pool, nats: NatsUnderTest
) -> None:
    poisoned, healthy = "contract-a", "contract-b"
    v2 = {"amount": 2, "currency": "USD"}
    events = [
        an_event(service, poisoned, "Credited", 1, {"amount": 1}),
        an_event(service, healthy, "Credited", 2, {"amount": 10}),
        # A version this consumer does not know yet: it cannot decode it.
        an_event(service, poisoned, "Credited", 3, v2, version=2),
        an_event(service, healthy, "Credited", 4, {"amount": 11}),
        an_event(service, poisoned, "Credited", 5, {"amount": 3}),
        an_event(service, healthy, "Credited", 6, {"amount": 12}),
    ]
    await publish_events(nats.url, service, events)
    consumer = a_consumer(service, pool, nats.url, a_registry(service))

    async def two_parked_and_healthy_done() -> bool:
        healthy_done = await pool.fetchval(
            "SELECT count(*) FROM effects WHERE contract_id = $1", healthy
        )
        return healthy_done == 3 and await consumer.parked.count(consumer.name) == 2

    await run_until(consumer, two_parked_and_healthy_done)
    parked = await consumer.parked.all(consumer.name)
    assert [(p.contract_id, p.stream_seq) for p in parked] == [(poisoned, 3), (poisoned, 5)]
    assert "unknown version" in parked[0].reason
    assert "held behind" in parked[1].reason

    consumer.registry = a_registry(service, with_v2=True)  # the fix: v2 is now known
    result = await consumer.replay_parked()
    assert (result.replayed, result.still_parked) == (2, 0)
    applied = await pool.fetch(
        "SELECT position, currency FROM effects WHERE contract_id = $1 ORDER BY applied", poisoned
    )
    assert [(r["position"], r["currency"]) for r in applied] == [
        (1, None),
        (3, "USD"),
        (5, "JPY"),
    ]
