"""Future-dated changes take effect on their date; the scheduler finds them via the read model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from contract_builders import START, TERMS, a_contractor, an_active_contract
from sqlalchemy.ext.asyncio import create_async_engine

from contract_svc.application import Contracts
from contract_svc.domain import Initiator, Plan, Status, next_due_date
from contract_svc.projections import ContractProjection, ReadModel
from contract_svc.worker import record_due_changes
from smartid_events.log import read_log
from smartid_events.store import asyncpg_dsn, event_store_env, sqlalchemy_url

# --- next_due_date: pure


def test_a_contract_with_nothing_decided_has_nothing_due() -> None:
    assert next_due_date(an_active_contract()) is None


def test_a_future_suspension_is_due_on_its_start_date() -> None:
    contract = an_active_contract()
    contract.suspend("art11.1.2", date(2026, 9, 1), date(2026, 9, 30), urgent=True)
    assert next_due_date(contract) == date(2026, 9, 1)


def test_a_suspension_in_effect_is_next_due_when_it_ends() -> None:
    contract = an_active_contract()
    contract.suspend("art11.1.2", date(2026, 9, 1), date(2026, 9, 30), urgent=True)
    contract.take_effect(date(2026, 9, 1))
    assert next_due_date(contract) == date(2026, 10, 1)


def test_a_termination_is_due_the_day_after_its_last_day_of_service() -> None:
    contract = an_active_contract()
    contract.terminate(
        initiator=Initiator.CONTRACTOR,
        reason_code="art7",
        effective_date=date(2026, 9, 30),
        today=date(2026, 6, 1),
        written_notice_ref="DOC-1",
        written_notice_received_on=date(2026, 6, 1),
    )
    assert next_due_date(contract) == date(2026, 10, 1)


def test_a_suspension_waiting_for_its_prior_notice_is_due_only_when_its_period_ends() -> None:
    contract = an_active_contract()
    # Art. 11(2): a suspension that is not urgent waits for its prior notice; its start date
    # alone never makes it due, but the end of its period does (it lapses unnoticed).
    contract.suspend("art11.1.1", date(2026, 9, 1), date(2026, 9, 30), urgent=False)
    assert next_due_date(contract) == date(2026, 10, 1)


# --- the scheduler's tick, on a real PostgreSQL


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture
async def world(database_url: str) -> AsyncIterator[dict[str, Any]]:
    clock = Clock(datetime(2026, 6, 1, 3, 0, tzinfo=UTC))
    contracts = Contracts(env=event_store_env(database_url), clock=clock)
    contracts.publish_terms(TERMS, "規約", date(2026, 4, 1))
    engine = create_async_engine(sqlalchemy_url(database_url))
    read_model = ReadModel(engine)
    await read_model.create()
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=1)
    projection = ContractProjection(contracts, engine)

    async def project() -> None:
        position = await read_model.position()
        while rows := await read_log(pool, projection.table, position, 100):
            await projection.apply(rows)
            position = rows[-1].notification_id

    yield {"contracts": contracts, "read_model": read_model, "clock": clock, "project": project}
    await pool.close()
    await engine.dispose()
    contracts.close()


@pytest.mark.asyncio
async def test_a_future_dated_suspension_takes_effect_on_its_date(world: dict[str, Any]) -> None:
    contracts: Contracts = world["contracts"]
    contract = contracts.apply(
        tenant_id="t-1",
        contractor=a_contractor(),
        plan=Plan(500, 3),
        terms_version=TERMS,
        agreed_to_terms=True,
    )
    contracts.approve(contract.id, START)
    other = contracts.apply(
        tenant_id="t-2",
        contractor=a_contractor("Other K.K."),
        plan=Plan(500, 3),
        terms_version=TERMS,
        agreed_to_terms=True,
    )
    contracts.approve(other.id, START)
    contracts.suspend(contract.id, "art11.1.2", date(2026, 6, 10), date(2026, 6, 20), urgent=True)
    await world["project"]()

    assert await record_due_changes(contracts, world["read_model"]) == {}
    assert contracts.get(contract.id).status is Status.ACTIVE

    world["clock"].now += timedelta(days=9)  # 10 June in Japan
    recorded = await record_due_changes(contracts, world["read_model"])
    assert [c.kind for c in recorded[contract.id]] == ["suspension"]
    assert other.id not in recorded
    assert contracts.get(contract.id).status is Status.SUSPENDED
    history = [e["type"] for e in contracts.history(contract.id)]
    assert history[-1] == "SuspensionTookEffect"

    await world["project"]()
    world["clock"].now += timedelta(days=11)  # 21 June: the period is over
    recorded = await record_due_changes(contracts, world["read_model"])
    assert "resumption" in [c.kind for c in recorded[contract.id]]
    assert contracts.get(contract.id).status is Status.ACTIVE
