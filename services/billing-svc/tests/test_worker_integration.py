"""The billing worker on a real nats-server and PostgreSQL: consumed once, through SIGKILLs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from billing_svc.application import Billing
from smartid_events.envelope import CloudEvent, event_type, stream_name
from smartid_events.relay import ensure_stream, stream_config
from smartid_events.store import event_store_env
from smartid_events.testing.plugin import NatsUnderTest

pytestmark = [pytest.mark.asyncio, pytest.mark.integration, pytest.mark.fault]

CONTRACTS = 200
EVENTS_PER_CONTRACT = 3  # Applied, Approved, IdCountChanged → Opened, ChargingStarted, …
DEADLINE_S = 90.0


def contract_events(contract_id: str, first_position: int) -> list[CloudEvent]:
    def event(name: str, offset: int, **data: Any) -> CloudEvent:
        return CloudEvent(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{contract_id}/{offset}")),
            source="smartid/contract-svc",
            type=event_type("contract", name, 1),
            subject=contract_id,
            time=datetime(2026, 5, 1, tzinfo=UTC),
            data={"contract_id": contract_id, **data},
            position=first_position + offset,
        )

    return [
        event(
            "Applied",
            0,
            tenant_id="tenant-a",
            terms_version="2026-04",
            plan={"monthly_fee_per_id": 1000, "id_count": 10},
            construction_fee=None,
        ),
        event("Approved", 1, start_date="2026-05-01"),
        event("IdCountChanged", 2, id_count=12, effective_date="2026-05-16"),
    ]


@pytest_asyncio.fixture
async def nc(nats: NatsUnderTest) -> AsyncIterator[NatsClient]:
    """A connection to the session's nats-server, its contract and billing streams emptied
    (and their durable consumers gone) so that each test starts from sequence 1."""
    client = await nats_connect(nats.url)
    js = client.jetstream()
    for service in ("contract", "billing"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream_name(service))
    yield client
    await client.close()


async def nats_connect(url: str) -> NatsClient:
    client: NatsClient = await nats.connect(url)
    return client


async def publish_contract_stream(nc: NatsClient, count: int) -> None:
    js = nc.jetstream()
    await ensure_stream(js, stream_config("contract"))
    for n in range(count):
        contract_id = str(uuid.UUID(int=n + 1))
        for event in contract_events(contract_id, n * EVENTS_PER_CONTRACT + 1):
            await js.publish(event.nats_subject, event.to_json(), headers=event.headers())


class Worker:
    """`python -m billing_svc.worker` as a child process of the test."""

    def __init__(self, database_url: str, nats_url: str, log: Path) -> None:
        self.env = {
            **os.environ,
            "BILLING_DATABASE_URL": database_url,
            "BILLING_NATS_URL": nats_url,
            "BILLING_LOG_LEVEL": "WARNING",
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "billing_svc.worker"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def signal(self, signum: int, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def worker(database_url: str, nats: NatsUnderTest, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(database_url, nats.url, tmp_path / "worker.log")
    yield w
    w.stop()


def count_by_topic(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('billing_events') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return {}
        rows = conn.execute("SELECT topic, count(*) FROM billing_events GROUP BY topic")
        return {str(topic).rsplit(".", 1)[-1]: int(n) for topic, n in rows}


def recorded_at_least(database_url: str, count: int) -> bool:
    return sum(count_by_topic(database_url).values()) >= count


async def wait_for(condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.05)  # polling with a deadline, not waiting for time to pass
    raise AssertionError(f"timed out waiting for {what}")


async def consumers_idle(nc: NatsClient) -> bool:
    js = nc.jetstream()
    for partition in range(16):
        info = await js.consumer_info(
            stream_name("contract"), f"billing-contract-events-p{partition:02d}"
        )
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def test_the_worker_records_every_contract_fact_once_through_sigkills(
    nc: NatsClient, worker: Worker, database_url: str
) -> None:
    total = CONTRACTS * EVENTS_PER_CONTRACT
    await publish_contract_stream(nc, CONTRACTS)
    worker.start()
    # Kill it while it is part-way through the stream, twice.
    for threshold in (CONTRACTS // 4, CONTRACTS):
        await wait_for(partial(recorded_at_least, database_url, threshold), "progress")
        assert worker.signal(signal.SIGKILL) == -signal.SIGKILL
        assert sum(count_by_topic(database_url).values()) < total, "killed after the end"
        worker.start()
    await wait_for(partial(recorded_at_least, database_url, total), "all facts")
    deadline = time.monotonic() + DEADLINE_S
    while not await consumers_idle(nc):
        assert time.monotonic() < deadline, "consumers still have messages pending"
        await asyncio.sleep(0.05)
    counts = count_by_topic(database_url)
    assert counts == {
        "Opened": CONTRACTS,
        "ChargingStarted": CONTRACTS,
        "IdCountRecorded": CONTRACTS,
    }
    assert worker.signal(signal.SIGTERM) == 0


async def test_invoices_issued_by_a_run_reach_the_billing_stream(
    nc: NatsClient, worker: Worker, database_url: str
) -> None:
    contracts = 20
    await publish_contract_stream(nc, contracts)
    worker.start()
    await wait_for(
        lambda: count_by_topic(database_url).get("IdCountRecorded", 0) == contracts, "facts"
    )
    billing = Billing(env=event_store_env(database_url))
    try:
        report = billing.run_billing("2026-05")
        assert report.issued == contracts
        # 16 days at 12 IDs from 05-16 on: the fact that arrived through the stream is billed.
        [invoice] = billing.invoices_of(str(uuid.UUID(int=1)))
        assert [line.kind.value for line in invoice.lines] == ["prorated_fee", "prorated_fee"]
    finally:
        billing.close()
    js = nc.jetstream()

    async def published() -> int:
        try:
            info = await js.stream_info(stream_name("billing"))
        except NotFoundError:
            return 0
        return int(info.state.messages or 0)

    deadline = time.monotonic() + DEADLINE_S
    while await published() < contracts:
        assert time.monotonic() < deadline, "the relay did not publish the invoices"
        await asyncio.sleep(0.05)
    last = await js.get_last_msg(stream_name("billing"), "smartid.billing.>")
    assert last.data is not None
    assert CloudEvent.from_json(last.data).type.startswith("smartid.billing.")
    assert worker.signal(signal.SIGTERM) == 0
