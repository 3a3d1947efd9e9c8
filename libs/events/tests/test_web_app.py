"""The shared app: health, readiness, metrics, and the correlation id from request to logs."""

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from smartid_events.devstack import free_port
from smartid_events.logs import JsonFormatter, correlation_scope, current_correlation_id
from smartid_events.natsconn import connect
from smartid_events.settings import ServiceSettings
from smartid_events.testing.plugin import NatsUnderTest
from smartid_events.web import ReadinessCheck, create_service_app, nats_check, postgres_check
from smartid_events.web.metrics import merged_exposition


class WebSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WEBTEST_")
    service_name: ClassVar[str] = "webtest"


def an_app(checks: Mapping[str, ReadinessCheck] | None = None, **options: Any) -> FastAPI:
    app = create_service_app(
        WebSettings(jwt_secret=SecretStr("w" * 40)),
        title="web test",
        readiness_checks=checks,
        configure_logs=False,
        **options,
    )

    @app.get("/v1/items/{item_id}")
    async def read_item(item_id: str) -> dict[str, str | None]:
        return {"item": item_id, "correlation_id": current_correlation_id()}

    @app.post("/v1/items")
    def create_item() -> dict[str, str | None]:
        # A `def` route runs in the thread pool: the id must follow it there.
        return {"correlation_id": current_correlation_id()}

    return app


async def request(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


async def passes() -> None:
    return None


async def fails() -> None:
    raise ConnectionError("down")


@pytest.mark.asyncio
async def test_healthz_answers_without_a_token() -> None:
    response = await request(an_app(), "GET", "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.asyncio
async def test_readyz_is_ready_when_every_check_passes() -> None:
    response = await request(an_app({"postgres": passes, "nats": passes}), "GET", "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"postgres": "ok", "nats": "ok"}}


@pytest.mark.asyncio
async def test_readyz_is_503_naming_the_failing_check() -> None:
    response = await request(an_app({"postgres": passes, "nats": fails}), "GET", "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"postgres": "ok", "nats": "failing: ConnectionError"}


@pytest.mark.asyncio
async def test_readiness_checks_reach_a_real_postgresql_and_nats(
    database_url: str, nats: NatsUnderTest
) -> None:
    client = await connect(nats.url, name="readiness-test")
    try:
        checks = {"postgres": postgres_check(database_url), "nats": nats_check(lambda: client)}
        response = await request(an_app(checks), "GET", "/readyz")
    finally:
        await client.close()
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_readiness_fails_when_postgresql_does_not_answer() -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    response = await request(an_app({"postgres": postgres_check(nowhere)}), "GET", "/readyz")
    assert response.status_code == 503


@pytest.mark.asyncio
async def test_metrics_count_requests_by_route_template_method_and_status() -> None:
    app = an_app()
    await request(app, "GET", "/v1/items/metric-probe-1")
    response = await request(app, "GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    line = next(
        line
        for line in response.text.splitlines()
        if line.startswith("smartid_http_request_duration_seconds_count")
        and 'route="/v1/items/{item_id}"' in line
    )
    assert 'method="GET"' in line
    assert 'status="200"' in line
    assert "metric-probe-1" not in response.text


def helper_families(batches: float) -> list[Metric]:
    """What a helper process would report: a family this process defines but never measured,
    and one this process does not know."""
    defined_here = CounterMetricFamily(
        "smartid_probe_helper_batches", "Batches.", labels=["application"]
    )
    defined_here.add_metric(["probe"], batches)
    only_there = GaugeMetricFamily("smartid_probe_helper_only", "Known only there.")
    only_there.add_metric([], 7)
    return [defined_here, only_there]


PROBE_COUNTER = Counter("smartid_probe_helper_batches", "Batches.", ["application"])


@pytest.mark.asyncio
async def test_metrics_show_what_a_helper_process_reports_once_next_to_their_own() -> None:
    app = an_app()

    async def helper() -> list[Metric]:
        return helper_families(42)

    app.state.metrics_sources = [helper]
    await request(app, "GET", "/v1/items/metric-probe-2")
    response = await request(app, "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert [s.value for s in families["smartid_probe_helper_batches"].samples
            if s.name.endswith("_total")] == [42]  # fmt: skip
    assert families["smartid_probe_helper_only"].samples[0].value == 7
    assert "smartid_http_request_duration_seconds" in families
    assert response.text.count("# TYPE smartid_probe_helper_batches") == 1


def test_a_series_both_processes_have_is_shown_as_the_helper_reports_it() -> None:
    here = CounterMetricFamily("smartid_probe_both", "Both.", labels=["application"])
    here.add_metric(["probe"], 1)
    here.add_metric(["other"], 5)
    there = CounterMetricFamily("smartid_probe_both", "Both.", labels=["application"])
    there.add_metric(["probe"], 9)
    text = merged_exposition([here], [there]).decode()
    (family,) = text_string_to_metric_families(text)
    values = {s.labels["application"]: s.value for s in family.samples}
    assert values == {"probe": 9, "other": 5}


@pytest.mark.asyncio
async def test_metrics_still_answer_when_a_helper_process_does_not() -> None:
    app = an_app()

    async def gone() -> list[Metric]:
        raise ConnectionError("the helper is gone")

    app.state.metrics_sources = [gone]
    await request(app, "GET", "/v1/items/metric-probe-3")
    response = await request(app, "GET", "/metrics")
    assert response.status_code == 200
    assert "smartid_http_request_duration_seconds_count" in response.text


@pytest.mark.asyncio
async def test_a_given_correlation_id_reaches_the_handler_and_comes_back() -> None:
    headers = {"X-Correlation-Id": "req-42"}
    response = await request(an_app(), "POST", "/v1/items", headers=headers)
    assert response.json()["correlation_id"] == "req-42"
    assert response.headers["x-correlation-id"] == "req-42"


@pytest.mark.asyncio
async def test_a_request_without_a_correlation_id_gets_a_new_one() -> None:
    first = await request(an_app(), "GET", "/v1/items/a")
    second = await request(an_app(), "GET", "/v1/items/a")
    assert first.json()["correlation_id"] == first.headers["x-correlation-id"]
    assert first.headers["x-correlation-id"] != second.headers["x-correlation-id"]


@pytest.mark.asyncio
async def test_an_unreasonable_correlation_id_is_replaced() -> None:
    headers = {"X-Correlation-Id": "bad id\twith spaces"}
    response = await request(an_app(), "GET", "/v1/items/a", headers=headers)
    assert response.headers["x-correlation-id"] != "bad id\twith spaces"


@pytest.mark.asyncio
async def test_the_lifespan_the_service_gives_runs() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        events.append("started")
        yield
        events.append("stopped")

    app = an_app(lifespan=lifespan)
    async with app.router.lifespan_context(app):
        assert events == ["started"]
    assert events == ["started", "stopped"]


def test_log_lines_are_json_with_the_correlation_id_and_extras() -> None:
    record = logging.LogRecord("smartid.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.contract_id = "c1"
    with correlation_scope("corr-7"):
        line = json.loads(JsonFormatter("contract").format(record))
    assert line["message"] == "hello x"
    assert line["service"] == "contract"
    assert line["correlation_id"] == "corr-7"
    assert line["contract_id"] == "c1"
    assert current_correlation_id() is None
