"""The goals from the performance issue, and the raw figures it measured before any code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """What a figure must reach. A goal whose figure no benchmark produced is pending.

    `at_least` / `at_most` bound the value; `min_ratio` bounds value / baseline value, the
    baseline being the raw figure (by key) measured in the same run.
    """

    key: str
    label: str
    unit: str
    component: str
    at_least: float | None = None
    at_most: float | None = None
    baseline: str | None = None
    min_ratio: float | None = None

    def describe(self) -> str:
        parts: list[str] = []
        if self.at_least is not None:
            parts.append(f">= {_num(self.at_least)}")
        if self.at_most is not None:
            parts.append(f"<= {_num(self.at_most)}")
        if self.min_ratio is not None:
            parts.append(f">= {self.min_ratio:.0%} of raw")
        return ", ".join(parts)

    def met(self, value: float, baseline: float | None) -> bool | None:
        """True or False; None when the ratio cannot be judged for want of its baseline."""
        ok = True
        if self.at_least is not None:
            ok = ok and value >= self.at_least
        if self.at_most is not None:
            ok = ok and value <= self.at_most
        if self.min_ratio is not None:
            if not baseline:
                return None
            ok = ok and value / baseline >= self.min_ratio
        return ok


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:g}"


# Keys are what the benchmarks that will measure them must emit (see bench/README.md).
GOALS: tuple[Goal, ...] = (
    Goal("command.http.rps", "command path over HTTP, 32 clients", "commands/s", "contract-svc",
         at_least=2_000, baseline="raw.http.asyncpg.rps", min_ratio=0.60),
    Goal("command.http.p99", "command path over HTTP, 32 clients, p99", "ms", "contract-svc",
         at_most=50),
    Goal("relay.default.eps", "relay, default fsync", "events/s", "relay",
         at_least=20_000, baseline="raw.nats.pipelined.default", min_ratio=0.40),
    Goal("relay.always.eps", "relay, sync_interval always", "events/s", "relay",
         baseline="raw.nats.pipelined.always", min_ratio=0.80),
    Goal("relay.burst_lag", "relay lag back to 0 after a burst of 10,000", "s", "relay",
         at_most=1.0),
    Goal("e2e.commit_to_effect.p99", "command commit → consumer effect p99 at 200/s", "ms",
         "consumer kit", at_most=50),
    Goal("api.events.eps", "GET /v1/events", "events/s", "contract-svc",
         at_least=50_000, baseline="raw.eslog.read"),
    Goal("readmodel.rebuild.eps", "read-model rebuild", "events/s", "contract-svc",
         at_least=20_000, baseline="raw.eslog.read"),
    Goal("billing.run.cps", "billing run over 100,000 contracts", "contracts/s", "billing-svc",
         at_least=5_000),
    Goal("billing.run.peak_mib", "billing run over 100,000 contracts, peak memory", "MiB",
         "billing-svc", at_most=1024),
    Goal("billing.lag.p99", "contract commit → billing effect p99 at 200/s", "ms",
         "billing-svc", at_most=50),
    Goal("contract.load_10k.ms", "load a contract with 10,000 events (snapshots)", "ms",
         "contract-svc", at_most=5),
)  # fmt: skip

GOALS_BY_KEY: dict[str, Goal] = {goal.key: goal for goal in GOALS}

# The raw figures, measured on a 2-core machine like ours before any code existed.
REFERENCES: dict[str, float] = {
    "raw.pg.insert.c1": 3_300,
    "raw.pg.insert.c16": 8_700,
    "raw.es.save.t1": 1_100,
    "raw.es.save.t8": 1_100,
    "raw.http.es.rps": 860,
    "raw.http.es.p99": 48,
    "raw.http.asyncpg.rps": 3_200,
    "raw.nats.single.default": 7_000,
    "raw.nats.pipelined.default": 48_000,
    "raw.nats.pipelined.always": 4_500,
    "raw.eslog.read": 180_000,
}
