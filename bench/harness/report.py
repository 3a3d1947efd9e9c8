"""The results: one row per figure (and per pending goal), printed as a table, saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness.goals import GOALS, GOALS_BY_KEY, REFERENCES
from bench.harness.runner import Outcome

# A load generator above this CPU share (of one core) may be what limits an HTTP figure.
CLIENT_CPU_WARNING = 0.85
# Other work using more than this share of the CPUs before a benchmark makes its figures low.
BACKGROUND_CPU_WARNING = 0.15


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    value: float | None
    unit: str
    baseline_key: str | None
    baseline: float | None
    ratio: float | None
    goal: str
    met: bool | None
    note: str
    benchmark: str | None
    detail: dict[str, Any]


def rows(outcomes: Sequence[Outcome], *, include_pending: bool) -> list[Row]:
    values = {f.key: f.value for o in outcomes for f in o.figures}
    result: list[Row] = []
    for outcome in outcomes:
        for figure in outcome.figures:
            goal = GOALS_BY_KEY.get(figure.key)
            baseline_key = figure.baseline or (goal.baseline if goal else None)
            baseline = values.get(baseline_key) if baseline_key else None
            ratio = figure.value / baseline if baseline else None
            notes: list[str] = []
            if figure.key in REFERENCES:
                notes.append(f"issue: {_fmt(REFERENCES[figure.key])}")
            cpu = figure.detail.get("client_cpu")
            if isinstance(cpu, float) and cpu > CLIENT_CPU_WARNING:
                notes.append(f"client CPU {cpu:.0%}: may be client-bound")
            errors = figure.detail.get("errors") or figure.detail.get("failed")
            if errors:
                notes.append(f"{errors} errors")
            if outcome.background_cpu > BACKGROUND_CPU_WARNING:
                notes.append(f"busy machine: {outcome.background_cpu:.0%} CPU in other work")
            result.append(
                Row(
                    key=figure.key,
                    label=figure.label,
                    value=figure.value,
                    unit=figure.unit,
                    baseline_key=baseline_key,
                    baseline=baseline,
                    ratio=ratio,
                    goal=goal.describe() if goal else "",
                    met=goal.met(figure.value, baseline) if goal else None,
                    note="; ".join(notes),
                    benchmark=outcome.benchmark.id,
                    detail=figure.detail,
                )
            )
    if include_pending:
        for goal in GOALS:
            if goal.key in values:
                continue
            baseline = values.get(goal.baseline) if goal.baseline else None
            result.append(
                Row(
                    key=goal.key,
                    label=goal.label,
                    value=None,
                    unit=goal.unit,
                    baseline_key=goal.baseline,
                    baseline=baseline,
                    ratio=None,
                    goal=goal.describe(),
                    met=None,
                    note=f"pending: {goal.component}",
                    benchmark=None,
                    detail={},
                )
            )
    return result


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _met(met: bool | None, goal: str) -> str:
    if not goal:
        return ""
    return {True: "yes", False: "NO", None: "—"}[met]


def _cells(row: Row) -> list[str]:
    return [
        row.label,
        _fmt(row.value),
        row.unit,
        _fmt(row.baseline) if row.baseline_key else "",
        f"{row.ratio:.0%}" if row.ratio is not None else "",
        row.goal,
        _met(row.met, row.goal),
        row.note,
    ]


HEADERS = ["figure", "value", "unit", "raw baseline", "ratio", "goal", "met?", "note"]


def print_table(table_rows: Sequence[Row], console: Console) -> None:
    table = Table(title="SmartID benchmarks", title_justify="left")
    for header in HEADERS:
        numeric = header in ("value", "raw baseline", "ratio")
        table.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for row in table_rows:
        style = "red" if row.met is False else ("dim" if row.value is None else None)
        table.add_row(*_cells(row), style=style)
    console.print(table)


def markdown(table_rows: Sequence[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|"
        + "|".join("---:" if h in ("value", "raw baseline", "ratio") else "---" for h in HEADERS)
        + "|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in table_rows]
    return "\n".join(lines)


def write_json(
    directory: Path,
    *,
    started: datetime,
    finished: datetime,
    quick: bool,
    selection: Sequence[str],
    machine: dict[str, str],
    outcomes: Sequence[Outcome],
    table_rows: Sequence[Row],
    problems: Sequence[str],
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"results-{started.strftime('%Y%m%dT%H%M%S')}.json"
    document = {
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "quick": quick,
        "selection": list(selection),
        "machine": machine,
        "benchmarks": [
            {
                "id": o.benchmark.id,
                "seconds": round(o.seconds, 3),
                "error": o.error,
                "background_cpu": round(o.background_cpu, 3),
                "figures": [f.key for f in o.figures],
            }
            for o in outcomes
        ],
        "figures": [asdict(row) for row in table_rows],
        "import_errors": list(problems),
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path
