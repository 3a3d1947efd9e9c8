"""PostgreSQL and nats-servers for a run: started once from the devstack, or taken from env URLs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import nats
import psycopg

from smartid_events.devstack import NatsServer, PostgresServer
from smartid_events.devstack.nats import nats_server_binary

DATABASE_URL_ENV = "SMARTID_BENCH_DATABASE_URL"
NATS_URL_ENV = "SMARTID_BENCH_NATS_URL"
NATS_SYNC_ALWAYS_URL_ENV = "SMARTID_BENCH_NATS_SYNC_ALWAYS_URL"


class Servers:
    """Each server starts on first use and stops in `close()`; env URLs are used as they are."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._postgres: PostgresServer | None = None
        self._admin_url: str | None = os.environ.get(DATABASE_URL_ENV) or None
        self._nats: dict[bool, NatsServer] = {}
        self._nats_urls: dict[bool, str] = {}
        if url := os.environ.get(NATS_URL_ENV):
            self._nats_urls[False] = url
        if url := os.environ.get(NATS_SYNC_ALWAYS_URL_ENV):
            self._nats_urls[True] = url

    @property
    def admin_url(self) -> str:
        """A URL whose user may create databases."""
        if self._admin_url is None:
            server = PostgresServer(self.work_dir / "pg", durable=True)
            server.start()
            self._postgres = server
            self._admin_url = server.url
        return self._admin_url

    def create_database(self, prefix: str) -> str:
        name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}".replace("-", "_")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}"

    def nats_url(self, *, sync_always: bool = False) -> str:
        if sync_always not in self._nats_urls:
            name = "nats-always" if sync_always else "nats"
            server = NatsServer(self.work_dir / name, sync_always=sync_always)
            server.start()
            self._nats[sync_always] = server
            self._nats_urls[sync_always] = server.url
        return self._nats_urls[sync_always]

    def versions(self) -> dict[str, str]:
        """Versions of the servers this run used (only those that were started or given)."""
        found: dict[str, str] = {}
        if self._admin_url is not None:
            with psycopg.connect(self._admin_url) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                found["postgresql"] = str(row[0]) if row else "?"
                fsync = conn.execute("SHOW fsync").fetchone()
                commit = conn.execute("SHOW synchronous_commit").fetchone()
                found["postgresql_durability"] = (
                    f"fsync={fsync[0] if fsync else '?'}, "
                    f"synchronous_commit={commit[0] if commit else '?'}"
                )
        if self._nats_urls:
            url = next(iter(self._nats_urls.values()))
            found["nats-server"] = asyncio.run(_nats_version(url))
        elif self._nats:
            found["nats-server"] = subprocess.run(
                [nats_server_binary(), "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
        return found

    def close(self) -> None:
        for server in self._nats.values():
            server.stop()
        self._nats.clear()
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None


async def _nats_version(url: str) -> str:
    nc = await nats.connect(url)
    try:
        return str(nc.connected_server_version)
    finally:
        await nc.close()
