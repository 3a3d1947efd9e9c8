"""Contracts' use cases on the in-memory store and on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from uuid import uuid4

import psycopg
import pytest
from contract_builders import NOW, START, TERMS, a_consent, a_contractor, open_contracts
from eventsourcing.persistence import StoredEvent

from contract_svc.application import ContractNotFoundError, Contracts, StaleVersionError
from contract_svc.domain import ERASED, Contract, Plan, Status
from contract_svc.domain.errors import UnknownTermsVersionError
from contract_svc.idempotency import (
    IdempotencyConflictError,
    IdempotencyInProgressError,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    PostgresIdempotencyStore,
    fingerprint,
)
from smartid_events.store import event_store_env

CONTRACTOR_NAME = "Yamada Shoji K.K."
USER_EMAIL = "hanako.sato@yamada.example"


@pytest.fixture(params=["memory", "postgres", "postgres, group commit"])
def contracts(request: pytest.FixtureRequest) -> Iterator[Contracts]:
    """Every use case inline on both stores, and through the group committer (the API's way)."""
    if request.param == "memory":
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    else:
        env = event_store_env(request.getfixturevalue("database_url"))
    app = Contracts(env=env, clock=lambda: NOW, group_commit="group commit" in request.param)
    app.publish_terms(TERMS, "第1条 規約の制定目的 ...", date(2026, 4, 1))
    yield app
    app.close()


def an_active_contract(contracts: Contracts, id_count: int = 3) -> Contract:
    contract = contracts.apply(
        tenant_id="tenant-1",
        contractor=a_contractor(CONTRACTOR_NAME),
        plan=Plan(500, id_count),
        terms_version=TERMS,
        agreed_to_terms=True,
    )
    return contracts.approve(contract.id, START, expected_version=1)


def a_terminated_contract_with_a_user(contracts: Contracts) -> Contract:
    contract = an_active_contract(contracts)
    contracts.register_user(contract.id, "Sato Hanako", USER_EMAIL, a_consent())
    return contracts.terminate(contract.id, "company", "art8.2.4", date(2026, 5, 31))


def test_an_application_is_stored_and_read_back(contracts: Contracts) -> None:
    contract = an_active_contract(contracts)
    loaded = contracts.get(contract.id)
    assert (loaded.status, loaded.version, loaded.tenant_id) == (Status.ACTIVE, 2, "tenant-1")
    assert loaded.contractor.name == CONTRACTOR_NAME


def test_an_application_to_unpublished_terms_records_nothing(contracts: Contracts) -> None:
    with pytest.raises(UnknownTermsVersionError):
        contracts.apply(
            tenant_id="t",
            contractor=a_contractor(),
            plan=Plan(500, 1),
            terms_version="1999",
            agreed_to_terms=True,
        )
    assert list(contracts.contract_ids()) == []


def test_an_unknown_contract_is_not_found(contracts: Contracts) -> None:
    with pytest.raises(ContractNotFoundError):
        contracts.get(uuid4())
    with pytest.raises(ContractNotFoundError):
        contracts.history(uuid4())


def test_a_stale_expected_version_is_refused_and_records_nothing(contracts: Contracts) -> None:
    contract = an_active_contract(contracts)
    with pytest.raises(StaleVersionError):
        contracts.change_id_count(contract.id, 5, date(2026, 5, 1), expected_version=1)
    assert contracts.get(contract.id).version == 2


def test_concurrent_commands_without_versions_lose_no_update(contracts: Contracts) -> None:
    contract = an_active_contract(contracts, id_count=20)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def register(n: int) -> None:
        barrier.wait(timeout=10)
        try:
            for i in range(3):
                contracts.register_user(contract.id, f"U{n}-{i}", f"u{n}{i}@x.example", a_consent())
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(contracts.get(contract.id).users) == 12


def test_concurrent_commands_with_one_expected_version_let_one_win(
    pg_contracts: Contracts,
) -> None:
    contract = an_active_contract(pg_contracts)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def change(count: int) -> None:
        barrier.wait(timeout=10)
        try:
            pg_contracts.change_id_count(contract.id, count, date(2026, 5, 1), expected_version=2)
            outcomes.append("ok")
        except StaleVersionError:
            outcomes.append("stale")

    threads = [threading.Thread(target=change, args=(n,)) for n in (4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["ok", "stale"]
    assert pg_contracts.get(contract.id).version == 3


def test_a_future_termination_takes_effect_when_the_scheduler_reaches_its_date(
    contracts: Contracts,
) -> None:
    contract = an_active_contract(contracts)
    contracts.terminate(contract.id, "company", "art8.2.1", date(2026, 7, 31))
    assert contracts.apply_due_changes(date(2026, 7, 31)) == {}
    done = contracts.apply_due_changes(date(2026, 8, 1))
    assert [c.kind for c in done[contract.id]] == ["termination"]
    assert contracts.get(contract.id).status is Status.TERMINATED
    assert contracts.history(contract.id)[-1]["type"] == "TerminationTookEffect"


def test_a_past_dated_urgent_suspension_takes_effect_at_once(contracts: Contracts) -> None:
    contract = an_active_contract(contracts)
    suspended = contracts.suspend(contract.id, "art11.1.1", date(2026, 6, 1), urgent=True)
    assert suspended.status is Status.SUSPENDED


def test_history_lists_every_event_oldest_first_as_plain_data(contracts: Contracts) -> None:
    contract = an_active_contract(contracts)
    history = contracts.history(contract.id)
    assert [(h["type"], h["version"]) for h in history] == [("Applied", 1), ("Approved", 2)]
    assert history[1]["data"] == {"start_date": "2026-04-01"}


def test_state_as_of_shows_the_contract_as_it_was_recorded_then(contracts: Contracts) -> None:
    contract = an_active_contract(contracts)
    approved_at = contracts.history(contract.id)[1]["timestamp"]
    contracts.change_id_count(contract.id, 7, date(2026, 5, 1))
    from datetime import datetime

    then = contracts.state_as_of(contract.id, datetime.fromisoformat(approved_at))
    assert (then.version, then.id_count) == (2, 3)
    assert contracts.get(contract.id).id_count == 7


def test_the_export_holds_the_contract_and_all_its_events(contracts: Contracts) -> None:
    contract = an_active_contract(contracts)
    export = contracts.export(contract.id)
    assert export["contract"]["status"] == "active"
    assert [e["type"] for e in export["events"]] == ["Applied", "Approved"]


def test_erasure_leaves_no_personal_data_in_replayed_history(contracts: Contracts) -> None:
    contract = a_terminated_contract_with_a_user(contracts)
    before = str(contracts.export(contract.id))
    assert CONTRACTOR_NAME in before and USER_EMAIL in before
    erased = contracts.erase_personal_data(contract.id)
    after = str(contracts.export(contract.id))
    assert CONTRACTOR_NAME not in after and USER_EMAIL not in after
    assert erased.contractor.name == ERASED
    assert [u.email for u in erased.users.values()] == [ERASED]


def test_personal_data_is_never_stored_in_plain_text(
    pg_contracts: Contracts, database_url: str
) -> None:
    contract = a_terminated_contract_with_a_user(pg_contracts)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT state FROM contracts_events").fetchall()
    stored = b"".join(bytes(r[0]) for r in rows)
    assert contract.id and CONTRACTOR_NAME.encode() not in stored
    assert USER_EMAIL.encode() not in stored


def test_a_contract_with_ten_thousand_events_loads_from_its_snapshot(
    pg_contracts: Contracts,
) -> None:
    contract = an_active_contract(pg_contracts)
    contract = pg_contracts.get(contract.id)
    for i in range(10_000 - contract.version):
        contract.change_id_count(3 + i % 2, date(2026, 5, 1))
        if len(contract.pending_events) == 500:
            pg_contracts.save(contract)
    pg_contracts.save(contract)
    assert pg_contracts.snapshots is not None
    assert (
        next(iter(pg_contracts.snapshots.get(contract.id, desc=True, limit=1))).originator_version
        == 10_000
    )
    started = time.perf_counter()
    loaded = pg_contracts.get(contract.id)
    elapsed = time.perf_counter() - started
    assert loaded.version == 10_000
    assert elapsed < 0.5


def test_erasure_survives_snapshots_sealed_with_the_destroyed_key(
    contracts: Contracts,
) -> None:
    contract = a_terminated_contract_with_a_user(contracts)
    contracts.take_snapshot(contract.id)
    contracts.erase_personal_data(contract.id)
    before_erasure = contracts.repository.get(contract.id, version=contract.version)
    assert isinstance(before_erasure, Contract)
    assert before_erasure.contractor.name == ERASED
    assert contracts.get(contract.id).contractor.name == ERASED


# Idempotency


@pytest.fixture(params=["memory", "postgres"])
def idempotency(request: pytest.FixtureRequest) -> IdempotencyStore:
    if request.param == "memory":
        return InMemoryIdempotencyStore()
    url = request.getfixturevalue("database_url")
    store = PostgresIdempotencyStore(url)
    request.addfinalizer(store.close)
    return store


def test_a_repeated_key_returns_the_first_response(idempotency: IdempotencyStore) -> None:
    fp = fingerprint("POST", "/v1/contracts", {"a": 1})
    assert idempotency.begin("tenant-1", "k1", fp) is None
    idempotency.complete("tenant-1", "k1", {"id": "c1", "version": 1})
    replay = idempotency.begin("tenant-1", "k1", fp)
    assert replay is not None and replay.response == {"id": "c1", "version": 1}


def test_a_key_reused_for_another_request_is_a_conflict(idempotency: IdempotencyStore) -> None:
    idempotency.begin("tenant-1", "k1", fingerprint("POST", "/v1/contracts", {"a": 1}))
    with pytest.raises(IdempotencyConflictError):
        idempotency.begin("tenant-1", "k1", fingerprint("POST", "/v1/contracts", {"a": 2}))


def test_a_key_in_progress_is_not_run_twice(idempotency: IdempotencyStore) -> None:
    fp = fingerprint("POST", "/x", {})
    idempotency.begin("tenant-1", "k1", fp)
    with pytest.raises(IdempotencyInProgressError):
        idempotency.begin("tenant-1", "k1", fp)
    idempotency.abandon("tenant-1", "k1")
    assert idempotency.begin("tenant-1", "k1", fp) is None


def test_keys_are_confined_to_their_tenant(idempotency: IdempotencyStore) -> None:
    fp = fingerprint("POST", "/x", {})
    idempotency.begin("tenant-1", "k1", fp)
    assert idempotency.begin("tenant-2", "k1", fp) is None


def test_a_termination_recorded_late_is_effective_from_its_past_date(
    contracts: Contracts,
) -> None:
    contract = an_active_contract(contracts)
    ended = contracts.terminate(
        contract.id,
        "contractor",
        "art7",
        NOW.date() - timedelta(days=15),
        "LTR-1",
        NOW.date() - timedelta(days=45),
    )
    assert (ended.status, ended.end_date) == (Status.TERMINATED, date(2026, 5, 31))


def test_a_discontinuation_ends_every_contract_in_force(contracts: Contracts) -> None:
    first, second = an_active_contract(contracts), an_active_contract(contracts)
    result = contracts.announce_discontinuation(date(2026, 9, 30))
    assert sorted(result.ended) == sorted([first.id, second.id])
    contracts.apply_due_changes(date(2026, 10, 1))
    assert contracts.get(first.id).status is Status.TERMINATED


def test_a_second_application_can_share_the_database(database_url: str) -> None:
    first = open_contracts(event_store_env(database_url))
    contract = an_active_contract(first)
    second = Contracts(env=event_store_env(database_url))
    try:
        assert second.get(contract.id).contractor.name == CONTRACTOR_NAME
    finally:
        second.close()
        first.close()


def test_stored_events_are_sealed_blobs(contracts: Contracts) -> None:
    contract = an_active_contract(contracts)
    stored: list[StoredEvent] = list(contracts.events.recorder.select_events(contract.id))
    assert CONTRACTOR_NAME.encode() not in stored[0].state
