"""contract-svc's commands over HTTP through the group committer: batches, versions, retries."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from contract_builders import TERMS
from eventsourcing.domain import BaseAggregate

from contract_svc.application import Contracts
from contract_svc.domain import ERASED, Contractor, Plan
from contract_svc.main import create_app
from contract_svc.settings import ContractSettings
from smartid_events.auth import SCOPES, mint_token
from smartid_events.groupcommit import Command, GroupCommitter
from smartid_events.pgstore import PgApplicationRecorder
from smartid_events.store import event_store_env

SECRET = "s" * 48
OPERATOR = {
    "Authorization": f"Bearer {mint_token(SECRET, sub='op', role='operator', scopes=SCOPES)}"
}
pytestmark = pytest.mark.asyncio


class Gate:
    """Holds the committer's writer inside a command so that the next batch is known in advance."""

    def __init__(self, committer: GroupCommitter) -> None:
        self.committer = committer
        self.opened = threading.Event()
        self.entered = threading.Event()

    def _hold(self, _: object) -> tuple[Sequence[BaseAggregate[UUID]], None]:
        self.entered.set()
        self.opened.wait(timeout=30)
        return [], None

    async def close(self) -> asyncio.Task[None]:
        held = asyncio.create_task(self.committer.submit_async(Command(None, self._hold)))
        for _ in range(100_000):
            if self.entered.is_set():
                return held
            await asyncio.sleep(0)
        raise AssertionError("the writer never took the gate command")

    async def open_when_queued(self, count: int) -> None:
        """Let the writer go once `count` commands wait: they make up its next batch."""
        for _ in range(100_000):
            if len(self.committer._queue) >= count:
                break
            await asyncio.sleep(0)
        assert len(self.committer._queue) == count
        self.opened.set()


@pytest_asyncio.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = ContractSettings(
        database_url=database_url, jwt_secret=SECRET, log_level="WARNING", command_writer="thread"
    )
    app = create_app(settings, connect_nats=False)
    async with app.router.lifespan_context(app):
        app.state.contracts.publish_terms(TERMS, "第1条 ...", date(2026, 4, 1))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contract") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def contracts_of(client: httpx.AsyncClient) -> Contracts:
    contracts: Contracts = client.app.state.contracts  # type: ignore[attr-defined]
    assert contracts.committer is not None
    return contracts


async def an_active_contract(client: httpx.AsyncClient) -> str:
    applied = await client.post(
        "/v1/contracts",
        json={
            "contractor": {"name": "株式会社テスト", "address": "東京", "email": "a@example.jp"},
            "plan": {"monthly_fee_per_id": 300, "id_count": 50},
            "terms_version": TERMS,
            "agreed_to_terms": True,
        },
        headers=OPERATOR,
    )
    assert applied.status_code == 201, applied.text
    contract_id: str = applied.json()["id"]
    approved = await client.post(
        f"/v1/contracts/{contract_id}/approval", json={"start_date": "2026-07-01"}, headers=OPERATOR
    )
    assert approved.json()["version"] == 2
    return contract_id


def id_count_change(client: httpx.AsyncClient, contract_id: str, count: int, **headers: str) -> Any:
    return client.post(
        f"/v1/contracts/{contract_id}/id-count",
        json={"id_count": count, "effective_date": "2026-08-01"},
        headers={**OPERATOR, **headers},
    )


def user_registration(client: httpx.AsyncClient, contract_id: str, n: int) -> Any:
    return client.post(
        f"/v1/contracts/{contract_id}/users",
        json={
            "name": f"利用者{n}",
            "email": f"user{n}@example.jp",
            "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "paper"},
        },
        headers=OPERATOR,
    )


async def history(client: httpx.AsyncClient, contract_id: str) -> list[str]:
    response = await client.get(f"/v1/contracts/{contract_id}/events", headers=OPERATOR)
    return [e["type"] for e in response.json()]


async def test_the_service_stores_events_through_our_one_statement_recorder(
    client: httpx.AsyncClient,
) -> None:
    assert type(contracts_of(client).recorder) is PgApplicationRecorder


async def test_the_writer_thread_waits_half_a_millisecond_for_more_commands(
    client: httpx.AsyncClient,
) -> None:
    committer = contracts_of(client).committer
    assert committer is not None
    assert committer.max_wait_s == 0.0005


async def test_the_writers_wait_depends_on_where_it_runs_unless_configured() -> None:
    def settings(**given: Any) -> ContractSettings:
        return ContractSettings(jwt_secret=SECRET, **given)

    assert settings(command_writer="thread").group_commit_wait_s() == 0.0005
    assert settings(command_writer="process").group_commit_wait_s() == 0.0
    assert settings(command_writer="process", group_commit_wait_ms=2).group_commit_wait_s() == 0.002
    with pytest.raises(ValueError, match="group_commit_wait_ms"):
        settings(group_commit_wait_ms=-1)


async def test_one_batch_with_one_if_match_applies_the_first_and_refuses_the_rest_with_412(
    client: httpx.AsyncClient,
) -> None:
    contract_id = await an_active_contract(client)
    gate = Gate(contracts_of(client).committer)  # type: ignore[arg-type]
    held = await gate.close()
    requests = [
        asyncio.ensure_future(id_count_change(client, contract_id, 10 + n, **{"If-Match": '"2"'}))
        for n in range(5)
    ]
    await gate.open_when_queued(5)
    responses = await asyncio.gather(*requests)
    await held
    assert sorted(r.status_code for r in responses) == [200, 412, 412, 412, 412]
    (applied,) = (r.json() for r in responses if r.status_code == 200)
    got = await client.get(f"/v1/contracts/{contract_id}", headers=OPERATOR)
    assert got.json()["plan"] == applied["plan"]
    assert (await history(client, contract_id)).count("IdCountChanged") == 1


async def test_concurrent_commands_without_if_match_in_one_batch_are_all_applied(
    client: httpx.AsyncClient,
) -> None:
    contract_id = await an_active_contract(client)
    committer = contracts_of(client).committer
    assert committer is not None
    gate = Gate(committer)
    held = await gate.close()
    batches = committer.batches
    requests = [asyncio.ensure_future(user_registration(client, contract_id, n)) for n in range(20)]
    await gate.open_when_queued(20)
    responses = await asyncio.gather(*requests)
    await held
    assert [r.status_code for r in responses] == [201] * 20
    assert sorted(r.json()["version"] for r in responses) == list(range(3, 23))
    assert committer.batches - batches == 2  # the gate's batch and the twenty commands'
    got = await client.get(f"/v1/contracts/{contract_id}", headers=OPERATOR)
    assert len(got.json()["users"]) == 20


async def test_a_batch_redone_after_a_conflict_still_refuses_stale_if_match_with_412(
    client: httpx.AsyncClient, database_url: str
) -> None:
    contract_id = await an_active_contract(client)
    committer = contracts_of(client).committer
    assert committer is not None
    outsider = Contracts(env=event_store_env(database_url))
    wrote: list[int] = []

    def write_from_outside(_: object) -> tuple[Sequence[BaseAggregate[UUID]], None]:
        # After the batch has loaded the contract: its save then conflicts and is redone.
        if not wrote:
            wrote.append(outsider.change_id_count(UUID(contract_id), 7, date(2026, 8, 1)).version)
        return [], None

    try:
        gate = Gate(committer)
        held = await gate.close()
        retried = committer.retried_batches
        outside = asyncio.ensure_future(committer.submit_async(Command(None, write_from_outside)))
        stale = [
            asyncio.ensure_future(id_count_change(client, contract_id, 9, **{"If-Match": '"2"'})),
            asyncio.ensure_future(id_count_change(client, contract_id, 8, **{"If-Match": '"2"'})),
        ]
        plain = asyncio.ensure_future(user_registration(client, contract_id, 1))
        await gate.open_when_queued(4)
        await asyncio.gather(held, outside)
        responses = await asyncio.gather(*stale, plain)
    finally:
        outsider.close()
    assert committer.retried_batches == retried + 1
    assert wrote == [3]
    assert [r.status_code for r in responses] == [412, 412, 201]
    assert responses[2].json()["version"] == 4
    assert (await history(client, contract_id))[2:] == ["IdCountChanged", "UserRegistered"]
    got = await client.get(f"/v1/contracts/{contract_id}", headers=OPERATOR)
    assert got.json()["plan"]["id_count"] == 7


async def test_a_domain_error_in_a_batch_fails_only_its_own_command(
    client: httpx.AsyncClient,
) -> None:
    contract_id = await an_active_contract(client)
    gate = Gate(contracts_of(client).committer)  # type: ignore[arg-type]
    held = await gate.close()
    requests = [
        asyncio.ensure_future(user_registration(client, contract_id, 1)),
        asyncio.ensure_future(id_count_change(client, contract_id, 0)),  # refused: pydantic
        asyncio.ensure_future(
            client.post(
                f"/v1/contracts/{contract_id}/users",
                json={"name": "同意なし", "email": "no@example.jp"},
                headers=OPERATOR,
            )
        ),
        asyncio.ensure_future(user_registration(client, contract_id, 2)),
    ]
    await gate.open_when_queued(3)
    responses = await asyncio.gather(*requests)
    await held
    assert [r.status_code for r in responses] == [201, 422, 422, 201]
    assert sorted(r.json()["version"] for r in (responses[0], responses[3])) == [3, 4]
    assert await history(client, contract_id) == [
        "Applied",
        "Approved",
        "UserRegistered",
        "UserRegistered",
    ]


async def test_a_contract_whose_snapshot_is_sealed_with_a_destroyed_key_fails_no_other_command(
    client: httpx.AsyncClient,
) -> None:
    contracts = contracts_of(client)
    others = [UUID(await an_active_contract(client)) for _ in range(2)]
    erased = contracts.apply(
        tenant_id="tenant-erased",
        contractor=Contractor(name="株式会社消去", address="東京", email="gone@example.jp"),
        plan=Plan(300, 5),
        terms_version=TERMS,
        agreed_to_terms=True,
    ).id
    contracts.reject(erased, "art4.3.4", "本人確認書類なし")
    # An erasure whose event reached a snapshot interval: the snapshot at its version was
    # sealed with the key the erasure then destroyed.
    contracts.execute(contracts.commands.erase_personal_data(erased))
    contracts.take_snapshot(erased)
    contracts.key_store.destroy(erased)
    committer = contracts.committer
    assert committer is not None
    gate = Gate(committer)
    held = await gate.close()
    today = contracts.today()
    commands = [
        asyncio.ensure_future(
            contracts.execute_async(contracts.commands.take_effect(erased, today))
        ),
        *(
            asyncio.ensure_future(
                contracts.execute_async(contracts.commands.change_id_count(c, 9, date(2026, 8, 1)))
            )
            for c in others
        ),
    ]
    await gate.open_when_queued(3)
    outcomes = await asyncio.gather(*commands, return_exceptions=True)
    await held
    assert [getattr(o, "version", o) for o in outcomes[1:]] == [3, 3]
    assert outcomes[0] == []
    assert contracts.get(erased).contractor.name == ERASED
