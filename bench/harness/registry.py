"""The benchmark registry: `@benchmark(name, group)` functions that return figures."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from bench.harness.context import Context

Figures: TypeAlias = Iterable["Figure"]
BenchmarkFunction: TypeAlias = Callable[["Context"], "Figures | Awaitable[Figures]"]


@dataclass(frozen=True)
class Figure:
    """One measured figure.

    `key` is stable (goals and baselines refer to it, JSON consumers read it); `baseline` is the
    key of the raw figure this one is compared with, when the goal table does not already say.
    `detail` holds whatever else is worth keeping in the JSON (counts, durations, errors).
    """

    key: str
    label: str
    value: float
    unit: str
    baseline: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    name: str
    group: str
    function: BenchmarkFunction
    description: str

    @property
    def id(self) -> str:
        return f"{self.group}.{self.name}"

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def matches(self, token: str) -> bool:
        return token in (self.group, self.name, self.id)


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, group: str) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register a benchmark: a function (sync or async) taking a `Context`, returning figures.

    Run order is registration order; `python -m bench <group|name|group.name>` selects.
    """

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        entry = Benchmark(
            name=name,
            group=group,
            function=function,
            description=(inspect.getdoc(function) or "").split("\n", 1)[0],
        )
        if entry.id in _REGISTRY:
            raise ValueError(f"benchmark {entry.id} is registered twice")
        _REGISTRY[entry.id] = entry
        return function

    return register


def registered() -> list[Benchmark]:
    return list(_REGISTRY.values())
