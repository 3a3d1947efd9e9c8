"""Prometheus metrics of the HTTP API, in the process's default registry, and `/metrics`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

logger = logging.getLogger(__name__)

# Defined once per process: several apps in one process (tests) share it.
REQUEST_DURATION = Histogram(
    "smartid_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ("route", "method", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Requests that matched no route are counted under this label, not under their raw paths, so
# that scanners cannot blow up the number of series.
UNMATCHED_ROUTE = "<unmatched>"

# A helper process of the API's (contract-svc's writer, ADR 0022) reports its metric families
# through one of these, set on `app.state.metrics_sources`; `/metrics` shows them with its own.
MetricsSource = Callable[[], Awaitable[Sequence[Metric]]]
SOURCE_TIMEOUT_S = 2.0

# The histogram's child per (route, method, status): `labels()` validates, locks and builds
# its key on every call; a dict hit is what a request needs. One entry per series.
_series: dict[tuple[str, str, int], Any] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status)
    series = _series.get(key)
    if series is None:
        series = REQUEST_DURATION.labels(route=route, method=method, status=str(status))
        _series[key] = series
    series.observe(seconds)


async def metrics_endpoint(request: Request) -> Response:
    sources: Sequence[MetricsSource] = getattr(request.app.state, "metrics_sources", ())
    if not sources:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
    reported: list[Metric] = []
    for source in sources:
        try:
            reported += await asyncio.wait_for(source(), SOURCE_TIMEOUT_S)
        except Exception as error:  # this process's own metrics still get out
            logger.warning("a metrics source did not answer", extra={"error": repr(error)})
    return Response(merged_exposition(REGISTRY.collect(), reported), media_type=CONTENT_TYPE_LATEST)


def own_families(prefix: str = "smartid_") -> list[Metric]:
    """This process's `prefix` families that have samples: what a helper process reports."""
    return [
        family for family in REGISTRY.collect() if family.name.startswith(prefix) and family.samples
    ]


def merged_exposition(local: Iterable[Metric], reported: Iterable[Metric]) -> bytes:
    """One exposition of both: a family both know (defined here, measured there) is shown
    once, with the samples of each; a series in both is the reporter's."""
    families = {family.name: family for family in local}
    for family in reported:
        known = families.get(family.name)
        if known is None:
            families[family.name] = family
        elif known.type == family.type:
            theirs = {_series_key(sample) for sample in family.samples}
            ours = [sample for sample in known.samples if _series_key(sample) not in theirs]
            known.samples = [*ours, *family.samples]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


def _series_key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
