"""Serving an ASGI app with uvicorn in a subprocess, and a closed-loop HTTP/1.1 load generator.

The load generator speaks HTTP/1.1 over raw asyncio streams on uvloop, one keep-alive
connection per client, each sending its next request when the previous answer has arrived.
httpx costs ~100 µs of CPU per request, too much on 2 cores; this costs ~15 µs, and the
client's own CPU use is reported with every figure so that a saturated client shows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.harness.context import REPO_ROOT
from smartid_events.devstack import free_port


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu: float  # CPU seconds the generator used per second of wall time (1.0 = one core)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def detail(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "client_cpu": round(self.client_cpu, 3),
        }


@contextmanager
def serve(
    app: str,
    env: Mapping[str, str],
    *,
    log_dir: Path,
    workers: int = 2,
    factory: bool = True,
    ready_path: str = "/ping",
    timeout: float = 60.0,
) -> Iterator[tuple[str, int]]:
    """Run `uvicorn app` (`module:attribute`) on a free loopback port; yields (host, port)."""
    host, port = "127.0.0.1", free_port()
    args = [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    args += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    if factory:
        args.append("--factory")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"uvicorn-{app.replace(':', '-')}-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, host, port, ready_path, timeout, log_path)
        yield host, port
    finally:
        _stop(process)


def _wait_ready(
    process: subprocess.Popen[bytes],
    host: str,
    port: int,
    path: str,
    timeout: float,
    log_path: Path,
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}; see {log_path}")
        try:
            status = asyncio.run(_one_request(host, port, request))
        except OSError:
            status = 0
        if status == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not answer {path} within {timeout} s; see {log_path}")


async def _one_request(host: str, port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        return int(head[9:12])
    finally:
        writer.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # The uvicorn supervisor leads its own session (start_new_session): this group is ours.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def http_request(method: str, path: str, body: bytes = b"", host: str = "127.0.0.1") -> bytes:
    """One HTTP/1.1 keep-alive request, encoded once and sent as-is by every client."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def run_load(
    host: str,
    port: int,
    request: bytes,
    *,
    clients: int,
    seconds: float,
    warmup: float = 1.0,
    max_requests: int = 2_000_000,
) -> LoadResult:
    """`load` on a fresh uvloop event loop, for synchronous benchmarks."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(
            load(
                host,
                port,
                request,
                clients=clients,
                seconds=seconds,
                warmup=warmup,
                max_requests=max_requests,
            )
        )


async def load(
    host: str,
    port: int,
    request: bytes,
    *,
    clients: int,
    seconds: float,
    warmup: float = 1.0,
    max_requests: int = 2_000_000,
) -> LoadResult:
    """Closed-loop load: `clients` connections for `warmup` + `seconds`, counted after warm-up.

    Only requests that start and finish inside the measured window count; a non-2xx answer or
    a broken connection is an error (a broken connection reconnects).
    """
    latencies: list[int] = []
    errors = 0
    started = 0
    now = time.perf_counter_ns
    t_start = now()
    window_start = t_start + int(warmup * 1e9)
    window_end = window_start + int(seconds * 1e9)
    cpu_at_window: list[float] = []

    async def client() -> None:
        nonlocal errors, started
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while started < max_requests:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            t0 = now()
            if t0 >= window_end:
                break
            started += 1
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(_content_length(head))
                ok = head[9:10] == b"2"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                writer.close()
                reader = writer = None
                ok = False
            t1 = now()
            if t0 >= window_start and t1 <= window_end:
                if ok:
                    latencies.append(t1 - t0)
                else:
                    errors += 1
        if writer is not None:
            writer.close()

    async def mark_window() -> None:
        await asyncio.sleep(max(0.0, (window_start - now()) / 1e9))
        cpu_at_window.append(time.process_time())
        await asyncio.sleep(max(0.0, (window_end - now()) / 1e9))
        cpu_at_window.append(time.process_time())

    marker = asyncio.create_task(mark_window())
    await asyncio.gather(*(client() for _ in range(clients)))
    if not marker.done():  # every client stopped early (max_requests)
        marker.cancel()
        cpu_at_window.append(time.process_time())
    cpu = cpu_at_window[-1] - cpu_at_window[0] if len(cpu_at_window) > 1 else 0.0
    elapsed = (min(now(), window_end) - window_start) / 1e9
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=_percentile(latencies, 0.50) / 1e6,
        p99_ms=_percentile(latencies, 0.99) / 1e6,
        max_ms=(latencies[-1] / 1e6) if latencies else 0.0,
        client_cpu=cpu / elapsed if elapsed > 0 else 0.0,
    )


def _content_length(head: bytes) -> int:
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    j = lower.index(b"\r\n", i + 2)
    return int(lower[i + 17 : j])


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return float(sorted_values[index])
