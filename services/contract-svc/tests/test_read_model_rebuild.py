"""Rebuilding the contracts read model from the log gives what the live projection built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from contract_builders import a_suspended_contract, a_terminated_contract, an_active_contract
from sqlalchemy import select

from contract_svc.application import Contracts
from contract_svc.plumbing import OwnedContractProjection, projection
from contract_svc.projections import summaries
from smartid_events.log import read_log, rebuild_read_model
from smartid_events.store import asyncpg_dsn, event_store_env


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    created = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=2)
    yield created
    await created.close()


def some_history(database_url: str) -> None:
    """Contracts in every state, each changed across several saves (and so several batches)."""
    contracts = Contracts(env=event_store_env(database_url))
    try:
        made = [an_active_contract(), a_suspended_contract(), a_terminated_contract()]
        made += [an_active_contract(id_count=n) for n in range(4, 12)]
        contracts.save(*made)
        for round_ in range(3):
            for contract in made[3:]:
                contract.change_id_count(contract.id_count + 1, date(2026, 7 + round_, 1))
            contracts.save(*made[3:])
    finally:
        contracts.close()


async def rows_of(read_model: OwnedContractProjection) -> list[Any]:
    async with read_model.engine.connect() as conn:
        result = await conn.execute(select(summaries).order_by(summaries.c.id))
        return [tuple(row) for row in result.all()]


@pytest.mark.asyncio
async def test_a_rebuilt_read_model_has_the_live_projections_rows(
    database_url: str, pool: asyncpg.Pool[Any]
) -> None:
    some_history(database_url)
    live = await projection(database_url)
    try:
        await live.reset()
        position = 0
        while rows := await read_log(pool, live.table, position, 7):
            await live.apply(rows)
            position = rows[-1].notification_id
        built_live = await rows_of(live)
    finally:
        await live.close()

    rebuilt = await projection(database_url)
    try:
        applied = await rebuild_read_model(rebuilt, pool, batch_size=5)
        assert await rows_of(rebuilt) == built_live
        assert applied == position
        assert rebuilt.loads == 0
    finally:
        await rebuilt.close()
    assert len(built_live) == 11
