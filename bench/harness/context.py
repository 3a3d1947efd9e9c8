"""What a benchmark receives: databases, NATS URLs, its time budget and a progress line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.harness.servers import Servers

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    """Handed to every benchmark; servers are shared by the whole run.

    Budgets: a benchmark asks `seconds(full)` / `count(full)` for each measurement so that
    `--quick` shrinks every loop; each loop must stop at whichever bound comes first.
    """

    quick: bool
    work_dir: Path
    servers: Servers
    report_progress: Callable[[str], None]

    def database(self, prefix: str) -> str:
        """A fresh, empty database on the run's PostgreSQL; returns its URL."""
        return self.servers.create_database(prefix)

    @property
    def admin_database_url(self) -> str:
        return self.servers.admin_url

    @property
    def nats_url(self) -> str:
        """The run's nats-server (JetStream, default fsync)."""
        return self.servers.nats_url()

    @property
    def nats_sync_always_url(self) -> str:
        """A second nats-server with `sync_interval: always`, started on first use."""
        return self.servers.nats_url(sync_always=True)

    def seconds(self, full: float) -> float:
        """The duration of one measurement: `full`, or a short one with `--quick`."""
        return min(full, max(1.0, full / 5)) if self.quick else full

    def count(self, full: int) -> int:
        """A bound on a count (events seeded, messages published), smaller with `--quick`."""
        return max(1, full // 10) if self.quick else full

    def progress(self, message: str) -> None:
        self.report_progress(message)
