"""schemathesis against contract-svc's own OpenAPI: no 5xx, and responses fit the schema."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from smartid_events.auth import SCOPES, mint_token
from smartid_events.devstack import free_port
from smartid_events.testing.plugin import NatsUnderTest, PostgresUnderTest

SECRET = "f" * 48
TOKEN = mint_token(SECRET, sub="fuzz", role="operator", scopes=SCOPES)


@pytest.fixture(scope="module")
def contract_url(
    postgres: PostgresUnderTest, nats: NatsUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """contract-svc served by uvicorn, as in production, on a fresh database."""
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz") / "uvicorn.log"
    env = {
        **os.environ,
        "CONTRACT_DATABASE_URL": postgres.create_database("fuzz"),
        "CONTRACT_NATS_URL": nats.url,
        "CONTRACT_JWT_SECRET": SECRET,
        "CONTRACT_LOG_LEVEL": "WARNING",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "contract_svc.main:create_app",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("contract-svc did not start:\n" + Path(log).read_text())
            time.sleep(0.1)
        terms = {"version": "2026-04", "content": "規約", "effective_date": "2026-04-01"}
        httpx.post(f"{url}/v1/terms", json=terms, headers={"Authorization": f"Bearer {TOKEN}"})
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


EXAMPLES_PER_OPERATION = 15


def test_no_input_makes_contract_svc_fail_or_break_its_schema(contract_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{contract_url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query}: {response.text[:300]}"
                )
                return
            try:
                case.validate_response(response, checks=[response_schema_conformance])
            except AssertionError as e:
                failures.append(f"{case.method} {case.formatted_path}: {e}")

        exercise()
    assert operations >= 20
    assert not failures, "\n".join(failures[:20])
