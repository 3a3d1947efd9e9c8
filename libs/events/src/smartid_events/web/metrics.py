"""Prometheus metrics of the HTTP API, in the process's default registry, and `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest

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


def metrics_endpoint() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
