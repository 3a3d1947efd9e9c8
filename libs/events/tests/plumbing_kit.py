"""Builders for the plumbing tests: a toy event-sourced ledger and a stream reader."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import nats
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from smartid_events.envelope import CloudEvent, event_type, stream_name
from smartid_events.log import LogSource, Translator, events_table, translator_from_application
from smartid_events.store import event_store_env


class Account(Aggregate):
    """A toy aggregate: its id plays the contract id."""

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Credited")
    def credit(self, amount: int) -> None:
        self.balance += amount


class Ledger(Application[uuid.UUID]):
    name = "Ledger"


def a_ledger(database_url: str) -> Ledger:
    return Ledger(env=event_store_env(database_url))


def ledger_publisher(service: str) -> Any:
    """The ledger's published language: every event, with a stable id for de-duplication."""

    def publish(domain_event: Any, position: int) -> CloudEvent | None:
        name = type(domain_event).__name__
        data = {"version": domain_event.originator_version}
        if name == "Credited":
            data["amount"] = domain_event.amount
        return CloudEvent(
            id=str(uuid.uuid5(domain_event.originator_id, str(domain_event.originator_version))),
            source=f"/{service}",
            type=event_type(service, name, 1),
            subject=str(domain_event.originator_id),
            time=datetime.now(UTC),
            data=data,
            position=position,
        )

    return publish


def ledger_source(app: Ledger, service: str) -> LogSource:
    translator: Translator = translator_from_application(app, ledger_publisher(service))
    return LogSource(table=events_table(app.name), translator=translator)


async def stream_messages(nats_url: str, service: str) -> list[tuple[int, str, Any, bytes]]:
    """Every message of a service's stream: (stream seq, subject, headers, body), in order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream_name(service))
        out = []
        for seq in range(int(info.state.first_seq or 1), int(info.state.last_seq or 0) + 1):
            msg = await js.get_msg(stream_name(service), seq=seq)
            out.append((seq, msg.subject or "", msg.headers or {}, msg.data or b""))
        return out
    finally:
        await nc.close()


def an_event(
    service: str, contract_id: str, name: str, position: int, data: dict[str, Any], version: int = 1
) -> CloudEvent:
    return CloudEvent(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{service}/{position}")),
        source=f"/{service}",
        type=event_type(service, name, version),
        subject=contract_id,
        time=datetime.now(UTC),
        data=data,
        position=position,
    )


async def publish_events(nats_url: str, service: str, events: list[CloudEvent]) -> None:
    """Publish events as the relay would (into a stream created if missing)."""
    from smartid_events.relay import ensure_stream, stream_config

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream_config(service))
        for e in events:
            await js.publish(e.nats_subject, e.to_json(), headers=e.headers())
    finally:
        await nc.close()
