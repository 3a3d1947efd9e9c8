"""`smartid` plumbing commands: schemas check, stream rebuild, parked list, read-model rebuild."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import pytest
from plumbing_kit import Account, Ledger, a_ledger, ledger_source, stream_messages

from smartid_events.cli import main
from smartid_events.log import LogRow, LogSource, events_table
from smartid_events.parked import ParkedMessage, ParkedStore
from smartid_events.store import asyncpg_dsn
from smartid_events.testing.plugin import NatsUnderTest

OPENED: list[Ledger] = []


def ledger_log_source(database_url: str) -> LogSource:
    """A service's log source as a plug-in: `--source test_cli_events:ledger_log_source`."""
    app = a_ledger(database_url)
    OPENED.append(app)
    return ledger_source(app, "cliledger")


class AccountsSeen:
    """A read model: how many events each account has."""

    table = events_table("Ledger")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def reset(self) -> None:
        await self.pool.execute(
            "CREATE TABLE IF NOT EXISTS accounts_seen (id text PRIMARY KEY, events int)"
        )
        await self.pool.execute("TRUNCATE accounts_seen")

    async def apply(self, rows: Sequence[LogRow]) -> None:
        await self.pool.executemany(
            "INSERT INTO accounts_seen VALUES ($1, 1) "
            "ON CONFLICT (id) DO UPDATE SET events = accounts_seen.events + 1",
            [(str(r.originator_id),) for r in rows],
        )

    async def close(self) -> None:
        await self.pool.close()


async def accounts_seen(database_url: str) -> AccountsSeen:
    return AccountsSeen(
        await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=1)
    )


@pytest.fixture(autouse=True)
def close_opened() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def some_history(ledger: Ledger) -> None:
    for i in range(3):
        account = Account(owner=f"owner {i}")
        account.credit(10)
        ledger.save(account)


def test_schemas_check_passes_when_the_checked_in_files_are_current() -> None:
    assert main(["schemas", "export", "--check"]) == 0


def test_stream_rebuild_republishes_a_service_log(
    ledger: Ledger, database_url: str, nats: NatsUnderTest
) -> None:
    some_history(ledger)
    args = ["stream", "rebuild", "--service", "cliledger", "--database-url", database_url]
    args += ["--nats-url", nats.url, "--source", "test_cli_events:ledger_log_source"]
    assert main(args) == 0
    assert len(asyncio.run(stream_messages(nats.url, "cliledger"))) == 6


def test_read_model_rebuild_starts_from_scratch_and_reports_a_rate(
    ledger: Ledger, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    some_history(ledger)
    args = ["read-model", "rebuild", "--projection", "test_cli_events:accounts_seen"]
    assert main([*args, "--database-url", database_url]) == 0
    assert main([*args, "--database-url", database_url]) == 0  # rebuilt, not added to

    async def seen() -> list[Any]:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            return [r["events"] for r in await conn.fetch("SELECT events FROM accounts_seen")]
        finally:
            await conn.close()

    assert asyncio.run(seen()) == [2, 2, 2]
    assert "6 events" in capsys.readouterr().out


def test_parked_list_shows_each_parked_message_with_its_reason(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def park_one() -> None:
        pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=1)
        store = ParkedStore(pool)
        await store.setup()
        await store.park(
            ParkedMessage(
                "billing-x", 3, "c-1", 42, "smartid.contract.p03.c-1.Approved", {}, b"{", "bad json"
            )
        )
        await pool.close()

    asyncio.run(park_one())
    assert main(["parked", "list", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert "billing-x" in out and "42" in out and "bad json" in out
