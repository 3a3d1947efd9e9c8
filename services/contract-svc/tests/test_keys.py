"""The per-contract key store's cache: cheap lookups, and erasure still wins (ADR 0015)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from uuid import uuid4

import psycopg
import pytest
from contract_builders import NOW, TERMS, a_consent, a_contractor

from contract_svc.application import Contracts
from contract_svc.domain import ERASED, Contract, Plan
from contract_svc.keys import ERASURE_CHECK_S, RESERVE, PostgresKeyStore
from smartid_events.groupcommit import GroupCommitter
from smartid_events.store import event_store_env

CONTRACTOR_NAME = "Yamada Shoji K.K."
USER_EMAIL = "hanako.sato@yamada.example"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_app(database_url: str, clock: Clock, *, group_commit: bool = False) -> Contracts:
    keys = PostgresKeyStore(database_url, clock=clock)
    return Contracts(
        env=event_store_env(database_url),
        key_store=keys,
        clock=lambda: NOW,
        group_commit=group_commit,
    )


@pytest.fixture
def first(database_url: str, clock: Clock) -> Iterator[Contracts]:
    app = open_app(database_url, clock, group_commit=True)
    app.publish_terms(TERMS, "第1条 ...", date(2026, 4, 1))
    yield app
    app.close()


@pytest.fixture
def second(database_url: str, clock: Clock, first: Contracts) -> Iterator[Contracts]:
    app = open_app(database_url, clock)
    yield app
    app.close()


def key_store_of(contracts: Contracts) -> PostgresKeyStore:
    assert isinstance(contracts.key_store, PostgresKeyStore)
    return contracts.key_store


def a_terminated_contract_with_a_user(contracts: Contracts) -> Contract:
    contract = contracts.apply(
        tenant_id="tenant-1",
        contractor=a_contractor(CONTRACTOR_NAME),
        plan=Plan(500, 3),
        terms_version=TERMS,
        agreed_to_terms=True,
    )
    contracts.approve(contract.id, date(2026, 4, 1))
    contracts.register_user(contract.id, "Sato Hanako", USER_EMAIL, a_consent())
    return contracts.terminate(contract.id, "company", "art8.2.4", date(2026, 5, 31))


def test_erased_data_is_unreadable_at_once_in_the_erasing_process(first: Contracts) -> None:
    contract = a_terminated_contract_with_a_user(first)
    assert CONTRACTOR_NAME in str(first.export(contract.id))  # the key is now cached
    first.erase_personal_data(contract.id)
    after = str(first.export(contract.id))
    assert CONTRACTOR_NAME not in after and USER_EMAIL not in after
    assert key_store_of(first).existing_key(contract.id) is None


def test_another_process_stops_serving_a_destroyed_key_within_the_erasure_check(
    first: Contracts, second: Contracts, clock: Clock
) -> None:
    contract = a_terminated_contract_with_a_user(first)
    assert second.get(contract.id).contractor.name == CONTRACTOR_NAME  # cached in `second`
    first.erase_personal_data(contract.id)
    clock.now += ERASURE_CHECK_S
    after = str(second.export(contract.id))
    assert CONTRACTOR_NAME not in after and USER_EMAIL not in after
    assert second.get(contract.id).contractor.name == ERASED


def test_no_key_is_made_again_for_an_erased_contract(
    first: Contracts, second: Contracts, clock: Clock
) -> None:
    contract = a_terminated_contract_with_a_user(first)
    first.erase_personal_data(contract.id)
    clock.now += ERASURE_CHECK_S
    assert key_store_of(second).create(contract.id) is None
    assert key_store_of(first).create(contract.id) is None


def test_new_contracts_keys_are_made_once_and_their_commands_then_never_ask_the_database(
    first: Contracts, database_url: str
) -> None:
    keys = key_store_of(first)
    before = keys.queries
    applied = [
        first.apply(
            tenant_id="tenant-1",
            contractor=a_contractor(CONTRACTOR_NAME),
            plan=Plan(500, 3),
            terms_version=TERMS,
            agreed_to_terms=True,
        )
        for _ in range(RESERVE + 1)
    ]
    assert keys.queries == before + 1  # the first one's key, made with the others' in reserve
    for contract in applied[:3]:
        first.approve(contract.id, date(2026, 4, 1))
        first.register_user(contract.id, "Sato Hanako", USER_EMAIL, a_consent())
        assert first.get(contract.id).contractor.name == CONTRACTOR_NAME
    assert keys.queries == before + 1
    with psycopg.connect(database_url) as conn:
        counts = conn.execute(
            "SELECT count(*) FROM contract_keys WHERE contract_id = ANY(%s) GROUP BY contract_id",
            ([c.id for c in applied],),
        ).fetchall()
    assert counts == [(1,)] * len(applied)


def test_concurrent_creates_in_two_processes_agree_on_one_key(
    database_url: str, clock: Clock
) -> None:
    stores = [PostgresKeyStore(database_url, clock=clock) for _ in range(2)]
    contract_ids = [uuid4() for _ in range(20)]
    barrier = threading.Barrier(4)
    got: list[dict[object, bytes | None]] = [{} for _ in range(4)]

    def create(n: int) -> None:
        barrier.wait(timeout=10)
        for contract_id in contract_ids:
            got[n][contract_id] = stores[n % 2].create(contract_id)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for store in stores:
            store.close()
    assert all(got[n] == got[0] for n in range(4))
    assert None not in got[0].values()
    with psycopg.connect(database_url) as conn:
        stored = dict(
            conn.execute(
                "SELECT contract_id, key FROM contract_keys WHERE contract_id = ANY(%s)",
                (contract_ids,),
            ).fetchall()
        )
    assert {i: bytes(k) for i, k in stored.items()} == got[0]


def test_a_batch_of_contracts_gets_its_keys_in_one_query(
    first: Contracts, second: Contracts
) -> None:
    ids = {a_terminated_contract_with_a_user(first).id for _ in range(3)}
    keys = key_store_of(second)
    before = keys.queries
    with GroupCommitter(second) as committer:
        loaded = committer._load(ids)
    assert keys.queries == before + 1
    names = {getattr(w.aggregate, "contractor", None) for w in loaded.values()}
    assert {n.name for n in names if n is not None} == {CONTRACTOR_NAME}
