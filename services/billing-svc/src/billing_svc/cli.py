"""`smartid-billing run --period YYYY-MM`: a billing run from the command line, with progress."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from billing_svc.application import Billing, RunProgress
from billing_svc.domain.errors import BillingError
from billing_svc.domain.periods import InvalidPeriodError
from billing_svc.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartid-billing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="issue a month's invoices (again: issues nothing new)")
    run.add_argument("--period", required=True, help="the month of service, YYYY-MM")
    run.add_argument("--batch-size", type=int, default=500, help="accounts per transaction")
    return parser


def run_billing(period: str, batch_size: int, console: Console) -> int:
    settings = Settings()
    billing = Billing(env=settings.event_store_env(), issuer=settings.issuer())
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[issued]:,} issued"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"billing {period}", total=None, issued=0)

            def advance(p: RunProgress) -> None:
                progress.update(task, completed=p.done, total=p.total, issued=p.issued)

            report = billing.run_billing(period, batch_size=batch_size, progress=advance)
    except (BillingError, InvalidPeriodError) as error:
        console.print(f"[red]refused:[/red] {error}")
        return 2
    finally:
        billing.close()
    seconds = time.perf_counter() - started
    rate = report.accounts / seconds if seconds > 0 else 0.0
    console.print(
        f"{report.period}: {report.accounts:,} accounts, {report.issued:,} invoices issued "
        f"in {seconds:.1f} s ({rate:,.0f} contracts/s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    if args.command == "run":
        return run_billing(args.period, args.batch_size, console)
    return 1


if __name__ == "__main__":
    sys.exit(main())
