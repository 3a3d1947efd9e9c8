"""The relay: contract-svc's log to JetStream, default fsync and `sync_interval: always`, and
how fast the lag drains after a burst."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import date
from typing import Any

import asyncpg
import nats
from nats.js.errors import NotFoundError

from bench.harness import Context, Figure, benchmark
from contract_svc.application import Contracts
from contract_svc.domain import Contract, Contractor, Plan
from contract_svc.keys import InMemoryKeyStore
from contract_svc.published import publish_correlated
from smartid_events.envelope import stream_name
from smartid_events.log import events_table, log_head, translator_from_application
from smartid_events.relay import Relay, RelaySettings
from smartid_events.store import asyncpg_dsn, event_store_env
from smartid_events.tracking import ensure_positions_table

TERMS = "2026-04"
EVENTS_PER_CONTRACT = 10  # applied, approved, 8 ID count changes: a busy contract's first year
SAVE_EVENTS = 2_000


def contracts_app(url: str) -> Contracts:
    """contract-svc's application on its PostgreSQL; keys in memory, so the benchmarks measure
    the log and the bus rather than the per-contract key store (bench/contract.py measures it)."""
    return Contracts(env=event_store_env(url), key_store=InMemoryKeyStore())


def new_contract(n: int, events: int = EVENTS_PER_CONTRACT) -> Contract:
    contract = Contract.apply(
        tenant_id=f"bench-tenant-{n % 500}",
        contractor=Contractor(
            name=f"株式会社ベンチ{n}",
            address="東京都千代田区丸の内1-1-1",
            email="a@bench.example.jp",
        ),
        plan=Plan(300, 3),
        construction_fee=None,
        terms_version=TERMS,
        agreed_to_terms=True,
        published_terms={TERMS},
    )
    if events > 1:
        contract.approve(date(2026, 4, 1))
    for i in range(events - 2):
        contract.change_id_count(3 + i % 5, date(2026, 5, 1))
    return contract


def seed(contracts: Contracts, events: int, start: int = 0) -> int:
    """Record `events` contract events (bulk saves of ~2,000); returns the contracts made."""
    made = 0
    pending: list[Contract] = []
    recorded = 0
    while recorded < events:
        size = min(EVENTS_PER_CONTRACT, events - recorded)
        pending.append(new_contract(start + made, size))
        made += 1
        recorded += size
        if len(pending) * EVENTS_PER_CONTRACT >= SAVE_EVENTS:
            contracts.save(*pending)
            pending = []
    if pending:
        contracts.save(*pending)
    return made


def relay_settings(url: str, nats_url: str, contracts: Contracts, **options: Any) -> RelaySettings:
    return RelaySettings(
        service="contract",
        database_url=url,
        nats_url=nats_url,
        table=events_table(Contracts.name),
        translator=translator_from_application(contracts, publish_correlated),
        **options,
    )


async def _fresh_stream(url: str, nats_url: str) -> None:
    """No position and no stream: the relay would otherwise resume after an earlier run's."""
    nc = await nats.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream_name("contract"))
    finally:
        await nc.close()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await ensure_positions_table(conn)
        await conn.execute("DELETE FROM smartid_positions")
    finally:
        await conn.close()


async def _catch_up_rate(settings: RelaySettings, events: int) -> dict[str, Any]:
    """Publish the whole log to a fresh stream; events/s from the first read to the last ack."""
    await _fresh_stream(settings.database_url, settings.nats_url)
    t0, cpu0 = time.perf_counter(), time.process_time()
    head = await Relay(settings).catch_up()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "events": events,
        "head": head,
        "seconds": round(elapsed, 3),
        # The relay's own CPU per event (this process): comparable on a busy machine.
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "rate": events / elapsed,
    }


@benchmark("throughput", group="relay")
async def relay_throughput(ctx: Context) -> list[Figure]:
    """Relay: contract-svc's log (bulk-saved contracts) to JetStream, default fsync and always."""
    url = ctx.database("relay")
    contracts = contracts_app(url)
    try:
        n = ctx.count(100_000)
        ctx.progress(f"seeding {n:,} contract events")
        seed(contracts, n)
        ctx.progress("relaying to JetStream, default fsync")
        default = await _catch_up_rate(relay_settings(url, ctx.nats_url, contracts), n)
        # With fsync on every write the same log takes ~30 s: relay its first part only.
        m = min(n, ctx.count(20_000))
        url_always = ctx.database("relay_always")
        contracts_always = contracts_app(url_always)
        try:
            ctx.progress(f"seeding {m:,} events; relaying to JetStream, sync_interval always")
            seed(contracts_always, m)
            always = await _catch_up_rate(
                relay_settings(url_always, ctx.nats_sync_always_url, contracts_always), m
            )
        finally:
            contracts_always.close()
    finally:
        contracts.close()
    return [
        Figure("relay.default.eps", "relay, default fsync", default.pop("rate"), "events/s",
               detail=default),
        Figure("relay.always.eps", "relay, sync_interval always", always.pop("rate"), "events/s",
               detail=always),
    ]  # fmt: skip


@benchmark("burst", group="relay")
async def relay_burst(ctx: Context) -> list[Figure]:
    """Relay following the log: a burst of 10,000 events in one commit, time until lag is 0."""
    url = ctx.database("relay_burst")
    contracts = contracts_app(url)
    burst = 10_000  # the goal's burst; not shrunk by --quick
    stop = asyncio.Event()
    reached = 0
    drained = asyncio.Event()
    target = 0

    def on_progress(position: int) -> None:
        nonlocal reached
        reached = position
        if target and position >= target:
            drained.set()

    try:
        seed(contracts, 100)
        await _fresh_stream(url, ctx.nats_url)
        relay = Relay(relay_settings(url, ctx.nats_url, contracts), on_progress=on_progress)
        task = asyncio.create_task(relay.run(stop))
        pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=1)
        try:
            target = await log_head(pool, events_table(Contracts.name))
            if reached >= target:
                drained.set()
            await asyncio.wait_for(drained.wait(), timeout=30)  # the seed is published
            drained.clear()
            ctx.progress(f"burst of {burst:,} events in one commit")
            batch = [new_contract(10_000 + i) for i in range(burst // EVENTS_PER_CONTRACT)]

            def save() -> float:
                contracts.save(*batch)
                return time.perf_counter()  # in the writer's thread: the loop may be busy relaying

            committed = await asyncio.to_thread(save)
            target = await log_head(pool, events_table(Contracts.name))
            if reached >= target:
                drained.set()
            await asyncio.wait_for(drained.wait(), timeout=ctx.seconds(30))
            lag_s = time.perf_counter() - committed
        finally:
            stop.set()
            await task
            await pool.close()
    finally:
        contracts.close()
    return [
        Figure(
            "relay.burst_lag",
            "relay lag back to 0 after a burst of 10,000",
            lag_s,
            "s",
            detail={"burst": burst, "rate_during_burst": round(burst / lag_s)},
        )
    ]
