"""Builders of contracts in the states the tests start from."""

from __future__ import annotations

from datetime import UTC, date, datetime

from contract_svc.application import Contracts
from contract_svc.domain import Consent, Contract, Contractor, Initiator, Plan

START = date(2026, 4, 1)
TERMS = "2026-04"


def a_contractor(name: str = "Yamada Shoji K.K.") -> Contractor:
    return Contractor(name=name, address="1-1 Chiyoda, Tokyo", email="admin@yamada.example")


def a_consent() -> Consent:
    return Consent(obtained_at=datetime(2026, 3, 20, 9, 0, tzinfo=UTC), method="signed form")


def an_application(id_count: int = 3, construction_fee: int | None = None) -> Contract:
    return Contract.apply(
        tenant_id="tenant-1",
        contractor=a_contractor(),
        plan=Plan(monthly_fee_per_id=500, id_count=id_count),
        construction_fee=construction_fee,
        terms_version=TERMS,
        agreed_to_terms=True,
        published_terms={TERMS},
    )


def an_active_contract(id_count: int = 3, construction_fee: int | None = None) -> Contract:
    contract = an_application(id_count, construction_fee)
    contract.approve(START)
    return contract


def a_suspended_contract() -> Contract:
    contract = an_active_contract()
    contract.suspend("art11.1.1", date(2026, 5, 1), None, urgent=True)
    contract.take_effect(date(2026, 5, 1))
    return contract


def a_terminated_contract() -> Contract:
    contract = an_active_contract()
    contract.terminate(
        initiator=Initiator.COMPANY,
        reason_code="art8.2.2",
        effective_date=date(2026, 6, 30),
        today=date(2026, 6, 1),
    )
    contract.take_effect(date(2026, 7, 1))
    return contract


def replay(contract: Contract) -> Contract:
    """The contract rebuilt from the events it has recorded so far (pending ones included)."""
    rebuilt: Contract | None = None
    for domain_event in contract.pending_events:
        rebuilt = domain_event.mutate(rebuilt)  # type: ignore[assignment]
    assert rebuilt is not None
    return rebuilt


def state_of(contract: Contract) -> dict[str, object]:
    return {k: v for k, v in vars(contract).items() if k != "_pending_events"}


NOW = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)


def open_contracts(env: dict[str, str]) -> Contracts:
    contracts = Contracts(env=env, clock=lambda: NOW)
    contracts.publish_terms(TERMS, "第1条 規約の制定目的 ...", date(2026, 4, 1))
    return contracts
