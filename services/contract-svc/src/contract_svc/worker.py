"""contract-svc's worker: outbox relay, read-model projection, due-change scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import create_async_engine

from contract_svc.application import Contracts
from contract_svc.domain import DueChange
from contract_svc.projections import ContractProjection, ReadModel
from contract_svc.published import publish_correlated
from contract_svc.settings import ContractSettings
from smartid_events.log import read_log, translator_from_application
from smartid_events.relay import Relay, RelaySettings
from smartid_events.store import asyncpg_dsn, serialized_startup, sqlalchemy_url
from smartid_events.supervise import supervise
from smartid_events.worker import run_worker

logger = logging.getLogger(__name__)

PROJECTION_BATCH = 500
SCHEDULE_INTERVAL_S = 60.0


def relay_settings(settings: ContractSettings, contracts: Contracts) -> RelaySettings:
    options: dict[str, Any] = {}
    if settings.nats_user:
        options = {"user": settings.nats_user, "password": settings.nats_password_value()}
    return RelaySettings(
        service="contract",
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        table=f"{Contracts.name}_events",
        translator=translator_from_application(contracts, publish_correlated),
        nats_options=options,
    )


async def run_projection(
    projection: ContractProjection, database_url: str, stop: asyncio.Event, poll_s: float = 0.2
) -> None:
    """Follow the log into the read model until `stop`."""
    import asyncpg

    read_model = ReadModel(projection.engine)
    await read_model.create()
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=2)
    try:
        while not stop.is_set():
            position = await read_model.position()
            rows = await read_log(pool, projection.table, position, PROJECTION_BATCH)
            if rows:
                await projection.apply(rows)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)
    finally:
        await pool.close()


async def record_due_changes(
    contracts: Contracts, read_model: ReadModel
) -> dict[UUID, list[DueChange]]:
    """One tick of the scheduler: record what falls due today (ADR 0011).

    The read model names the contracts with something due, so a tick reads a handful of
    aggregates rather than every contract.
    """
    today = contracts.today()
    recorded: dict[UUID, list[DueChange]] = {}
    for contract_id in await read_model.due_on(today):
        try:
            done = await asyncio.to_thread(contracts.apply_due_changes, today, [contract_id])
        except Exception:  # one contract's failure must not hold back the others
            logger.exception("due change failed", extra={"contract_id": str(contract_id)})
            continue
        for change in done.get(contract_id, []):
            logger.info(
                "due change recorded",
                extra={"contract_id": str(contract_id), "change": change.kind},
            )
        recorded.update(done)
    return recorded


async def run_scheduler(contracts: Contracts, read_model: ReadModel, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await record_due_changes(contracts, read_model)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SCHEDULE_INTERVAL_S)


async def run(settings: ContractSettings, stop: asyncio.Event) -> None:
    with serialized_startup(settings.database_url):
        contracts = Contracts(env=settings.event_store_env())
        engine = create_async_engine(sqlalchemy_url(settings.database_url), pool_size=4)
        projection = ContractProjection(contracts, engine)
        await ReadModel(engine).create()
    try:
        await asyncio.gather(
            supervise(
                "contract relay", lambda s: Relay(relay_settings(settings, contracts)).run(s), stop
            ),
            supervise(
                "contract projection",
                lambda s: run_projection(projection, settings.database_url, s),
                stop,
            ),
            supervise(
                "due-change scheduler",
                lambda s: run_scheduler(contracts, ReadModel(engine), s),
                stop,
            ),
        )
    finally:
        await engine.dispose()
        contracts.close()


def main() -> None:
    settings = ContractSettings()
    run_worker(settings, lambda stop: run(settings, stop))


if __name__ == "__main__":
    main()
