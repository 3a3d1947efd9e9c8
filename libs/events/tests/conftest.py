"""Fixtures of the plumbing tests: a service name of their own and a toy ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from plumbing_kit import Ledger, a_ledger


@pytest.fixture
def service() -> str:
    """A service name of its own per test: the NATS server is shared by the session."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    app = a_ledger(database_url)
    yield app
    app.close()
