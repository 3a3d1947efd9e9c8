"""Fixtures for contract-svc's tests: the application on both event stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contract_builders import open_contracts

from contract_svc.application import Contracts
from smartid_events.store import event_store_env


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
