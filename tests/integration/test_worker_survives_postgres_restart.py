"""contract-svc's worker across a PostgreSQL crash: nothing lost, nothing doubled, read model whole.

Commands are written while the worker (relay, projection, scheduler) runs in its own process;
PostgreSQL is SIGKILLed and restarted mid-stream; more commands follow. Afterwards the
JetStream stream holds every published event exactly once, in order per contract, and the
read model has every contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from uuid import UUID

import httpx
import nats as nats_client
import psycopg
import pytest
from nats.js.errors import NotFoundError

from contract_svc.application import Contracts
from contract_svc.domain import Contractor, Plan
from contract_svc.projections import summaries
from contract_svc.published import publish_correlated
from smartid_events.devstack import free_port
from smartid_events.envelope import stream_name
from smartid_events.log import read_published, translator_from_application
from smartid_events.store import asyncpg_dsn, event_store_env
from smartid_events.testing.plugin import NatsUnderTest, PostgresUnderTest

BEFORE, AFTER = 60, 60
SETTLE_S = 90.0


def write_contracts(database_url: str, count: int, *, terms: bool) -> list[UUID]:
    contracts = Contracts(env=event_store_env(database_url))
    try:
        if terms:
            contracts.publish_terms("2026-04", "規約", date(2026, 4, 1))
        ids = []
        for i in range(count):
            contract = contracts.apply(
                tenant_id=f"tenant-{i % 7}",
                contractor=Contractor(name=f"会社{i}", address="東京", email=f"c{i}@x.example"),
                plan=Plan(300, 5),
                terms_version="2026-04",
                agreed_to_terms=True,
            )
            contracts.approve(contract.id, date(2026, 7, 1))
            ids.append(contract.id)
        return ids
    finally:
        contracts.close()


async def expected_ids(database_url: str) -> list[str]:
    import asyncpg

    contracts = Contracts(env=event_store_env(database_url))
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=1)
    try:
        translator = translator_from_application(contracts, publish_correlated)
        page = await read_published(pool, "contracts_events", translator, 0, 100_000)
        return [e.id for e in page.events]
    finally:
        await pool.close()
        contracts.close()


async def stream_contents(nats_url: str) -> list[tuple[str, str, int]]:
    """(event id, subject, position) of every message in SMARTID_CONTRACT, in stream order."""
    nc = await nats_client.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream_name("contract"))
        except NotFoundError:  # the relay has not created it yet
            return []
        found = []
        if not info.state.messages:  # created, nothing published yet: first_seq is 0, not 1
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream_name("contract"), seq)
            headers = msg.headers or {}
            found.append((headers["Nats-Msg-Id"], msg.subject, int(headers["Smartid-Position"])))
        return found
    finally:
        await nc.close()


async def delete_stream(nats_url: str) -> None:
    """The session's nats-server is shared: start from no contract stream at all."""
    nc = await nats_client.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream_name("contract"))
    finally:
        await nc.close()


def summaries_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {summaries.name}").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.integration
@pytest.mark.fault
def test_the_worker_rides_out_a_postgres_crash_and_loses_or_doubles_nothing(
    postgres: PostgresUnderTest, nats: NatsUnderTest, tmp_path: Path
) -> None:
    server = postgres.require_own()
    asyncio.run(delete_stream(nats.url))
    database_url = postgres.create_database("pgfault")
    env = {
        **os.environ,
        "CONTRACT_DATABASE_URL": database_url,
        "CONTRACT_NATS_URL": nats.url,
        "CONTRACT_LOG_LEVEL": "WARNING",
        "CONTRACT_WORKER_METRICS_PORT": str(metrics_port := free_port()),
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-c", "from contract_svc.worker import main; main()"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        first = write_contracts(database_url, BEFORE, terms=True)
        server.kill()  # a crash, not a clean shutdown
        server.start()
        second = write_contracts(database_url, AFTER, terms=False)
        expected = asyncio.run(expected_ids(database_url))
        deadline = time.monotonic() + SETTLE_S
        while True:
            published = asyncio.run(stream_contents(nats.url))
            settled = len(published) >= len(expected) and summaries_count(database_url) == (
                BEFORE + AFTER
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert worker.poll() is None, (
            "the worker died:\n" + (tmp_path / "worker.log").read_text()[-4000:]
        )
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/", timeout=5).text
        assert 'smartid_relay_lag{service="contract"} 0.0' in metrics
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()

    counts = Counter(event_id for event_id, _, _ in published)
    lost = set(expected) - set(counts)
    doubled = [event_id for event_id, n in counts.items() if n > 1]
    print(f"\nPostgreSQL crash: {len(expected)} events, lost {len(lost)}, doubled {len(doubled)}")
    assert not lost and not doubled, (tmp_path / "worker.log").read_text()[-3000:]
    by_contract: dict[str, list[int]] = {}
    for _, subject, position in published:
        by_contract.setdefault(subject.split(".")[3], []).append(position)
    assert all(p == sorted(p) for p in by_contract.values())
    assert {str(i) for i in first + second} <= set(by_contract)
    assert summaries_count(database_url) == BEFORE + AFTER
