"""`python -m bench [--quick] [group|name ...]`: run the benchmarks and print their figures."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from bench.harness.context import REPO_ROOT, Context
from bench.harness.machine import machine
from bench.harness.report import BACKGROUND_CPU_WARNING, markdown, print_table, rows, write_json
from bench.harness.runner import Outcome, discover, run_one, select
from bench.harness.servers import Servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="groups, names or group.name to run (all)")
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1/5 the time)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "var" / "bench", help="where results go"
    )
    args = parser.parse_args(argv)

    err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)
    out = Console() if sys.stdout.isatty() else Console(width=200)
    problems = discover()
    for problem in problems:
        err.print(f"[yellow]could not import {problem}[/yellow]")
    selected = select(args.names)
    if args.list:
        for entry in selected:
            out.print(f"{entry.id:28} {entry.description}")
        return 0

    started = datetime.now(UTC)
    before = machine()  # the load average before the run: other work skews every figure
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="smartid-bench-") as tmp:
        work_dir = Path(tmp)
        servers = Servers(work_dir)
        try:
            for index, entry in enumerate(selected, 1):
                prefix = f"[{index}/{len(selected)}] {entry.id}"
                t0 = time.perf_counter()

                def progress(message: str, prefix: str = prefix, t0: float = t0) -> None:
                    err.print(f"{prefix} [dim]+{time.perf_counter() - t0:4.1f}s[/dim] {message}")

                progress("starting")
                ctx = Context(args.quick, work_dir, servers, progress)
                outcome = run_one(entry, ctx, settle_below=BACKGROUND_CPU_WARNING)
                outcomes.append(outcome)
                if outcome.error:
                    err.print(f"[red]{prefix} failed[/red]\n{outcome.error}")
                else:
                    progress(f"done: {len(outcome.figures)} figure(s)")
                if outcome.background_cpu > BACKGROUND_CPU_WARNING:
                    progress(
                        f"[yellow]the machine was {outcome.background_cpu:.0%} busy with other "
                        "work before this benchmark: its figures are low[/yellow]"
                    )
            info = before | servers.versions()
        finally:
            servers.close()
    finished = datetime.now(UTC)

    table_rows = rows(outcomes, include_pending=not args.names)
    print_table(table_rows, out)
    if args.markdown:
        out.print(markdown(table_rows), markup=False, highlight=False, soft_wrap=True)
    path = write_json(
        args.out,
        started=started,
        finished=finished,
        quick=args.quick,
        selection=args.names,
        machine=info,
        outcomes=outcomes,
        table_rows=table_rows,
        problems=problems,
    )
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    err.print(
        f"machine: {info.get('cpus')} CPUs, {info.get('memory')}, {info.get('cpu_model')}; "
        f"results: {shown}; {(finished - started).total_seconds():.0f} s"
        f"{' (quick)' if args.quick else ''}"
    )
    failed = [o.benchmark.id for o in outcomes if o.error]
    if failed:
        err.print(f"[red]failed: {', '.join(failed)}[/red]")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
