"""The relay under faults: SIGKILLed at random moments and NATS restarted while writers append.

Run as a script, this file is the relay process the test kills:
`python test_relay_faults.py <service> <database_url> <nats_url> <events_table>`.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import nats as nats_client
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from nats.aio.client import Client

from smartid_events.envelope import CloudEvent, event_type, stream_name
from smartid_events.log import LogRow, events_table
from smartid_events.relay import Relay, RelaySettings
from smartid_events.store import event_store_env
from smartid_events.testing.plugin import NatsUnderTest, PostgresUnderTest

WRITERS = 8
ACCOUNTS_PER_WRITER = 25
EVENTS_PER_ACCOUNT = 10  # 8 × 25 × 10 = 2,000 events
KILLS = 6


class Account(Aggregate):
    @event("Opened")
    def __init__(self) -> None:
        self.balance = 0

    @event("Credited")
    def credit(self, amount: int) -> None:
        self.balance += amount


class Bank(Application[uuid.UUID]):
    name = "Bank"


def raw_translator(service: str) -> object:
    """Publishes every row without decoding it: the relay process needs no domain classes."""

    def translate(row: LogRow) -> CloudEvent:
        contract_id = str(row.originator_id)
        return CloudEvent(
            id=str(uuid.uuid5(uuid.UUID(contract_id), str(row.originator_version))),
            source=f"/{service}",
            type=event_type(service, "Recorded", 1),
            subject=contract_id,
            time=datetime.now(UTC),
            data={"version": row.originator_version},
            position=row.notification_id,
        )

    return translate


def relay_main(service: str, database_url: str, nats_url: str, table: str) -> None:
    settings = RelaySettings(
        service=service,
        database_url=database_url,
        nats_url=nats_url,
        table=table,
        translator=raw_translator(service),  # type: ignore[arg-type]
        batch_size=200,
        poll_interval_s=0.5,
        ack_timeout_s=2.0,
        retry_delay_s=0.05,
        max_retry_delay_s=0.5,
        nats_options={"reconnect_time_wait": 0.1},
    )
    asyncio.run(Relay(settings).run())


def start_relay(
    service: str, database_url: str, nats_url: str, table: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), service, database_url, nats_url, table],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def write(app: Bank, expected: list[tuple[str, int]], lock: threading.Lock) -> None:
    for _ in range(ACCOUNTS_PER_WRITER):
        account = Account()
        app.save(account)
        for amount in range(1, EVENTS_PER_ACCOUNT):
            account.credit(amount)
            app.save(account)
        with lock:
            expected.extend((str(account.id), v) for v in range(1, EVENTS_PER_ACCOUNT + 1))


async def read_stream(nats_url: str, service: str) -> list[CloudEvent]:
    nc = await nats_client.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream_name(service))
        events = []
        for seq in range(1, int(info.state.last_seq or 0) + 1):
            msg = await js.get_msg(stream_name(service), seq=seq)
            events.append(CloudEvent.from_json(msg.data or b""))
        return events
    finally:
        await nc.close()


class StreamWatch:
    """Counts the stream's messages over one connection that rides out the restart."""

    def __init__(self, nats_url: str, service: str) -> None:
        self.nats_url, self.service, self.last = nats_url, service, 0
        self.nc: Client | None = None

    async def count(self) -> int:
        try:
            if self.nc is None:
                self.nc = await nats_client.connect(
                    self.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.1
                )
            info = await self.nc.jetstream().stream_info(stream_name(self.service))
            self.last = int(info.state.messages or 0)
        except (nats_client.errors.Error, OSError, TimeoutError):
            pass  # not created yet, or NATS restarting: the last count stands
        return self.last

    async def reach(self, count: int, within: float) -> int:
        deadline = time.monotonic() + within
        for _ in range(int(within / 0.005)):
            if await self.count() >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        return self.last

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


@pytest.mark.integration
@pytest.mark.fault
@pytest.mark.asyncio
async def test_every_event_reaches_the_stream_once_and_in_order_despite_kills(
    postgres: PostgresUnderTest, nats: NatsUnderTest, database_url: str
) -> None:
    server = nats.require_own()
    service = f"faults{uuid.uuid4().hex[:6]}"
    seed = int(os.environ.get("SMARTID_FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}")
    app = Bank(env={**event_store_env(database_url, pool_size=WRITERS), "CREATE_TABLE": "y"})
    table = events_table(app.name)
    expected: list[tuple[str, int]] = []
    lock = threading.Lock()
    writers = [threading.Thread(target=write, args=(app, expected, lock)) for _ in range(WRITERS)]
    for w in writers:
        w.start()
    total = WRITERS * ACCOUNTS_PER_WRITER * EVENTS_PER_ACCOUNT
    # Random moments while the relay is publishing: when the stream reaches these counts.
    moments = sorted(rng.sample(range(50, total - 50), KILLS + 1))
    watch = StreamWatch(nats.url, service)
    relay = start_relay(service, database_url, nats.url, table)
    try:
        for i, moment in enumerate(moments):
            reached = await watch.reach(moment, within=30)
            if i == KILLS // 2:
                print(f"NATS restarted at {reached} in the stream")
                await asyncio.to_thread(server.restart)
                continue
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            print(f"relay killed at {reached} in the stream")
            relay = start_relay(service, database_url, nats.url, table)
        for w in writers:
            await asyncio.to_thread(w.join, 60)
        await watch.reach(total, within=60)
    finally:
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        await watch.close()
        app.close()

    published = await read_stream(nats.url, service)
    seen = Counter((e.subject, e.data["version"]) for e in published)
    lost = len(set(expected) - set(seen))
    duplicated = sum(n - 1 for n in seen.values())
    out_of_order = 0
    last_version: dict[str, int] = {}
    for e in published:
        if e.data["version"] <= last_version.get(e.subject, 0):
            out_of_order += 1
        last_version[e.subject] = e.data["version"]
    print(
        f"events {len(expected)}, published {len(published)}, lost {lost}, "
        f"duplicated {duplicated}, out of order {out_of_order}"
    )
    assert len(expected) == 2000
    assert (lost, duplicated, out_of_order) == (0, 0, 0)


if __name__ == "__main__":
    relay_main(*sys.argv[1:5])
