"""The group committer: commands/s and latency in-process and over HTTP, against a naive save."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import psycopg
from fastapi import FastAPI, Request

from bench.harness import Context, Figure, benchmark
from bench.harness.http import http_request, run_load, serve
from bench.raw import HTTP_BODY
from bench.raw_apps import (
    DATABASE_URL_ENV,
    RAW_HTTP_TABLE,
    Item,
    ItemBody,
    Items,
    items_application,
)
from smartid_events.groupcommit import GroupCommitter, create, update

SUBMITTERS = 32
MAX_OPS = 2_000_000


def _new_item() -> tuple[Item, UUID]:
    item = Item(holder="Taro Yamada", plan="standard", id_count=3)
    return item, item.id


def _change(item: Item) -> int:
    item.change_id_count(item.id_count % 9 + 1)
    return item.version


def _measure(
    seconds: float, step: Callable[[int, int], None], threads: int = SUBMITTERS
) -> dict[str, float]:
    """`threads` closed loops of `step(thread, n)`; throughput and latency percentiles."""
    latencies: list[list[int]] = [[] for _ in range(threads)]
    errors = [0] * threads
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def loop(i: int) -> None:
        mine = latencies[i]
        barrier.wait()
        n = 0
        while n < MAX_OPS // threads and time.perf_counter() < deadline[0]:
            t0 = time.perf_counter_ns()
            try:
                step(i, n)
            except Exception:  # counted: a failed command is a figure, not a crash
                errors[i] += 1
            mine.append(time.perf_counter_ns() - t0)
            n += 1

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    barrier.wait()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    everything = sorted(x for per in latencies for x in per)
    count = len(everything)

    def pct(q: float) -> float:
        return everything[min(count - 1, int(q * count))] / 1e6 if count else 0.0

    return {
        "rate": count / elapsed,
        "count": count,
        "errors": sum(errors),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
    }


def _in_process(ctx: Context, app: Items) -> list[Figure]:
    seconds = ctx.seconds(5)
    per_thread = 50
    seeded = [[_new_item()[0] for _ in range(per_thread)] for _ in range(SUBMITTERS)]
    app.save(*(item for items in seeded for item in items))
    ids = [[item.id for item in items] for items in seeded]

    def naive_create(_i: int, _n: int) -> None:
        app.save(_new_item()[0])

    def naive_update(i: int, n: int) -> None:
        item: Item = app.repository.get(ids[i][n % per_thread])
        _change(item)
        app.save(item)

    gc.freeze()
    results: dict[str, dict[str, float]] = {}
    ctx.progress("naive: one save per command")
    results["naive.create"] = _measure(seconds, naive_create)
    results["naive.update"] = _measure(seconds, naive_update)
    ctx.progress("group committer")
    with GroupCommitter(app) as committer:

        def grouped_create(_i: int, _n: int) -> None:
            committer.submit(create(_new_item))

        def grouped_update(i: int, n: int) -> None:
            committer.submit(update(Item, ids[i][n % per_thread], _change))

        results["grouped.create"] = _measure(seconds, grouped_create)
        results["grouped.update"] = _measure(seconds, grouped_update)
        batches = {"batches": committer.batches, "commands": committer.commands}
    gc.unfreeze()

    figures: list[Figure] = []
    for key, result in results.items():
        kind, verb = key.split(".")
        label = f"{verb}s, {SUBMITTERS} threads, " + (
            "group committer" if kind == "grouped" else "one save each"
        )
        detail: dict[str, Any] = {k: round(v, 3) for k, v in result.items()}
        if kind == "grouped":
            detail |= batches
        figures.append(
            Figure(
                f"groupcommit.{key}.cps",
                label,
                result["rate"],
                "commands/s",
                baseline=f"groupcommit.naive.{verb}.cps" if kind == "grouped" else None,
                detail=detail,
            )
        )
        figures.append(Figure(f"groupcommit.{key}.p99", f"{label}, p99", result["p99_ms"], "ms"))
    return figures


def committer_app() -> FastAPI:
    """POST /items: create an `Item` through the group committer (a `def` route)."""
    url = os.environ[DATABASE_URL_ENV]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.items = items_application(url, create_table=False)
        app.state.committer = GroupCommitter(app.state.items)
        gc.freeze()  # long-lived objects out of the collector's way (p99)
        yield
        app.state.committer.close()
        app.state.items.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/items")
    def create_item(body: ItemBody, request: Request) -> dict[str, str]:
        committer: GroupCommitter = request.app.state.committer

        def new() -> tuple[Item, UUID]:
            item = Item(holder=body.holder, plan=body.plan, id_count=body.id_count)
            return item, item.id

        return {"id": str(committer.submit(create(new)))}

    @app.post("/items-async")
    async def create_item_async(body: ItemBody, request: Request) -> dict[str, str]:
        committer: GroupCommitter = request.app.state.committer

        def new() -> tuple[Item, UUID]:
            item = Item(holder=body.holder, plan=body.plan, id_count=body.id_count)
            return item, item.id

        return {"id": str(await committer.submit_async(create(new)))}

    return app


def _over_http(ctx: Context, url: str) -> list[Figure]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_HTTP_TABLE)
    env = {DATABASE_URL_ENV: url}
    logs = ctx.work_dir / "logs"
    post = http_request("POST", "/items", HTTP_BODY)
    seconds = ctx.seconds(10)
    ctx.progress("HTTP: raw asyncpg endpoint (the baseline, same run)")
    with serve("bench.raw_apps:asyncpg_app", env, log_dir=logs) as (host, port):
        raw = run_load(host, port, post, clients=SUBMITTERS, seconds=seconds)
    ctx.progress("HTTP: group committer endpoint")
    with serve("bench.groupcommit:committer_app", env, log_dir=logs) as (host, port):
        grouped = run_load(host, port, post, clients=SUBMITTERS, seconds=seconds)
        post_async = http_request("POST", "/items-async", HTTP_BODY)
        grouped_async = run_load(host, port, post_async, clients=SUBMITTERS, seconds=seconds)
    label = f"HTTP creates, {SUBMITTERS} clients"
    return [
        Figure(
            "groupcommit.http.asyncpg.rps",
            f"{label}, raw asyncpg INSERT+COMMIT",
            raw.rps,
            "req/s",
            detail=raw.detail(),
        ),
        Figure(
            "groupcommit.http.rps",
            f"{label}, group committer",
            grouped.rps,
            "req/s",
            baseline="groupcommit.http.asyncpg.rps",
            detail=grouped.detail(),
        ),
        Figure("groupcommit.http.p99", f"{label}, group committer, p99", grouped.p99_ms, "ms"),
        Figure(
            "groupcommit.http.async.rps",
            f"{label}, group committer, async route",
            grouped_async.rps,
            "req/s",
            baseline="groupcommit.http.asyncpg.rps",
            detail=grouped_async.detail(),
        ),
        Figure(
            "groupcommit.http.async.p99",
            f"{label}, group committer, async route, p99",
            grouped_async.p99_ms,
            "ms",
        ),
    ]


@benchmark("groupcommit", group="command")
def groupcommit(ctx: Context) -> list[Figure]:
    """Group committer vs one save per command: 32 threads in-process, and 32 HTTP clients."""
    url = ctx.database("groupcommit")
    app = items_application(url)
    try:
        figures = _in_process(ctx, app)
    finally:
        app.close()
    return figures + _over_http(ctx, url)
