"""contract-svc: its command path over HTTP (a realistic mix) and loading a long-lived contract."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import date
from typing import Any
from uuid import UUID

import orjson
import psycopg
import uvloop

from bench.harness import Context, Figure, benchmark
from bench.harness.http import LoadResult, http_request, run_load, serve
from bench.raw import HTTP_BODY
from bench.raw_apps import DATABASE_URL_ENV, RAW_HTTP_TABLE
from contract_svc.application import Contracts, ErasureAwareRepository
from contract_svc.domain import Contract, Contractor, Plan
from contract_svc.main import create_app
from contract_svc.settings import ContractSettings
from smartid_events.auth import SCOPES, mint_token
from smartid_events.store import event_store_env

CLIENTS = 32
SECRET = "bench-secret-" + "x" * 40
TERMS = "2026-04"
MAX_REQUESTS = 2_000_000
LONG_HISTORY = 10_000

OPERATOR = mint_token(SECRET, sub="bench-operator", role="operator", scopes=SCOPES)
APPLICATION = {
    "contractor": {
        "name": "株式会社ベンチ",
        "address": "東京都千代田区丸の内1-1-1",
        "email": "admin@bench.example.jp",
    },
    "plan": {"monthly_fee_per_id": 300, "id_count": 10},
    "terms_version": TERMS,
    "agreed_to_terms": True,
}
USER = {
    "name": "山田太郎",
    "email": "taro@bench.example.jp",
    "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "signed form"},
}
STEPS = ("apply", "approve", "id_count", "register_user")


def _post(path: str, body: dict[str, Any], token: str) -> bytes:
    payload = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def _content_length(head: bytes) -> int:
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    return int(lower[i + 17 : lower.index(b"\r\n", i + 2)])


async def _mixed_load(host: str, port: int, seconds: float, warmup: float = 1.0) -> LoadResult:
    """`CLIENTS` closed loops, each a contractor of its own tenant: apply, approval (operator),
    ID count change, user registration, on a new contract each round; every answer must be 2xx.
    """
    latencies: list[int] = []
    errors = 0
    started = 0
    now = time.perf_counter_ns
    window_start = now() + int(warmup * 1e9)
    window_end = window_start + int(seconds * 1e9)
    cpu: list[float] = []

    async def client(n: int) -> None:
        nonlocal errors, started
        token = mint_token(
            SECRET,
            sub=f"bench-admin-{n}",
            role="contractor",
            tenant=f"bench-tenant-{n}",
            scopes=["contracts:read", "contracts:write"],
        )
        apply = _post("/v1/contracts", APPLICATION, token)
        reader, writer = await asyncio.open_connection(host, port)
        contract_id = ""
        step = 0
        while started < MAX_REQUESTS:
            kind = STEPS[step % len(STEPS)]
            if kind == "apply":
                request = apply
            elif kind == "approve":
                approval = {"start_date": "2026-07-01"}
                request = _post(f"/v1/contracts/{contract_id}/approval", approval, OPERATOR)
            elif kind == "id_count":
                change = {"id_count": 12, "effective_date": "2026-08-01"}
                request = _post(f"/v1/contracts/{contract_id}/id-count", change, token)
            else:
                request = _post(f"/v1/contracts/{contract_id}/users", USER, token)
            t0 = now()
            if t0 >= window_end:
                break
            started += 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head))
            t1 = now()
            ok = head[9:10] == b"2"
            if ok and kind == "apply":
                contract_id = orjson.loads(body)["id"]
            step = step + 1 if ok else 0  # a failed step starts a new contract
            if t0 >= window_start and t1 <= window_end:
                if ok:
                    latencies.append(t1 - t0)
                else:
                    errors += 1
        writer.close()

    async def mark_window() -> None:
        await asyncio.sleep(max(0.0, (window_start - now()) / 1e9))
        cpu.append(time.process_time())
        await asyncio.sleep(max(0.0, (window_end - now()) / 1e9))
        cpu.append(time.process_time())

    marker = asyncio.create_task(mark_window())
    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    await marker
    elapsed = (window_end - window_start) / 1e9
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6

    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=pct(0.50) if latencies else 0.0,
        p99_ms=pct(0.99) if latencies else 0.0,
        max_ms=latencies[-1] / 1e6 if latencies else 0.0,
        client_cpu=(cpu[1] - cpu[0]) / elapsed,
    )


def _prepare(url: str, nats_url: str) -> dict[str, str]:
    """Create every table and publish the terms once, before workers could race to."""
    env = {
        "CONTRACT_DATABASE_URL": url,
        "CONTRACT_NATS_URL": nats_url,
        "CONTRACT_JWT_SECRET": SECRET,
        "CONTRACT_LOG_LEVEL": "WARNING",
    }
    settings = ContractSettings(
        database_url=url, nats_url=nats_url, jwt_secret=SECRET, log_level="WARNING"
    )
    app = create_app(settings, connect_nats=False)

    async def start_once() -> None:
        async with app.router.lifespan_context(app):
            app.state.contracts.publish_terms(TERMS, "第1条 ...", date(2026, 4, 1))

    asyncio.run(start_once())
    return env


def _http_figures(
    key: str, label: str, result: LoadResult, workers: int, writer: str, raw: LoadResult
) -> list[Figure]:
    detail: dict[str, Any] = {
        **result.detail(),
        "workers": workers,
        "writers": workers,
        "writer": writer,  # a thread of each API process, or a process of its own (ADR 0022)
        "mix": list(STEPS),
        "ratio_to_raw_same_benchmark": round(result.rps / raw.rps, 3) if raw.rps else None,
    }
    return [
        Figure(f"{key}.rps", label, result.rps, "commands/s", detail=detail),
        Figure(f"{key}.p50", f"{label}, p50", result.p50_ms, "ms"),
        Figure(f"{key}.p99", f"{label}, p99", result.p99_ms, "ms"),
    ]


@benchmark("http", group="contract")
def command_http(ctx: Context) -> list[Figure]:
    """contract-svc's create_app under uvicorn, 32 clients: apply/approve/ID count/user mix."""
    url = ctx.database("contract_http")
    seconds = ctx.seconds(10)
    logs = ctx.work_dir / "logs"
    env = _prepare(url, ctx.nats_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_HTTP_TABLE)
    ctx.progress("raw asyncpg endpoint (the ratio's baseline, measured next to ours)")
    with serve("bench.raw_apps:asyncpg_app", {DATABASE_URL_ENV: url}, log_dir=logs) as where:
        raw = run_load(*where, http_request("POST", "/items", HTTP_BODY), clients=CLIENTS,
                       seconds=seconds)  # fmt: skip
    figures = [
        Figure(
            "command.http.raw_asyncpg.rps",
            "HTTP raw asyncpg INSERT+COMMIT, same benchmark",
            raw.rps,
            "req/s",
            detail=raw.detail(),
        )
    ]
    app = "contract_svc.main:create_app"
    runs = (
        (1, "process", "command.http", "command path over HTTP, 32 clients"),
        (2, "process", "command.http.w2",
         "command path over HTTP, 32 clients, 2 workers (a writer each)"),
        (1, "thread", "command.http.writer_thread",
         "command path over HTTP, 32 clients, writer as a thread of the API process"),
    )  # fmt: skip
    for workers, writer, key, label in runs:
        ctx.progress(f"contract-svc, {workers} worker(s), writer as a {writer}, mixed commands")
        with (
            serve(app, {**env, "CONTRACT_COMMAND_WRITER": writer}, log_dir=logs,
                  workers=workers, ready_path="/healthz") as (host, port),
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):  # fmt: skip
            result = runner.run(_mixed_load(host, port, seconds))
        figures += _http_figures(key, label, result, workers, writer, raw)
    return figures


def _long_lived_contract(contracts: Contracts, events: int) -> UUID:
    contract = Contract.apply(
        tenant_id="bench",
        contractor=Contractor(name="株式会社ベンチ", address="東京", email="a@bench.example.jp"),
        plan=Plan(300, 3),
        construction_fee=None,
        terms_version=TERMS,
        agreed_to_terms=True,
        published_terms={TERMS},
    )
    contract.approve(date(2026, 4, 1))
    for i in range(events - contract.version):
        contract.change_id_count(3 + i % 2, date(2026, 5, 1))
        if len(contract.pending_events) == 500:
            contracts.save(contract)
    contracts.save(contract)
    return contract.id


def _median_ms(load: Any, contract_id: UUID, budget_s: float, repeats: int) -> dict[str, float]:
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        loaded = load(contract_id)
        times.append((time.perf_counter() - t0) * 1e3)
        assert loaded.version == LONG_HISTORY
    return {"median_ms": statistics.median(times), "min_ms": min(times), "loads": len(times)}


@benchmark("load", group="contract")
def contract_load(ctx: Context) -> list[Figure]:
    """Load a contract with 10,000 events, from its latest snapshot and from its events alone."""
    url = ctx.database("contract_load")
    contracts = Contracts(env=event_store_env(url))
    try:
        ctx.progress(f"recording {LONG_HISTORY:,} events")
        contract_id = _long_lived_contract(contracts, LONG_HISTORY)
        without = ErasureAwareRepository(event_store=contracts.events, snapshot_store=None)
        with_snapshots = _median_ms(contracts.get, contract_id, ctx.seconds(5), 200)
        from_events = _median_ms(without.get, contract_id, ctx.seconds(10), 20)
    finally:
        contracts.close()
    per_1k = from_events["median_ms"] / (LONG_HISTORY / 1_000)
    return [
        Figure(
            "contract.load_10k.ms",
            "load a contract with 10,000 events (snapshots)",
            with_snapshots["median_ms"],
            "ms",
            detail=with_snapshots,
        ),
        Figure(
            "contract.load_10k.events_only.ms",
            "load a contract with 10,000 events (no snapshots)",
            from_events["median_ms"],
            "ms",
            detail=from_events,
        ),
        Figure(
            "contract.load.per_1k_events.ms",
            "replay cost per 1,000 events (no snapshots)",
            per_1k,
            "ms",
        ),
    ]
