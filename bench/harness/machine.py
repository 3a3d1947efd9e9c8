"""What machine a run happened on: CPUs, memory, CPU model, kernel and library versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

LIBRARIES = ("eventsourcing", "psycopg", "asyncpg", "nats-py", "fastapi", "uvicorn", "uvloop")


def machine() -> dict[str, str]:
    info = {
        "cpus": str(len(os.sched_getaffinity(0))),
        "cpu_model": _cpu_model(),
        "memory": _memory(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    for name in LIBRARIES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import psycopg

        # The pure-Python libpq wrapper costs ~3x CPU per row fetched versus psycopg-binary/-c.
        info["psycopg_impl"] = psycopg.pq.__impl__
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"
