"""What billing does when contract-svc's events arrive: each becomes a fact on its account."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, timedelta, timezone
from typing import Any

import smartid_events.contract  # noqa: F401  (registers contract-svc's schemas for decoding)
from billing_svc.application import Billing
from billing_svc.domain import facts
from smartid_events.envelope import CloudEvent, parse_event_type
from smartid_events.tracking import Handler, ProcessContext

CONSUMER_NAME = "billing-contract-events"
UPSTREAM = "contract"
JST = timezone(timedelta(hours=9))
ERASED = "[erased]"  # contract-svc's contractor_name once the contract's data is erased


def _day(value: Any) -> date:
    return date.fromisoformat(str(value))


def _maybe_day(value: Any) -> date | None:
    return None if value is None else _day(value)


def _name(d: dict[str, Any]) -> str | None:
    # Optional v1 field; an erased name is no name to address an invoice to.
    name = d.get("contractor_name")
    return None if not name or name == ERASED else str(name)


def _applied(event: CloudEvent) -> facts.Applied:
    d = event.data
    # The contractor's legal name addresses the invoice; events published before the field
    # existed fall back to the tenant id. The day it was recorded dates the plan's fee
    # against the fee schedule (Art. 12).
    return facts.Applied(
        contractor_name=_name(d) or str(d["tenant_id"]),
        monthly_fee_per_id=int(d["plan"]["monthly_fee_per_id"]),
        id_count=int(d["plan"]["id_count"]),
        construction_fee=d.get("construction_fee"),
        tenant_id=str(d["tenant_id"]),
        applied_on=event.time.astimezone(JST).date(),
    )


def _tenant_changed(d: dict[str, Any]) -> facts.TenantChanged:
    return facts.TenantChanged(str(d["tenant_id"]), _day(d["effective_date"]), _name(d))


def _contractor_renamed(d: dict[str, Any]) -> facts.ContractorRenamed | None:
    name = _name(d)
    return None if name is None else facts.ContractorRenamed(name, _day(d["effective_date"]))


# Published event name (version 1, after upcasting) → the fact billing records, if any.
TRANSLATIONS: dict[str, Callable[[dict[str, Any]], facts.ContractFact | None]] = {
    "Approved": lambda d: facts.Approved(_day(d["start_date"])),
    "Rejected": lambda d: facts.Rejected(d.get("reason_code")),
    "ApprovalRevoked": lambda d: facts.ApprovalRevoked(_day(d["effective_date"])),
    "IdCountChanged": lambda d: facts.IdCountChanged(int(d["id_count"]), _day(d["effective_date"])),
    "Suspended": lambda d: facts.Suspended(_maybe_day(d.get("start_date"))),
    "Resumed": lambda d: facts.Resumed(_maybe_day(d.get("effective_date"))),
    "Terminated": lambda d: facts.Terminated(_day(d["effective_date"])),
    "ContractorSucceeded": _tenant_changed,
    "TransferApproved": _tenant_changed,
    # Art. 23(8): only the name matters to billing (the invoice's addressee).
    "ContractorDetailsChanged": _contractor_renamed,
    "ConstructionStarted": lambda d: facts.ConstructionStarted(_maybe_day(d.get("started_on"))),
    "ConstructionCancelled": lambda d: facts.ConstructionCancelled(
        _maybe_day(d.get("cancelled_on"))
    ),
    # Art. 12(2): service-wide, for every contract.
    "FeeChanged": lambda d: facts.FeeChanged(
        int(d["monthly_fee_per_id"]), _day(d["effective_date"])
    ),
}


def to_fact(event: CloudEvent) -> facts.ContractFact | None:
    """The fact a contract event tells billing, or None when it changes nothing billed."""
    service, name, _version = parse_event_type(event.type)
    if service != UPSTREAM:
        return None
    if name == "Applied":
        return _applied(event)
    translate = TRANSLATIONS.get(name)
    return None if translate is None else translate(event.data)


def contract_events_handler(billing: Billing) -> Handler[ProcessContext]:
    """The consumer's handler: record the fact and the upstream position in one transaction."""

    async def handle(event: CloudEvent, ctx: ProcessContext) -> None:
        fact = to_fact(event)
        if fact is None:
            return  # the tracker records the position alone
        if isinstance(fact, facts.FeeChanged):
            # Art. 12(2): service-wide (subject `_service`, partition p00): the fee schedule.
            await asyncio.to_thread(billing.record_fee_change, fact, ctx.tracking)
        else:
            await asyncio.to_thread(
                billing.record_contract_fact, event.contract_id, fact, ctx.tracking
            )
        ctx.saved = True  # Billing saved the effects with the tracking

    return handle
