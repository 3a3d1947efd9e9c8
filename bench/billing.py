"""billing-svc: a monthly billing run over many active contracts, contracts/s and peak memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import date

from bench.harness import Context, Figure, benchmark
from billing_svc.application import Billing, RunProgress
from billing_svc.domain import facts
from billing_svc.domain.account import Account
from smartid_events.store import event_store_env

CONTRACTS = 100_000
SEED_BATCH = 2_000
PERIOD = "2026-05"
ISSUED_ON = date(2026, 6, 1)
CHILD_TIMEOUT_S = 600.0


def seed(database_url: str, count: int, progress: Context | None = None) -> None:
    """`count` contracts applied and approved on 2026-05-01, saved a batch per transaction."""
    billing = Billing(env=event_store_env(database_url))
    try:
        for offset in range(0, count, SEED_BATCH):
            accounts = []
            for n in range(offset, min(offset + SEED_BATCH, count)):
                account = Account.open(
                    f"contract-{n:07d}",
                    facts.Applied("株式会社ベンチ", 550, 1 + n % 50, None, tenant_id=f"t-{n}"),
                )
                account.record(facts.Approved(date(2026, 5, 1 + n % 28)))
                accounts.append(account)
            billing.save(*accounts)
            if progress is not None and (offset // SEED_BATCH) % 10 == 9:
                progress.progress(f"seeded {offset + len(accounts):,} contracts")
    finally:
        billing.close()


def run_once(database_url: str) -> dict[str, float]:
    """One billing run in this process: its figures, with this process's peak RSS."""
    billing = Billing(env=event_store_env(database_url))
    last = [time.perf_counter()]

    def report(p: RunProgress) -> None:
        if time.perf_counter() - last[0] >= 2.0 or p.done == p.total:
            last[0] = time.perf_counter()
            print(json.dumps({"done": p.done, "total": p.total}), file=sys.stderr, flush=True)

    try:
        started = time.perf_counter()
        result = billing.run_billing(PERIOD, issued_on=ISSUED_ON, progress=report)
        seconds = time.perf_counter() - started
    finally:
        billing.close()
    # Linux reports ru_maxrss in KiB.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "accounts": result.accounts,
        "issued": result.issued,
        "seconds": seconds,
        "peak_mib": peak_mib,
    }


@benchmark("run", group="billing")
def billing_run(ctx: Context) -> list[Figure]:
    """Billing run: 100,000 active contracts invoiced for a month, contracts/s and peak RSS."""
    count = ctx.count(CONTRACTS)
    url = ctx.database("billing")
    ctx.progress(f"seeding {count:,} active contracts")
    seed(url, count, ctx)
    ctx.progress(f"billing {count:,} contracts in a child process (its own peak memory)")
    # A child process, so that its peak RSS is the run's alone and not the harness's.
    child = subprocess.run(
        [sys.executable, "-m", "bench.billing", url],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=True,
        env={**os.environ},
    )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    if figures["issued"] != count:
        raise AssertionError(f"{figures['issued']:,} invoices issued for {count:,} contracts")
    rate = figures["accounts"] / figures["seconds"]
    detail = {"contracts": count, "seconds": round(figures["seconds"], 2), "batch_size": 500}
    return [
        Figure("billing.run.cps", f"billing run over {count:,} contracts", rate, "contracts/s",
               detail=detail),
        Figure("billing.run.peak_mib", f"billing run over {count:,} contracts, peak RSS",
               figures["peak_mib"], "MiB", detail=detail),
    ]  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run_once(sys.argv[1])), flush=True)
