"""The raw baselines: what PostgreSQL, eventsourcing, uvicorn and JetStream do on this machine."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable

import nats
import orjson
import psycopg
from nats.js.api import PubAck, StorageType, StreamConfig

from bench.harness import Context, Figure, benchmark
from bench.harness.http import http_request, run_load, serve
from bench.raw_apps import DATABASE_URL_ENV, RAW_HTTP_TABLE, Item, items_application

PAYLOAD = orjson.dumps(
    {
        "specversion": "1.0",
        "type": "smartid.contract.Approved.v1",
        "source": "/smartid/contract-svc",
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "time": "2026-05-01T09:00:00+09:00",
        "subject": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "data": {"start_date": "2026-05-01", "plan": "standard", "id_count": 3},
        "position": 123456,
    }
)
HTTP_BODY = orjson.dumps({"holder": "Taro Yamada", "plan": "standard", "id_count": 3})
MAX_OPS = 5_000_000  # a count bound on every loop, besides its time bound


def _run_threads(threads: int, seconds: float, work: Callable[[int], Callable[[], None]]) -> int:
    """Run `threads` loops of `work(i)()` for `seconds`; returns the number of completed calls.

    `work(i)` is called before the clock starts (connection set-up is not measured).
    """
    steps = [work(i) for i in range(threads)]
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def loop(i: int) -> None:
        step = steps[i]
        barrier.wait()
        n = 0
        while n < MAX_OPS // threads and time.perf_counter() < deadline[0]:
            step()
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    deadline[0] = time.perf_counter() + seconds
    barrier.wait()
    for w in workers:
        w.join()
    return sum(counts)


def _timed_threads(
    threads: int, seconds: float, work: Callable[[int], Callable[[], None]]
) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = _run_threads(threads, seconds, work)
    return n, max(time.perf_counter() - t0, 1e-9)


@benchmark("disk", group="raw")
def disk(ctx: Context) -> list[Figure]:
    """The disk under the servers: 4 KiB append + fdatasync, one at a time (commit latency)."""
    path = ctx.work_dir / "fsync-probe"
    block = os.urandom(4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + ctx.seconds(3)
        while n < MAX_OPS and time.perf_counter() < deadline:
            os.write(fd, block)
            os.fdatasync(fd)
            n += 1
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink()
    return [
        Figure(
            "raw.disk.fdatasync",
            "disk: 4 KiB write + fdatasync",
            n / elapsed,
            "syncs/s",
            detail={"syncs": n, "seconds": round(elapsed, 3)},
        )
    ]


@benchmark("pg-insert", group="raw")
def pg_insert(ctx: Context) -> list[Figure]:
    """psycopg: one-row INSERT, committed (autocommit), per client, 1 and 16 clients."""
    url = ctx.database("raw_insert")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE raw_insert (id bigserial PRIMARY KEY, originator uuid NOT NULL,"
            " payload bytea NOT NULL)"
        )
    figures: list[Figure] = []
    for clients in (1, 16):
        ctx.progress(f"{clients} client(s)")
        connections = [psycopg.connect(url, autocommit=True) for _ in range(clients)]

        def work(
            i: int, connections: list[psycopg.Connection[tuple[object, ...]]] = connections
        ) -> Callable[[], None]:
            conn = connections[i]

            def step() -> None:
                conn.execute(
                    "INSERT INTO raw_insert (originator, payload) VALUES (%s, %s)",
                    (uuid.uuid4(), PAYLOAD),
                    prepare=True,
                )

            return step

        try:
            n, elapsed = _timed_threads(clients, ctx.seconds(8), work)
        finally:
            for conn in connections:
                conn.close()
        figures.append(
            Figure(
                f"raw.pg.insert.c{clients}",
                f"PostgreSQL INSERT+COMMIT, {clients} client{'s' if clients > 1 else ''}",
                n / elapsed,
                "rows/s",
                detail={"rows": n, "seconds": round(elapsed, 3)},
            )
        )
    return figures


@benchmark("es-save", group="raw")
def es_save(ctx: Context) -> list[Figure]:
    """eventsourcing: create one aggregate and save it, one transaction each, 1 and 8 threads."""
    url = ctx.database("raw_es")
    items = items_application(url)
    figures: list[Figure] = []
    try:
        for threads in (1, 8):
            ctx.progress(f"{threads} thread(s)")

            def work(_i: int) -> Callable[[], None]:
                def step() -> None:
                    items.save(Item(holder="Taro Yamada", plan="standard", id_count=3))

                return step

            n, elapsed = _timed_threads(threads, ctx.seconds(8), work)
            figures.append(
                Figure(
                    f"raw.es.save.t{threads}",
                    f"eventsourcing create+save, {threads} thread{'s' if threads > 1 else ''}",
                    n / elapsed,
                    "saves/s",
                    detail={"saves": n, "seconds": round(elapsed, 3)},
                )
            )
    finally:
        items.close()
    return figures


@benchmark("http", group="raw")
def http(ctx: Context) -> list[Figure]:
    """uvicorn, 2 workers, 32 clients: no-op GET, raw asyncpg INSERT, naive eventsourcing save."""
    url = ctx.database("raw_http")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_HTTP_TABLE)
    items_application(url).close()  # creates the event store's tables before the workers start
    env = {DATABASE_URL_ENV: url}
    logs = ctx.work_dir / "logs"
    post = http_request("POST", "/items", HTTP_BODY)
    clients = 32
    figures: list[Figure] = []

    ctx.progress("raw asyncpg endpoint (and no-op GET)")
    with serve("bench.raw_apps:asyncpg_app", env, log_dir=logs) as (host, port):
        noop = run_load(
            host, port, http_request("GET", "/ping"), clients=clients, seconds=ctx.seconds(5)
        )
        raw = run_load(host, port, post, clients=clients, seconds=ctx.seconds(10))
    ctx.progress("naive eventsourcing endpoint")
    with serve("bench.raw_apps:es_app", env, log_dir=logs) as (host, port):
        es = run_load(host, port, post, clients=clients, seconds=ctx.seconds(10))

    for key, label, result in (
        ("noop", "HTTP no-op GET (stack ceiling)", noop),
        ("asyncpg", "HTTP raw asyncpg INSERT+COMMIT", raw),
        ("es", "HTTP naive eventsourcing save", es),
    ):
        detail = result.detail()
        figures.append(Figure(f"raw.http.{key}.rps", label, result.rps, "req/s", detail=detail))
        if key != "noop":
            figures.append(Figure(f"raw.http.{key}.p50", f"{label}, p50", result.p50_ms, "ms"))
            figures.append(Figure(f"raw.http.{key}.p99", f"{label}, p99", result.p99_ms, "ms"))
    return figures


async def _publish_rates(ctx: Context, url: str, flavour: str) -> list[Figure]:
    nc = await nats.connect(url)
    js_single = nc.jetstream(timeout=10)
    stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
    prefix = f"bench.{stream.lower()}"
    await js_single.add_stream(
        StreamConfig(name=stream, subjects=[f"{prefix}.>"], storage=StorageType.FILE)
    )
    figures: list[Figure] = []
    try:
        ctx.progress(f"{flavour}: one at a time")
        seconds = ctx.seconds(6)
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while n < MAX_OPS and time.perf_counter() < deadline:
            msg_id = str(uuid.uuid4())
            await js_single.publish(
                f"{prefix}.p{n % 16:02d}.{msg_id}.Approved",
                PAYLOAD,
                headers={"Nats-Msg-Id": msg_id},
            )
            n += 1
        elapsed = time.perf_counter() - t0
        figures.append(
            Figure(
                f"raw.nats.single.{flavour}",
                f"JetStream acked publish, one at a time, {flavour}",
                n / elapsed,
                "msgs/s",
                detail={"messages": n, "seconds": round(elapsed, 3)},
            )
        )

        window = 512
        ctx.progress(f"{flavour}: pipelined, window {window}")
        js = nc.jetstream(timeout=10, publish_async_max_pending=window)
        acked = 0
        failed = 0

        def on_ack(future: asyncio.Future[PubAck]) -> None:
            nonlocal acked, failed
            if future.cancelled() or future.exception() is not None:
                failed += 1
            else:
                acked += 1

        sent = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while sent < MAX_OPS and time.perf_counter() < deadline:
            msg_id = str(uuid.uuid4())
            future = await js.publish_async(
                f"{prefix}.p{sent % 16:02d}.{msg_id}.Approved",
                PAYLOAD,
                headers={"Nats-Msg-Id": msg_id},
            )
            future.add_done_callback(on_ack)
            sent += 1
        await asyncio.wait_for(js.publish_async_completed(), timeout=30)
        await asyncio.sleep(0)  # let the last done-callbacks run
        elapsed = time.perf_counter() - t0
        figures.append(
            Figure(
                f"raw.nats.pipelined.{flavour}",
                f"JetStream acked publish, pipelined, {flavour}",
                acked / elapsed,
                "msgs/s",
                detail={
                    "messages": sent,
                    "acked": acked,
                    "failed": failed,
                    "window": window,
                    "seconds": round(elapsed, 3),
                },
            )
        )
    finally:
        await js_single.delete_stream(stream)
        await nc.close()
    return figures


@benchmark("nats-publish", group="raw")
async def nats_publish(ctx: Context) -> list[Figure]:
    """JetStream acked publishes with Nats-Msg-Id: one at a time and pipelined; default fsync
    and sync_interval: always."""
    figures = await _publish_rates(ctx, ctx.nats_url, "default")
    figures += await _publish_rates(ctx, ctx.nats_sync_always_url, "always")
    return figures


@benchmark("eslog-read", group="raw")
def eslog_read(ctx: Context) -> list[Figure]:
    """eventsourcing notification log: select_notifications pages of 1,000, each event decoded."""
    url = ctx.database("raw_eslog")
    items = items_application(url)
    try:
        total = ctx.count(100_000)
        ctx.progress(f"seeding {total:,} events")
        batch = 1_000
        seeded = 0
        while seeded < total:
            aggregates = []
            for i in range(min(batch, total - seeded) // 2):
                item = Item(holder="Taro Yamada", plan="standard", id_count=3)
                item.change_id_count(i % 10 + 1)
                aggregates.append(item)
            if not aggregates:
                break
            items.save(*aggregates)
            seeded += 2 * len(aggregates)
        ctx.progress(f"reading {seeded:,} events")
        recorder = items.recorder
        mapper = items.mapper
        page = 1_000
        best = 0.0
        passes = 0
        read = 0
        budget = time.perf_counter() + ctx.seconds(10)
        # Read the whole log repeatedly (at most 5 passes) and keep the best pass: the first
        # one also warms the page cache and prepared statements.
        while passes < 5 and time.perf_counter() < budget:
            position: int | None = None
            read = 0
            t0 = time.perf_counter()
            while True:
                notifications = recorder.select_notifications(
                    start=position, limit=page, inclusive_of_start=False
                )
                if not notifications:
                    break
                for notification in notifications:
                    mapper.to_domain_event(notification)
                read += len(notifications)
                position = notifications[-1].id
            best = max(best, read / (time.perf_counter() - t0))
            passes += 1
    finally:
        items.close()
    return [
        Figure(
            "raw.eslog.read",
            "notification log read + decode",
            best,
            "events/s",
            detail={"events": read, "passes": passes, "page": page},
        )
    ]
