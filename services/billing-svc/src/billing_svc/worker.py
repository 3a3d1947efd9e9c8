"""billing-svc's worker: the consumer of contract-svc's events and the outbox relay."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from billing_svc.application import Billing
from billing_svc.consumers import CONSUMER_NAME, UPSTREAM, contract_events_handler
from billing_svc.published import publish
from billing_svc.settings import Settings
from smartid_events.consumer import Consumer
from smartid_events.envelope import PARTITIONS
from smartid_events.log import events_table, translator_from_application
from smartid_events.parked import ParkedStore
from smartid_events.relay import Relay, RelaySettings
from smartid_events.store import asyncpg_dsn, serialized_startup
from smartid_events.supervise import supervise
from smartid_events.tracking import EventSourcedTracker, ProcessContext, ensure_positions_table
from smartid_events.worker import run_worker

logger = logging.getLogger(__name__)


def nats_options(settings: Settings) -> dict[str, Any]:
    if not settings.nats_user:
        return {}
    return {"user": settings.nats_user, "password": settings.nats_password_value()}


def relay_settings(settings: Settings, billing: Billing) -> RelaySettings:
    return RelaySettings(
        service="billing",
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        table=events_table(Billing.name),
        translator=translator_from_application(
            billing, lambda event, position: publish(event, position)
        ),
        nats_options=nats_options(settings),
    )


def contract_consumer(
    settings: Settings, billing: Billing, pool: asyncpg.Pool[Any]
) -> Consumer[ProcessContext]:
    """`billing-contract-events`: every partition of SMARTID_CONTRACT, exactly once each."""
    return Consumer(
        name=CONSUMER_NAME,
        upstream=UPSTREAM,
        partitions=range(PARTITIONS),
        handler=contract_events_handler(billing),
        tracker=EventSourcedTracker(billing),
        parked=ParkedStore(pool),
        nats_url=settings.nats_url,
        nats_options=nats_options(settings),
    )


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """The consumer and the relay until `stop` is set; each restarts when it fails."""
    with serialized_startup(settings.database_url):
        billing = await asyncio.to_thread(
            Billing, env=settings.event_store_env(), issuer=settings.issuer()
        )
        pool = await asyncpg.create_pool(asyncpg_dsn(settings.database_url), min_size=1, max_size=4)
        await ParkedStore(pool).setup()
        await ensure_positions_table(pool)
    try:
        await asyncio.gather(
            supervise(
                "billing consumer",
                lambda s: contract_consumer(settings, billing, pool).run(s),
                stop,
            ),
            supervise(
                "billing relay", lambda s: Relay(relay_settings(settings, billing)).run(s), stop
            ),
        )
    finally:
        await pool.close()
        billing.close()


def main() -> None:
    settings = Settings()
    run_worker(settings, lambda stop: run(settings, stop))


if __name__ == "__main__":
    main()
