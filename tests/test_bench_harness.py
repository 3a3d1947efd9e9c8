"""The benchmark harness: waiting for the machine to settle before a benchmark."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.harness import runner


def scripted(monkeypatch: pytest.MonkeyPatch, samples: list[float]) -> list[float]:
    left: Iterator[float] = iter(samples)
    taken: list[float] = []

    def background_cpu(seconds: float = 0.5) -> float:
        taken.append(next(left))
        return taken[-1]

    monkeypatch.setattr(runner, "background_cpu", background_cpu)
    return taken


def test_a_busy_machine_is_waited_for_until_it_settles(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = scripted(monkeypatch, [0.75, 0.40, 0.05, 0.9])
    said: list[str] = []
    assert runner.settled_background_cpu(0.15, patience_s=60, say=said.append) == 0.05
    assert taken == [0.75, 0.40, 0.05]
    assert said == ["waiting for the machine to settle (75% busy)"]


def test_a_machine_that_stays_busy_reports_the_least_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted(monkeypatch, [0.75, 0.30, 0.60])
    assert runner.settled_background_cpu(0.15, patience_s=0) == 0.75
    scripted(monkeypatch, [0.75, 0.30, 0.60, 0.5])
    clock = iter([0.0, 1.0, 2.0, 99.0])
    monkeypatch.setattr(runner.time, "monotonic", lambda: next(clock))
    assert runner.settled_background_cpu(0.15, patience_s=10) == 0.30


def test_a_quiet_machine_is_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = scripted(monkeypatch, [0.02, 0.9])
    assert runner.settled_background_cpu(0.15) == 0.02
    assert taken == [0.02]
