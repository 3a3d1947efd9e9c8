"""Fixtures for contract-svc's tests: the application on both event stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from contract_builders import TERMS

from contract_svc.application import Contracts
from smartid_events.store import event_store_env

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)


def open_contracts(env: dict[str, str]) -> Contracts:
    contracts = Contracts(env=env, clock=lambda: NOW)
    contracts.publish_terms(TERMS, "第1条 規約の制定目的 ...", date(2026, 4, 1))
    return contracts


@pytest.fixture(params=["memory", "postgres"])
def contracts(request: pytest.FixtureRequest) -> Iterator[Contracts]:
    if request.param == "memory":
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    else:
        env = event_store_env(request.getfixturevalue("database_url"))
    app = open_contracts(env)
    yield app
    app.close()


@pytest.fixture
def pg_contracts(database_url: str) -> Iterator[Contracts]:
    app = open_contracts(event_store_env(database_url))
    yield app
    app.close()
