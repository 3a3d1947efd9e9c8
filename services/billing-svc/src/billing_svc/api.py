"""HTTP in, application call, HTTP out: billing-svc's routes and its error → status table."""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from billing_svc.application import Billing, RunProgress
from billing_svc.domain.errors import (
    AccountNotFoundError,
    BillingError,
    InvalidFactError,
    InvalidPaymentError,
    InvalidSurchargeError,
    InvoiceNotFoundError,
    PeriodNotOverError,
    SurchargeNotAssessableError,
)
from billing_svc.domain.periods import InvalidPeriodError
from smartid_events.auth import Principal, require
from smartid_events.web import LeanRoute

logger = logging.getLogger(__name__)

ERROR_TABLE: dict[type[Exception], int] = {
    AccountNotFoundError: 404,
    InvoiceNotFoundError: 404,
    InvalidPaymentError: 422,
    InvalidSurchargeError: 422,
    InvalidPeriodError: 422,
    InvalidFactError: 409,
    SurchargeNotAssessableError: 409,
    PeriodNotOverError: 409,
    BillingError: 409,
    # A concurrent write to the same account or invoice: the client may retry.
    IntegrityError: 409,
}

PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
MAX_YEN = 10**12
PROGRESS_LOG_INTERVAL_S = 2.0

router = APIRouter(tags=["billing"], route_class=LeanRoute)


def billing_app(request: Request) -> Billing:
    billing: Billing = request.app.state.billing
    return billing


BillingDep = Annotated[Billing, Depends(billing_app)]
Reader = Annotated[Principal, Depends(require("billing:read"))]
Writer = Annotated[Principal, Depends(require("billing:write"))]
Operator = Annotated[Principal, Depends(require("billing:operate"))]
ContractId = Annotated[str, Path(min_length=1, max_length=100)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BillingRunIn(Body):
    period: str = Field(pattern=PERIOD, description="The month of service, YYYY-MM")


class BillingRunOut(BaseModel):
    period: str
    accounts: int = Field(description="Accounts looked at")
    issued: int = Field(description="Invoices issued by this run (0 when run again)")
    invoice_ids: int = Field(description="Number of invoice ids the run created")
    finished_before: bool = Field(
        default=False,
        description="The period's run had already gone through every account: nothing was "
        "issued; facts told since are settled by the next period's invoices",
    )
    seconds: float


class PaymentIn(Body):
    amount: int = Field(strict=True, le=MAX_YEN, description="Yen received (positive)")
    paid_on: date


class SurchargeIn(Body):
    evaded_amount: int = Field(strict=True, le=MAX_YEN, description="Evaded fee E, tax-exclusive")
    note: str | None = Field(default=None, max_length=500)


class SurchargeOut(BaseModel):
    contract_id: str
    evaded_amount: int
    surcharge: int
    article: str = "13(3)"


def require_operator(principal: Principal, what: str) -> None:
    if not principal.is_operator:
        raise HTTPException(403, detail=f"{what} is the company's: an operator token is required")


def check_access(billing: Billing, principal: Principal, contract_id: str) -> None:
    """404 for a contract the principal may not see, so that it cannot learn it exists."""
    if principal.is_operator:
        return
    tenant = billing.tenant_of(contract_id)
    if tenant is None or not principal.can_access(tenant):
        raise AccountNotFoundError(f"no account for contract {contract_id}")


def check_invoice_access(billing: Billing, principal: Principal, invoice_id: UUID) -> None:
    if principal.is_operator:
        return
    contract_id = billing.get_invoice(invoice_id).contract_id
    try:
        check_access(billing, principal, contract_id)
    except AccountNotFoundError:
        raise InvoiceNotFoundError(f"no invoice {invoice_id}") from None


@router.post("/v1/billing-runs")
def run_billing(body: BillingRunIn, principal: Operator, billing: BillingDep) -> BillingRunOut:
    """Issue the month's invoices; running it again issues nothing new."""
    require_operator(principal, "a billing run")
    started = time.perf_counter()
    last_log = [started]

    def progress(p: RunProgress) -> None:
        now = time.perf_counter()
        if now - last_log[0] >= PROGRESS_LOG_INTERVAL_S or p.done == p.total:
            last_log[0] = now
            logger.info(
                "billing run %s: %d/%d accounts, %d issued",
                p.period,
                p.done,
                p.total,
                p.issued,
                extra={"period": p.period, "done": p.done, "total": p.total, "issued": p.issued},
            )

    report = billing.run_billing(body.period, progress=progress)
    return BillingRunOut(
        period=report.period,
        accounts=report.accounts,
        issued=report.issued,
        invoice_ids=len(report.invoice_ids),
        finished_before=report.finished_before,
        seconds=round(time.perf_counter() - started, 3),
    )


@router.get("/v1/contracts/{contract_id}/invoices")
def invoices_of(
    contract_id: ContractId,
    principal: Reader,
    billing: BillingDep,
    as_of: Annotated[date | None, Query()] = None,
) -> list[dict[str, Any]]:
    check_access(billing, principal, contract_id)
    return [view.to_dict() for view in billing.invoices_of(contract_id, as_of)]


# Declared before `/v1/invoices/{invoice_id}` so that `<id>.pdf` is not read as an id.
@router.get(
    "/v1/invoices/{invoice_id}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def invoice_pdf(invoice_id: UUID, principal: Reader, billing: BillingDep) -> Response:
    """The qualified invoice (適格請求書) as a PDF."""
    check_invoice_access(billing, principal, invoice_id)
    pdf = billing.invoice_pdf(invoice_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="invoice-{invoice_id}.pdf"'},
    )


@router.get("/v1/invoices/{invoice_id}")
def get_invoice(
    invoice_id: UUID,
    principal: Reader,
    billing: BillingDep,
    as_of: Annotated[date | None, Query(description="Late interest accrued to this day")] = None,
) -> dict[str, Any]:
    check_invoice_access(billing, principal, invoice_id)
    return billing.get_invoice(invoice_id, as_of).to_dict()


@router.post("/v1/invoices/{invoice_id}/payments")
def record_payment(
    invoice_id: UUID, body: PaymentIn, principal: Writer, billing: BillingDep
) -> dict[str, Any]:
    """Record a payment received; an overpayment becomes credit for the next invoices."""
    require_operator(principal, "recording a payment")
    return billing.record_payment(invoice_id, body.amount, body.paid_on).to_dict()


@router.post("/v1/contracts/{contract_id}/surcharges", status_code=201)
def assess_surcharge(
    contract_id: ContractId, body: SurchargeIn, principal: Operator, billing: BillingDep
) -> SurchargeOut:
    """Art. 13(3): the evaded fee and a surcharge of twice it, on the next invoice."""
    require_operator(principal, "assessing a surcharge")
    billing.assess_surcharge(contract_id, body.evaded_amount, body.note)
    return SurchargeOut(
        contract_id=contract_id,
        evaded_amount=body.evaded_amount,
        surcharge=2 * body.evaded_amount,
    )


@router.get("/v1/contracts/{contract_id}/liability-cap")
def liability_cap(
    contract_id: ContractId,
    principal: Reader,
    billing: BillingDep,
    period: Annotated[str, Query(pattern=PERIOD, description="YYYY-MM")],
) -> dict[str, Any]:
    """Art. 20(2): the most the company owes for a total outage in the month, with its basis."""
    check_access(billing, principal, contract_id)
    return billing.liability_cap(contract_id, period).to_dict()
