"""Finding benchmark modules, running the selected benchmarks, collecting their figures."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import psutil
import uvloop

import bench
from bench.harness.context import Context
from bench.harness.registry import Benchmark, Figure, Figures, registered

NOT_BENCHMARKS = {"__main__", "harness"}


def discover() -> list[str]:
    """Import every top-level module of `bench` (a new `bench/<name>.py` needs no wiring).

    Returns the import errors, one line each: a module whose component does not exist yet
    must not stop the others.
    """
    problems: list[str] = []
    for module in pkgutil.iter_modules(bench.__path__):
        if module.name in NOT_BENCHMARKS or module.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"bench.{module.name}")
        except Exception as error:  # reported in the results; the other modules still run
            problems.append(f"bench.{module.name}: {type(error).__name__}: {error}")
    return problems


def select(tokens: Sequence[str]) -> list[Benchmark]:
    everything = registered()
    if not tokens:
        return everything
    unknown = [t for t in tokens if not any(b.matches(t) for b in everything)]
    if unknown:
        known = ", ".join(sorted({b.group for b in everything} | {b.id for b in everything}))
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {known}")
    return [b for b in everything if any(b.matches(t) for t in tokens)]


@dataclass
class Outcome:
    benchmark: Benchmark
    seconds: float
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None
    background_cpu: float = 0.0  # share of all CPUs busy just before, while we were idle


def background_cpu(seconds: float = 0.5) -> float:
    """How busy the machine is with other work: CPU used by processes outside this run (our
    servers and their workers are children of ours) and steal, as a share of all CPUs."""
    system0, ours0 = psutil.cpu_times(), _our_cpu()
    time.sleep(seconds)
    system1, ours1 = psutil.cpu_times(), _our_cpu()
    total = sum(system1) - sum(system0)
    idle = (system1.idle - system0.idle) + (
        getattr(system1, "iowait", 0.0) - getattr(system0, "iowait", 0.0)
    )
    others = (total - idle) - (ours1 - ours0)
    return max(0.0, min(1.0, others / total)) if total > 0 else 0.0


def _our_cpu() -> float:
    me = psutil.Process()
    used = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        used += times.user + times.system
    return used


def settled_background_cpu(
    below: float, patience_s: float = 20.0, say: Callable[[str], None] | None = None
) -> float:
    """`background_cpu()` once it is under `below`, or the least seen within `patience_s`.

    Right after a benchmark the kernel is still writing back its data and PostgreSQL
    checkpointing: work of ours that `background_cpu` cannot tell from other tenants', and
    that would slow the next benchmark's first seconds.
    """
    deadline = time.monotonic() + patience_s
    least = busy = background_cpu()
    if busy >= below and say is not None:
        say(f"waiting for the machine to settle ({busy:.0%} busy)")
    while busy >= below and time.monotonic() < deadline:
        busy = background_cpu()
        least = min(least, busy)
    return busy if busy < below else least


def run_one(entry: Benchmark, ctx: Context, settle_below: float = 1.0) -> Outcome:
    busy = settled_background_cpu(settle_below, say=ctx.progress)
    t0 = time.perf_counter()
    try:
        if entry.is_async:
            function = cast(Callable[[Context], Awaitable[Figures]], entry.function)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                figures: Iterable[Figure] = runner.run(_call_async(function, ctx))
        else:
            figures = cast(Figures, entry.function(ctx))
        collected = list(figures)
    except Exception:  # one failed benchmark is reported; the run goes on
        return Outcome(
            entry, time.perf_counter() - t0, error=traceback.format_exc(), background_cpu=busy
        )
    return Outcome(entry, time.perf_counter() - t0, collected, background_cpu=busy)


async def _call_async(function: Callable[[Context], Awaitable[Figures]], ctx: Context) -> Figures:
    return await function(ctx)
