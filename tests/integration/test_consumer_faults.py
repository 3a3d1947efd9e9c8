"""The consumer under faults: killed between its commit and its ack, and between its effect and
its commit; every effect is still applied exactly once, in each contract's order.

Run as a script, this file is the consumer process the test kills:
`python test_consumer_faults.py <service> <database_url> <nats_url> <crash point> <n>`
SIGKILLs itself at the crash point (`after_effect`, `after_commit` or `none`) of its n-th event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats as nats_client
import pytest

from smartid_events.consumer import AFTER_COMMIT, Consumer
from smartid_events.envelope import PARTITIONS, CloudEvent, event_type, stream_name
from smartid_events.parked import ParkedStore
from smartid_events.registry import Registry
from smartid_events.relay import ensure_stream, stream_config
from smartid_events.store import asyncpg_dsn
from smartid_events.testing.plugin import NatsUnderTest
from smartid_events.tracking import SqlTracker

EVENTS = 120
CONTRACTS = 6
AFTER_EFFECT = "after_effect"


def consumer_name(service: str) -> str:
    return f"{service}-faults"


async def record(event: CloudEvent, conn: Any) -> None:
    await conn.execute(
        "INSERT INTO effects (event_id, contract_id, position) VALUES ($1, $2, $3)",
        event.id,
        event.contract_id,
        event.position,
    )


async def consume(service: str, database_url: str, nats_url: str, point: str, n: int) -> None:
    reached = {AFTER_EFFECT: 0, AFTER_COMMIT: 0}

    def crash_at(where: str) -> None:
        reached[where] += 1
        if where == point and reached[where] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=4)
    tracker = SqlTracker(pool, after_effect=lambda: crash_at(AFTER_EFFECT))
    await tracker.setup()
    consumer: Consumer[Any] = Consumer(
        name=consumer_name(service),
        upstream=service,
        partitions=range(PARTITIONS),
        handler=record,
        tracker=tracker,
        parked=ParkedStore(pool),
        nats_url=nats_url,
        registry=Registry(),
        fetch_timeout_s=0.2,
        crash_hook=crash_at,
    )
    await consumer.run()


def start_consumer(
    service: str, database_url: str, nats_url: str, point: str, n: int
) -> subprocess.Popen[bytes]:
    script = str(Path(__file__).resolve())
    return subprocess.Popen(
        [sys.executable, script, service, database_url, nats_url, point, str(n)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def publish(nats_url: str, service: str) -> list[CloudEvent]:
    contracts = [str(uuid.uuid4()) for _ in range(CONTRACTS)]
    events = [
        CloudEvent(
            id=str(uuid.uuid4()),
            source=f"/{service}",
            type=event_type(service, "Counted", 1),
            subject=contracts[i % CONTRACTS],
            time=datetime.now(UTC),
            data={"n": i},
            position=i + 1,
        )
        for i in range(EVENTS)
    ]
    nc = await nats_client.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream_config(service))
        for e in events:
            await js.publish(e.nats_subject, e.to_json(), headers=e.headers())
    finally:
        await nc.close()
    return events


async def all_acked(nats_url: str, service: str) -> bool:
    nc = await nats_client.connect(nats_url)
    try:
        js, delivered = nc.jetstream(), 0
        for p in range(PARTITIONS):
            durable = f"{consumer_name(service)}-p{p:02d}"
            try:
                info = await js.consumer_info(stream_name(service), durable)
            except nats_client.js.errors.NotFoundError:
                continue
            if info.num_pending or info.num_ack_pending:
                return False
            delivered += int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        return delivered > 0
    finally:
        await nc.close()


async def effects(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM effects"))


def died(process: subprocess.Popen[bytes], within: float) -> bool:
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        return False
    return process.returncode == -signal.SIGKILL


@pytest.mark.integration
@pytest.mark.fault
@pytest.mark.asyncio
async def test_every_effect_is_applied_once_though_the_consumer_crashes_mid_message(
    nats: NatsUnderTest, database_url: str
) -> None:
    service = f"cfaults{uuid.uuid4().hex[:6]}"
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=2)
    await pool.execute(
        "CREATE TABLE effects (seq bigserial, event_id text, contract_id text, position bigint)"
    )
    events = await publish(nats.url, service)
    running: list[subprocess.Popen[bytes]] = []
    try:
        running.append(start_consumer(service, database_url, nats.url, AFTER_COMMIT, 7))
        assert await asyncio.to_thread(died, running[-1], 30), "no crash after the 7th commit"
        # Other partitions may have committed meanwhile; the 7th committed and was never acked.
        after_first = await effects(pool)
        assert after_first >= 7

        running.append(start_consumer(service, database_url, nats.url, AFTER_EFFECT, 5))
        assert await asyncio.to_thread(died, running[-1], 30), "no crash after the 5th effect"
        assert await effects(pool) >= after_first + 4  # the 5th effect rolled back

        running.append(start_consumer(service, database_url, nats.url, "none", 0))
        deadline = time.monotonic() + 60
        while not (await effects(pool) >= EVENTS and await all_acked(nats.url, service)):
            assert time.monotonic() < deadline, f"only {await effects(pool)} effects"
            assert running[-1].poll() is None, "the consumer died"
            await asyncio.sleep(0.05)
        rows = await pool.fetch("SELECT event_id, contract_id, position FROM effects ORDER BY seq")
    finally:
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
        await pool.close()
    applied = [r["event_id"] for r in rows]
    duplicated = len(applied) - len(set(applied))
    lost = len({e.id for e in events} - set(applied))
    print(f"events {EVENTS}, effects {len(applied)}, lost {lost}, duplicated {duplicated}")
    assert (lost, duplicated) == (0, 0)
    for contract_id in {e.subject for e in events}:
        positions = [r["position"] for r in rows if r["contract_id"] == contract_id]
        assert positions == sorted(positions)


if __name__ == "__main__":
    service_, url_, nats_url_, point_, n_ = sys.argv[1:6]
    asyncio.run(consume(service_, url_, nats_url_, point_, int(n_)))
