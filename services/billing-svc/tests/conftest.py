"""Fixtures for billing-svc's tests: the application on both event stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing_svc.application import Billing
from billing_svc.issuer import Issuer
from smartid_events.store import event_store_env

ISSUER = Issuer("セコム株式会社", "T7010001008844")


@pytest.fixture(params=["memory", "postgres"])
def billing(request: pytest.FixtureRequest) -> Iterator[Billing]:
    if request.param == "memory":
        app = Billing(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, issuer=ISSUER)
    else:
        url = request.getfixturevalue("database_url")
        app = Billing(env=event_store_env(url), issuer=ISSUER)
    yield app
    app.close()
