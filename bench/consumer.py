"""From a command's commit to a consumer's committed effect: contract-svc's log, the relay,
JetStream, and the consumer kit with SQL tracking, at a steady command rate."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from typing import Any

import asyncpg
import nats
from nats.aio.msg import Msg

from bench.harness import Context, Figure, benchmark
from bench.relay import _fresh_stream, contracts_app, new_contract, relay_settings
from contract_svc.domain import Contract
from contract_svc.published import event_id
from smartid_events.consumer import Consumer
from smartid_events.envelope import HEADER_MSG_ID, PARTITIONS, CloudEvent
from smartid_events.parked import ParkedStore
from smartid_events.relay import Relay
from smartid_events.store import asyncpg_dsn
from smartid_events.tracking import SqlTracker

RATE = 200  # commands/s
WARMUP_S = 1.0

EFFECTS = """
CREATE TABLE IF NOT EXISTS bench_effects (
    event_id text PRIMARY KEY,
    contract_id text NOT NULL,
    position bigint NOT NULL
)
"""


async def _record_effect(event: CloudEvent, conn: asyncpg.Connection[Any]) -> None:
    await conn.execute(
        "INSERT INTO bench_effects (event_id, contract_id, position) VALUES ($1, $2, $3)",
        event.id,
        event.contract_id,
        event.position,
    )


class TimedTracker(SqlTracker):
    """SQL tracking that notes when each event's effect has committed."""

    def __init__(self, pool: asyncpg.Pool[Any], committed: dict[str, float]) -> None:
        super().__init__(pool)
        self.committed = committed
        self.expected: set[str] | None = None
        self.all_in = asyncio.Event()

    async def apply(self, name: str, position: int, event: CloudEvent, handler: Any) -> bool:
        applied = await super().apply(name, position, event, handler)
        if applied:
            self.committed[event.id] = time.time()
            if self.expected is not None and self.expected <= self.committed.keys():
                self.all_in.set()
        return applied


def _commands(url: str, seconds: float) -> tuple[dict[str, float], float]:
    """Open loop at `RATE` in a process of its own (like the API's): apply for a new contract,
    then approve it; one save per command, its wall clock noted once `save` has returned."""
    contracts = contracts_app(url)
    sent: dict[str, float] = {}
    interval = 1.0 / RATE
    t0 = time.time()
    n = 0
    open_contract: Contract | None = None
    try:
        while time.time() - t0 < seconds:
            delay = t0 + n * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            if open_contract is None:
                contract = new_contract(n + 1, events=1)
                open_contract = contract
            else:
                contract, open_contract = open_contract, None
                contract.approve(date(2026, 4, 1))
            contracts.save(contract)
            sent[event_id(contract.id, contract.version)] = time.time()
            n += 1
    finally:
        contracts.close()
    return sent, t0


@benchmark("commit-to-effect", group="consumer")
async def commit_to_effect(ctx: Context) -> list[Figure]:
    """Command commit → relay → JetStream → consumer kit (SQL tracking) effect commit, p50/p99
    at a steady 200 commands/s."""
    url = ctx.database("consumer")
    seconds = ctx.seconds(10)
    contracts = contracts_app(url)
    committed: dict[str, float] = {}
    stop = asyncio.Event()
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=2, max_size=8)
    tasks: list[asyncio.Task[None]] = []
    # When each event reached NATS (a plain subscriber beside the stream): splits the latency
    # into the relay's part (commit → published) and the consumer's (published → effect).
    published: dict[str, float] = {}

    async def on_published(msg: Msg) -> None:
        if msg.headers and HEADER_MSG_ID in msg.headers:
            published.setdefault(msg.headers[HEADER_MSG_ID], time.time())

    # Collector pauses in this process (relay and consumer): how much of the tail they are.
    pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - gc_started[0]) * 1e3)

    gc.callbacks.append(on_gc)
    watcher = await nats.connect(ctx.nats_url)
    await watcher.subscribe("smartid.contract.>", cb=on_published)
    try:
        await pool.execute(EFFECTS)
        contracts.save(new_contract(0, events=1))
        await _fresh_stream(url, ctx.nats_url)
        tracker = TimedTracker(pool, committed)
        await tracker.setup()
        consumer: Consumer[asyncpg.Connection[Any]] = Consumer(
            name="bench-contract-effects",
            upstream="contract",
            partitions=range(PARTITIONS),
            handler=_record_effect,
            tracker=tracker,
            parked=ParkedStore(pool),
            nats_url=ctx.nats_url,
        )
        tasks.append(
            asyncio.create_task(Relay(relay_settings(url, ctx.nats_url, contracts)).run(stop))
        )
        ctx.progress("waiting for the relay and the consumer to start")
        deadline = time.perf_counter() + 30
        while not await pool.fetchval("SELECT count(*) FROM bench_effects"):
            if time.perf_counter() > deadline:
                raise TimeoutError("the first event never reached the consumer")
            if len(tasks) == 1 and await _stream_exists(url):
                tasks.append(asyncio.create_task(consumer.run(stop)))
            await asyncio.sleep(0.05)
        ctx.progress(f"{RATE} commands/s for {WARMUP_S + seconds:.0f} s")
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as writer:
            sent, started = await asyncio.get_running_loop().run_in_executor(
                writer, _commands, url, WARMUP_S + seconds
            )
        commands = len(sent)
        elapsed = max(sent.values()) - started
        tracker.expected = set(sent)
        if tracker.expected <= committed.keys():
            tracker.all_in.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.all_in.wait(), timeout=10)
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        await pool.close()
        contracts.close()
        await watcher.close()
        gc.callbacks.remove(on_gc)
    window_start = started + WARMUP_S
    latencies = sorted(
        (committed[key] - at) * 1e3
        for key, at in sent.items()
        if at >= window_start and key in committed
    )
    measured = sum(1 for at in sent.values() if at >= window_start)
    missing = measured - len(latencies)

    def pct(q: float, values: list[float] = latencies) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    in_window = [k for k, at in sent.items() if at >= window_start and k in committed]
    relay_ms = sorted((published[k] - sent[k]) * 1e3 for k in in_window if k in published)
    consumer_ms = sorted((committed[k] - published[k]) * 1e3 for k in in_window if k in published)

    detail = {
        "commands": commands,
        "measured": measured,
        "missing": missing,
        "rate": round(commands / elapsed, 1),
        "p50_ms": round(pct(0.5), 2),
        "p99_ms": round(pct(0.99), 2),
        "max_ms": round(latencies[-1], 2),
        "relay_p50_ms": round(pct(0.5, relay_ms), 2),
        "relay_p99_ms": round(pct(0.99, relay_ms), 2),
        "consumer_p50_ms": round(pct(0.5, consumer_ms), 2),
        "consumer_p99_ms": round(pct(0.99, consumer_ms), 2),
        "gc_pauses": len(pauses),
        "gc_max_ms": round(max(pauses, default=0.0), 2),
        "gc_total_ms": round(sum(pauses), 1),
        "partitions": PARTITIONS,
        "tracking": "SqlTracker",
    }
    return [
        Figure("e2e.commit_to_effect.p50", "command commit → consumer effect p50 at 200/s",
               pct(0.5), "ms", detail=detail),
        Figure("e2e.commit_to_effect.p99", "command commit → consumer effect p99 at 200/s",
               pct(0.99), "ms", detail=detail),
    ]  # fmt: skip


async def _stream_exists(url: str) -> bool:
    """The relay has created the stream (it does on start) once its position row exists."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return bool(
            await conn.fetchval(
                "SELECT to_regclass('smartid_positions') IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM smartid_positions WHERE name = 'relay:contract')"
            )
        )
    finally:
        await conn.close()
