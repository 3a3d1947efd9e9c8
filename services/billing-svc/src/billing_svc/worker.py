"""billing-svc's worker: the consumer of contract-svc's events and the outbox relay."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import asyncpg

from billing_svc.application import Billing
from billing_svc.consumers import CONSUMER_NAME, UPSTREAM, contract_events_handler
from billing_svc.published import publish
from billing_svc.settings import Settings
from smartid_events.consumer import Consumer
from smartid_events.envelope import PARTITIONS
from smartid_events.log import events_table, translator_from_application
from smartid_events.logs import configure_logging
from smartid_events.parked import ParkedStore
from smartid_events.relay import Relay, RelaySettings
from smartid_events.store import asyncpg_dsn
from smartid_events.tracking import EventSourcedTracker, ProcessContext

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
    """The consumer and the relay until `stop` is set."""
    billing = await asyncio.to_thread(
        Billing, env=settings.event_store_env(), issuer=settings.issuer()
    )
    pool = await asyncpg.create_pool(asyncpg_dsn(settings.database_url), min_size=1, max_size=4)
    try:
        await asyncio.gather(
            contract_consumer(settings, billing, pool).run(stop),
            Relay(relay_settings(settings, billing)).run(stop),
        )
    finally:
        await pool.close()
        billing.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        logger.info("billing worker started")
        await run(settings, stop)
        logger.info("billing worker stopped")

    asyncio.run(serve())


if __name__ == "__main__":
    main()
