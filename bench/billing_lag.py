"""From a contract command's commit to billing-svc's committed effect, at a steady rate: the
contract log, the relay, JetStream, and billing's own consumer (event-sourced tracking)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import asyncpg

from bench.consumer import RATE, WARMUP_S, _commands, _stream_exists
from bench.harness import Context, Figure, benchmark
from bench.relay import _fresh_stream, contracts_app, new_contract, relay_settings
from billing_svc.application import Billing
from billing_svc.consumers import CONSUMER_NAME, UPSTREAM, contract_events_handler
from smartid_events.consumer import Consumer
from smartid_events.envelope import PARTITIONS, CloudEvent
from smartid_events.parked import ParkedStore
from smartid_events.relay import Relay
from smartid_events.store import asyncpg_dsn, event_store_env
from smartid_events.tracking import EventSourcedTracker, ProcessContext


class TimedBillingTracker(EventSourcedTracker):
    """billing's tracking, noting when each contract event's effect has committed."""

    def __init__(self, app: Billing, committed: dict[str, float]) -> None:
        super().__init__(app)
        self.committed = committed

    async def apply(self, name: str, position: int, event: CloudEvent, handler: Any) -> bool:
        applied = await super().apply(name, position, event, handler)
        if applied:
            self.committed[event.id] = time.time()
        return applied


@benchmark("lag", group="billing")
async def billing_lag(ctx: Context) -> list[Figure]:
    """Contract command commit → billing's committed effect, p50/p99 at a steady 200/s."""
    contract_url = ctx.database("billing_lag_contract")
    billing_url = ctx.database("billing_lag_billing")
    seconds = ctx.seconds(10)
    contracts = contracts_app(contract_url)
    billing = await asyncio.to_thread(Billing, env=event_store_env(billing_url))
    committed: dict[str, float] = {}
    stop = asyncio.Event()
    pool = await asyncpg.create_pool(asyncpg_dsn(billing_url), min_size=1, max_size=4)
    tasks: list[asyncio.Task[None]] = []
    try:
        contracts.save(new_contract(0, events=1))
        await _fresh_stream(contract_url, ctx.nats_url)
        consumer: Consumer[ProcessContext] = Consumer(
            name=CONSUMER_NAME,
            upstream=UPSTREAM,
            partitions=range(PARTITIONS),
            handler=contract_events_handler(billing),
            tracker=TimedBillingTracker(billing, committed),
            parked=ParkedStore(pool),
            nats_url=ctx.nats_url,
        )
        relay = Relay(relay_settings(contract_url, ctx.nats_url, contracts))
        tasks.append(asyncio.create_task(relay.run(stop)))
        ctx.progress("waiting for the relay and billing's consumer to start")
        deadline = time.perf_counter() + 30
        while not committed:
            if time.perf_counter() > deadline:
                raise TimeoutError("the first event never reached billing")
            if len(tasks) == 1 and await _stream_exists(contract_url):
                tasks.append(asyncio.create_task(consumer.run(stop)))
            await asyncio.sleep(0.05)
        ctx.progress(f"{RATE} contract commands/s for {WARMUP_S + seconds:.0f} s")
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as writer:
            sent, started = await asyncio.get_running_loop().run_in_executor(
                writer, _commands, contract_url, WARMUP_S + seconds
            )
        for _ in range(300):  # up to 15 s for the last effects
            if set(sent) <= committed.keys():
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        await pool.close()
        contracts.close()
        billing.close()
    window_start = started + WARMUP_S
    latencies = sorted(
        (committed[key] - at) * 1e3
        for key, at in sent.items()
        if at >= window_start and key in committed
    )
    measured = sum(1 for at in sent.values() if at >= window_start)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    detail = {
        "commands": len(sent),
        "measured": measured,
        "missing": measured - len(latencies),
        "p50_ms": round(pct(0.5), 2),
        "p99_ms": round(pct(0.99), 2),
        "max_ms": round(latencies[-1], 2),
        "tracking": "EventSourcedTracker (billing's process recorder)",
    }
    return [
        Figure("billing.lag.p50", "contract commit → billing effect p50 at 200/s",
               pct(0.5), "ms", detail=detail),
        Figure("billing.lag.p99", "contract commit → billing effect p99 at 200/s",
               pct(0.99), "ms", detail=detail),
    ]  # fmt: skip
