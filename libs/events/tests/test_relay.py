"""The relay publishes a service's log to its stream in order, once, and resumes where it was."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import nats
import pytest
from plumbing_kit import Account, Ledger, ledger_source, stream_messages
from prometheus_client import REGISTRY

from smartid_events.envelope import HEADER_MSG_ID, HEADER_POSITION, CloudEvent
from smartid_events.log import LogRow
from smartid_events.relay import Relay, RelaySettings, rebuild_stream, relay_lock_key
from smartid_events.store import asyncpg_dsn
from smartid_events.testing.plugin import NatsUnderTest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def settings_for(ledger: Ledger, service: str, database_url: str, nats_url: str) -> RelaySettings:
    source = ledger_source(ledger, service)
    return RelaySettings(
        service=service,
        database_url=database_url,
        nats_url=nats_url,
        table=source.table,
        translator=source.translator,
        poll_interval_s=0.2,
        ack_timeout_s=2.0,
    )


def some_accounts(ledger: Ledger, accounts: int, credits: int) -> list[Account]:
    made = []
    for i in range(accounts):
        account = Account(owner=f"owner {i}")
        for amount in range(credits):
            account.credit(amount)
        ledger.save(account)
        made.append(account)
    return made


async def wait_for_count(
    nats_url: str, service: str, count: int, within: float = 20.0
) -> list[tuple[int, str, Any, bytes]]:
    deadline = time.monotonic() + within
    while True:
        try:
            messages = await stream_messages(nats_url, service)
        except (nats.errors.Error, OSError):
            messages = []  # no stream yet
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        await asyncio.sleep(0.05)


async def test_every_event_is_published_once_in_log_order(
    ledger: Ledger, service: str, database_url: str, nats: NatsUnderTest
) -> None:
    some_accounts(ledger, accounts=5, credits=3)
    stop = asyncio.Event()
    relay = asyncio.create_task(
        Relay(settings_for(ledger, service, database_url, nats.url)).run(stop)
    )
    messages = await wait_for_count(nats.url, service, 20)
    stop.set()
    await relay
    positions = [int(h[HEADER_POSITION]) for _, _, h, _ in messages]
    assert positions == sorted(positions) and len(set(positions)) == 20
    first = CloudEvent.from_json(messages[0][3])
    assert messages[0][2][HEADER_MSG_ID] == first.id
    assert messages[0][1] == first.nats_subject


async def test_events_saved_while_running_are_published_without_waiting_for_the_poll(
    ledger: Ledger, service: str, database_url: str, nats: NatsUnderTest
) -> None:
    settings = settings_for(ledger, service, database_url, nats.url)
    settings.poll_interval_s = 60.0  # only a NOTIFY can wake it in time
    stop = asyncio.Event()
    relay = asyncio.create_task(Relay(settings).run(stop))
    some_accounts(ledger, accounts=1, credits=0)
    await wait_for_count(nats.url, service, 1)
    await asyncio.sleep(0)  # let the relay reach its idle wait before the next insert
    some_accounts(ledger, accounts=2, credits=1)
    messages = await wait_for_count(nats.url, service, 5, within=10)
    stop.set()
    await relay
    assert len(messages) == 5


async def test_a_restarted_relay_resumes_without_republishing(
    ledger: Ledger, service: str, database_url: str, nats: NatsUnderTest
) -> None:
    settings = settings_for(ledger, service, database_url, nats.url)
    some_accounts(ledger, accounts=3, credits=1)
    await Relay(settings).catch_up()
    some_accounts(ledger, accounts=2, credits=0)
    await Relay(settings).catch_up()
    messages = await stream_messages(nats.url, service)
    assert len(messages) == 8
    assert [m[0] for m in messages] == list(range(1, 9))


async def test_rows_the_translator_declines_are_skipped(
    ledger: Ledger, service: str, database_url: str, nats: NatsUnderTest
) -> None:
    settings = settings_for(ledger, service, database_url, nats.url)
    publish_all = settings.translator

    def only_openings(row: LogRow) -> CloudEvent | None:
        return publish_all(row) if row.originator_version == 1 else None

    settings.translator = only_openings
    some_accounts(ledger, accounts=3, credits=2)
    await Relay(settings).catch_up()
    messages = await stream_messages(nats.url, service)
    assert len(messages) == 3


async def test_a_second_relay_stands_by_while_the_first_holds_the_lock(
    ledger: Ledger, service: str, database_url: str, nats: NatsUnderTest
) -> None:
    settings = settings_for(ledger, service, database_url, nats.url)
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    await holder.execute("SELECT pg_advisory_lock($1)", relay_lock_key(service))
    some_accounts(ledger, accounts=1, credits=0)
    stop = asyncio.Event()
    standby = asyncio.create_task(Relay(settings).run(stop))
    # The stand-by polls the lock every 0.2 s; a few polls pass while nothing is published.
    for _ in range(3):
        await asyncio.sleep(0.2)
        assert not standby.done()
    nc_messages = await wait_for_count(nats.url, service, 1, within=0.1)
    assert nc_messages == []
    await holder.close()
    messages = await wait_for_count(nats.url, service, 1)
    stop.set()
    await standby
    assert len(messages) == 1


async def test_rebuilding_a_stream_republishes_the_whole_log(
    ledger: Ledger, service: str, database_url: str, nats: NatsUnderTest
) -> None:
    settings = settings_for(ledger, service, database_url, nats.url)
    some_accounts(ledger, accounts=4, credits=1)
    await Relay(settings).catch_up()
    head = await rebuild_stream(settings)
    messages = await stream_messages(nats.url, service)
    assert head == 8
    assert [int(h[HEADER_POSITION]) for _, _, h, _ in messages] == list(range(1, 9))


async def test_the_relay_reports_what_it_published_and_its_lag(
    ledger: Ledger, service: str, database_url: str, nats: NatsUnderTest
) -> None:
    some_accounts(ledger, accounts=2, credits=2)
    await Relay(settings_for(ledger, service, database_url, nats.url)).catch_up()
    published = REGISTRY.get_sample_value("smartid_relay_published_total", {"service": service})
    lag = REGISTRY.get_sample_value("smartid_relay_lag", {"service": service})
    assert (published, lag) == (6, 0)
