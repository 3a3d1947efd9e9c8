"""billing-svc's plugs for the `smartid` CLI: its log source and its consumer."""

from __future__ import annotations

from typing import Any

import asyncpg

from billing_svc.application import Billing
from billing_svc.published import publish
from billing_svc.settings import Settings
from billing_svc.worker import contract_consumer
from smartid_events.consumer import Consumer
from smartid_events.log import LogSource, events_table, translator_from_application
from smartid_events.store import asyncpg_dsn
from smartid_events.tracking import ProcessContext


def log_source(database_url: str) -> LogSource:
    """`smartid stream rebuild --service billing`: the events table and the relay's translator."""
    billing = Billing(env=Settings(database_url=database_url).event_store_env())
    return LogSource(
        table=events_table(Billing.name),
        translator=translator_from_application(billing, lambda e, position: publish(e, position)),
    )


async def consumer(database_url: str, nats_url: str) -> Consumer[ProcessContext]:
    """`smartid parked replay --consumer billing-contract-events`."""
    settings = Settings(database_url=database_url, nats_url=nats_url)
    billing = Billing(env=settings.event_store_env(), issuer=settings.issuer())
    pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
        asyncpg_dsn(database_url), min_size=1, max_size=2
    )
    return contract_consumer(settings, billing, pool)
