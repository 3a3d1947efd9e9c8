"""HTTP in, application call, HTTP out: contract-svc's routes and its error → status table."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.networks import validate_email

from contract_svc.application import (
    ContractNotFoundError,
    Contracts,
    RegisteredUser,
    StaleVersionError,
    visible_to,
)
from contract_svc.command_writer import CommitOutcomeUnknownError, WriterClient
from contract_svc.domain import (
    Consent,
    Contract,
    Contractor,
    ContractRuleError,
    Plan,
    Service,
)
from contract_svc.domain.errors import UnknownUserError
from contract_svc.idempotency import (
    IdempotencyConflictError,
    IdempotencyInProgressError,
    IdempotencyStore,
    fingerprint,
)
from contract_svc.projections import ContractSearch, ReadModel
from contract_svc.views import contract_view, jsonable
from smartid_events.auth import Principal, require
from smartid_events.groupcommit import (
    Command,
    CommitPendingError,
    CommitterClosedError,
    CommitterOverloadedError,
)
from smartid_events.web import LeanRoute
from smartid_events.web.responses import OrjsonResponse

R = TypeVar("R")

# Rule errors about the request's own values (422); the rest conflict with the contract's state.
UNPROCESSABLE_RULES = frozenset(
    {
        "terms-must-be-agreed",
        "terms-version-unknown",
        "plan-invalid",
        "reason-code-unknown",
        "dates-out-of-order",
        "suspension-needs-period",
        "termination-needs-written-notice",
        "termination-ground-unmet",
        "change-needs-evidence",
        "user-needs-consent",
        "value-invalid",
        "change-needs-advance-notice",
        "transfer-needs-approval",
    }
)


def _rule_statuses() -> dict[type[Exception], int]:
    table: dict[type[Exception], int] = {ContractRuleError: 409}
    pending = list(ContractRuleError.__subclasses__())
    while pending:
        error = pending.pop()
        pending += error.__subclasses__()
        table[error] = 422 if getattr(error, "rule", None) in UNPROCESSABLE_RULES else 409
    return table


ERROR_TABLE: dict[type[Exception], int] = {
    **_rule_statuses(),
    ContractNotFoundError: 404,
    StaleVersionError: 412,
    IdempotencyConflictError: 422,
    IdempotencyInProgressError: 409,
    UnknownUserError: 404,
    CommitterOverloadedError: 503,
    CommitterClosedError: 503,
    CommitPendingError: 503,
}


# C0 control characters other than tab and line breaks: PostgreSQL text refuses NUL, and none
# of them belongs in a name, an address or a note.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


@functools.lru_cache(maxsize=4096)
def _normalized_email(value: str) -> str:
    """What `EmailStr` gives, remembered: email-validator's parse costs ~4% of a command, and
    the same addresses come back (a contractor's, its users'). Invalid ones raise the same
    error every time; exceptions are not cached."""
    return validate_email(value)[1]


# `EmailStr`, with the same schema and errors.
Email = Annotated[
    str,
    AfterValidator(_normalized_email),
    WithJsonSchema({"type": "string", "format": "email"}),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
            raise ValueError("must not contain control characters")
        return value


class ContractorIn(Body):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    email: Email
    fax: str | None = Field(default=None, max_length=40)
    corporate_number: str | None = Field(default=None, pattern=r"^\d{13}$")

    def value(self) -> Contractor:
        return Contractor(
            name=self.name,
            address=self.address,
            email=str(self.email),
            fax=self.fax,
            corporate_number=self.corporate_number,
        )


class PlanIn(Body):
    monthly_fee_per_id: int = Field(ge=0, le=10_000_000)
    id_count: int = Field(ge=1, le=1_000_000)


class Application(Body):
    contractor: ContractorIn
    plan: PlanIn
    construction_fee: int | None = Field(default=None, ge=0, le=100_000_000)
    terms_version: str = Field(min_length=1, max_length=50)
    agreed_to_terms: bool
    tenant_id: str | None = Field(
        default=None,
        max_length=100,
        description="The contractor account the contract belongs to (operators only; "
        "a contractor's token supplies its own).",
    )


class Approval(Body):
    start_date: date


class Rejection(Body):
    reason_code: str = Field(max_length=20)
    note: str | None = Field(default=None, max_length=2000)


class Revocation(Body):
    reason_code: str = Field(max_length=20)
    effective_date: date
    note: str | None = Field(default=None, max_length=2000)


class IdCountChange(Body):
    id_count: int = Field(ge=1, le=1_000_000)
    effective_date: date


class SuspensionIn(Body):
    reason_code: str = Field(max_length=20)
    start_date: date
    end_date: date | None = None
    urgent: bool = False


class Resumption(Body):
    effective_date: date


class TerminationIn(Body):
    initiator: Literal["contractor", "company"]
    reason_code: str = Field(max_length=20)
    effective_date: date
    written_notice_ref: str | None = Field(default=None, max_length=200)
    written_notice_received_on: date | None = None


class ConsentIn(Body):
    obtained_at: datetime
    method: str = Field(min_length=1, max_length=100)


class UserIn(Body):
    name: str = Field(min_length=1, max_length=200)
    email: Email
    # Optional in the schema so that a missing consent is refused with Art. 26(3) named.
    consent: ConsentIn | None = None


class Succession(Body):
    successor: ContractorIn
    cause: Literal["merger", "split"]
    evidence_ref: str = Field(min_length=1, max_length=200)
    effective_date: date
    tenant_id: str | None = Field(default=None, max_length=100)


class TransferApprovalIn(Body):
    transferee: ContractorIn
    approval_ref: str = Field(min_length=1, max_length=200)
    effective_date: date
    tenant_id: str = Field(min_length=1, max_length=100)


class ContractorDetailsChange(Body):
    contractor: ContractorIn
    evidence_ref: str = Field(min_length=1, max_length=200)
    effective_date: date


class CompromiseReport(Body):
    reported_at: datetime | None = None


class Reissue(Body):
    reason: str = Field(min_length=1, max_length=500)
    urgent: bool = False


class NoticeCompletion(Body):
    notice_for: Literal["suspension", "termination", "reissue"]
    completed_at: datetime
    user_id: UUID | None = Field(default=None, description="The user, for a reissue notice")


# Coroutines: FastAPI runs a `def` dependency in its thread pool, a hand-off per request.
async def contracts_of(request: Request) -> Contracts:
    contracts: Contracts = request.app.state.contracts
    return contracts


async def read_model_of(request: Request) -> ReadModel:
    read_model: ReadModel = request.app.state.read_model
    return read_model


ContractsDep = Annotated[Contracts, Depends(contracts_of)]
ReadModelDep = Annotated[ReadModel, Depends(read_model_of)]
Reader = Annotated[Principal, Depends(require("contracts:read"))]
Writer = Annotated[Principal, Depends(require("contracts:write"))]
Operator = Annotated[Principal, Depends(require("contracts:operate"))]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=200, description="Safe retries")
]
IfMatchHeader = Annotated[
    str | None, Header(alias="If-Match", description='The expected version, e.g. "3"')
]


class PreconditionFormatError(Exception):
    """`If-Match` is not a quoted version number."""

    rule = "if-match-format"
    field = "If-Match"


ERROR_TABLE[PreconditionFormatError] = 400


def expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise PreconditionFormatError(f'If-Match must be a quoted version such as "3": {if_match}')
    return int(raw)


def owned(contracts: Contracts, contract_id: UUID, principal: Principal) -> Contract:
    """The contract, or not-found when the caller's tenant may not see it."""
    contract = contracts.get(contract_id)
    if not principal.can_access(contract.tenant_id):
        raise ContractNotFoundError(contract_id)
    return contract


def contract_response(contract: Contract, status_code: int = 200) -> JSONResponse:
    return OrjsonResponse(
        contract_view(contract),
        status_code=status_code,
        headers={"ETag": f'"{contract.version}"'},
    )


Rendered = tuple[int, dict[str, Any]]


async def idempotent(
    request: Request,
    store: IdempotencyStore,
    principal: Principal,
    key: str | None,
    body: BaseModel | None,
    run: Callable[[], Awaitable[R]],
    render: Callable[[R], Rendered],
    *,
    location: Callable[[dict[str, Any]], str | None] | None = None,
) -> JSONResponse:
    """Run the command once per Idempotency-Key; a repeat gets the first response.

    `run` executes the command, `render` makes its response. A command still pending at the
    committer's timeout keeps its key claimed until its outcome arrives: then the key records
    the response (a retry gets it) or is released (the command recorded nothing; a retry runs
    it again). The store is synchronous: it runs in a thread, only for requests with a key.
    `location` gives the `Location` header from the response's content, if any.
    """
    if key is None:
        status, content = render(await run())
        return _json(status, content, location=location)
    tenant = principal.tenant or f"operator:{principal.sub}"
    payload = body.model_dump(mode="json") if body is not None else None
    digest = fingerprint(request.method, request.url.path, payload)
    replay = await asyncio.to_thread(store.begin, tenant, key, digest)
    if replay is not None:
        stored = replay.response
        return _json(int(stored["status"]), stored["body"], replayed=True, location=location)
    try:
        status, content = render(await run())
    except CommitPendingError as pending:
        _settle_later(store, tenant, key, pending.outcome, render)
        raise
    except CommitOutcomeUnknownError:
        raise  # it may have committed: the key stays claimed
    except Exception:
        await asyncio.to_thread(store.abandon, tenant, key)
        raise
    await asyncio.to_thread(store.complete, tenant, key, {"status": status, "body": content})
    return _json(status, content, location=location)


# Settlements under way: the loop keeps only weak references to tasks.
_settling: set[asyncio.Task[None]] = set()


def _settle_later(
    store: IdempotencyStore,
    tenant: str,
    key: str,
    outcome: asyncio.Future[Any],
    render: Callable[[Any], Rendered],
) -> None:
    async def settle() -> None:
        try:
            result = await outcome
        except CommitOutcomeUnknownError:
            return  # it may have committed: the key stays claimed
        except Exception:  # refused or failed: it recorded nothing
            await asyncio.to_thread(store.abandon, tenant, key)
            return
        status, content = render(result)
        await asyncio.to_thread(store.complete, tenant, key, {"status": status, "body": content})

    task = asyncio.get_running_loop().create_task(settle())
    _settling.add(task)
    task.add_done_callback(_settling.discard)


def _json(
    status: int,
    content: dict[str, Any],
    *,
    replayed: bool = False,
    location: Callable[[dict[str, Any]], str | None] | None = None,
) -> JSONResponse:
    headers = {}
    if "version" in content:
        headers["ETag"] = f'"{content["version"]}"'
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if location is not None and (where := location(content)):
        headers["Location"] = where
    return OrjsonResponse(content, status_code=status, headers=headers)


def _contract_rendered(contract: Contract) -> Rendered:
    return 200, contract_view(contract)


def _registration_rendered(registered: RegisteredUser) -> Rendered:
    return 201, {
        "user_id": str(registered.user_id),
        "contract_id": str(registered.contract.id),
        "version": registered.contract.version,
    }


@dataclass(frozen=True)
class Call:
    """What every command route needs besides its body: the application, the idempotency
    store, the request's `If-Match` and `Idempotency-Key`, and the writer process's client
    when the writer runs in a process of its own (ADR 0022)."""

    request: Request
    contracts: Contracts
    store: IdempotencyStore
    version: int | None
    key: str | None
    writer: WriterClient | None = None

    @property
    def commands(self) -> Any:
        return self.writer.commands if self.writer is not None else self.contracts.commands

    def execute(self, command: Any, principal: Principal | None = None) -> Awaitable[Any]:
        """Run `command`; with a principal, only on a contract its tenant may see."""
        if self.writer is not None:
            return self.writer.execute(command, principal)
        if principal is not None:
            command = visible_to(command, principal.can_access)
        return self.contracts.execute_async(command)

    async def change(
        self, principal: Principal, body: BaseModel | None, change: Command[Contract]
    ) -> JSONResponse:
        """Run a command on one contract the caller may see; answer with the contract."""

        def run() -> Awaitable[Contract]:
            return self.execute(change, principal)

        return await idempotent(
            self.request, self.store, principal, self.key, body, run, _contract_rendered
        )

    async def register(
        self, principal: Principal, body: BaseModel, registration: Command[RegisteredUser]
    ) -> JSONResponse:
        """Run a command that registers a user ID; answer 201 with the new ID."""

        def run() -> Awaitable[RegisteredUser]:
            return self.execute(registration, principal)

        return await idempotent(
            self.request, self.store, principal, self.key, body, run, _registration_rendered
        )


async def call_of(
    request: Request, if_match: IfMatchHeader = None, key: IdempotencyKey = None
) -> Call:
    state = request.app.state
    return Call(
        request=request,
        contracts=state.contracts,
        store=state.idempotency,
        version=expected_version(if_match),
        key=key,
        writer=getattr(state, "writer", None),
    )


CallDep = Annotated[Call, Depends(call_of)]


# Compiled routes: FastAPI's per-request dependency solving was half of a command's loop time.
router = APIRouter(prefix="/v1", tags=["contracts"], route_class=LeanRoute)


@router.post("/contracts", status_code=201)
async def apply(body: Application, principal: Writer, call: CallDep) -> JSONResponse:
    """Art. 4(1): apply for a contract under a published terms version."""

    async def run() -> Contract:
        if principal.is_operator:
            tenant_id = body.tenant_id or str(uuid4())
        else:
            if body.tenant_id is not None and body.tenant_id != principal.tenant:
                raise ContractNotFoundError(UUID(int=0))
            assert principal.tenant is not None
            tenant_id = principal.tenant
        contract: Contract = await call.execute(
            call.commands.apply(
                tenant_id=tenant_id,
                contractor=body.contractor.value(),
                plan=Plan(body.plan.monthly_fee_per_id, body.plan.id_count),
                terms_version=body.terms_version,
                agreed_to_terms=body.agreed_to_terms,
                construction_fee=body.construction_fee,
            )
        )
        return contract

    return await idempotent(
        call.request, call.store, principal, call.key, body, run, _application_rendered,
        location=_contract_location,
    )  # fmt: skip


def _application_rendered(contract: Contract) -> Rendered:
    return 201, contract_view(contract)


def _contract_location(content: dict[str, Any]) -> str | None:
    contract_id = content.get("id")
    return f"/v1/contracts/{contract_id}" if contract_id else None


@router.post("/contracts/{contract_id}/approval")
async def approve(
    contract_id: UUID,
    body: Approval,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 4(2), 3(4): approval forms the contract and sets its start date."""
    return await call.change(
        principal,
        body,
        call.commands.approve(contract_id, body.start_date, expected_version=call.version),
    )


@router.post("/contracts/{contract_id}/rejection")
async def reject(
    contract_id: UUID,
    body: Rejection,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 4(3): refuse an application on one of grounds (1)–(6)."""
    return await call.change(
        principal,
        body,
        call.commands.reject(
            contract_id, body.reason_code, body.note, expected_version=call.version
        ),
    )


@router.post("/contracts/{contract_id}/revocation")
async def revoke(
    contract_id: UUID,
    body: Revocation,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 4(4): revoke an approval after the fact on the grounds of Art. 4(3)."""
    return await call.change(
        principal,
        body,
        call.commands.revoke_approval(
            contract_id,
            body.reason_code,
            body.effective_date,
            body.note,
            expected_version=call.version,
        ),
    )


@router.post("/contracts/{contract_id}/id-count")
async def change_id_count(
    contract_id: UUID,
    body: IdCountChange,
    principal: Writer,
    call: CallDep,
) -> JSONResponse:
    """Art. 13(1): change the number of IDs from an effective date."""
    return await call.change(
        principal,
        body,
        call.commands.change_id_count(
            contract_id, body.id_count, body.effective_date, expected_version=call.version
        ),
    )


@router.post("/contracts/{contract_id}/suspension")
async def suspend(
    contract_id: UUID,
    body: SuspensionIn,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 11: suspend the contract's use, with prior notice unless urgent."""
    return await call.change(
        principal,
        body,
        call.commands.suspend(
            contract_id,
            body.reason_code,
            body.start_date,
            body.end_date,
            body.urgent,
            expected_version=call.version,
        ),
    )


@router.post("/contracts/{contract_id}/resumption")
async def resume(
    contract_id: UUID,
    body: Resumption,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 11: lift a suspension from an effective date."""
    return await call.change(
        principal,
        body,
        call.commands.resume(contract_id, body.effective_date, expected_version=call.version),
    )


class CompanyTerminationNeedsOperatorError(Exception):
    """Only the company's operators terminate on the company's side (Art. 8)."""

    rule = "company-termination-by-operator"
    article = "8"


ERROR_TABLE[CompanyTerminationNeedsOperatorError] = 403


@router.post("/contracts/{contract_id}/termination")
async def terminate(
    contract_id: UUID,
    body: TerminationIn,
    principal: Writer,
    call: CallDep,
) -> JSONResponse:
    """Art. 7 (by the contractor, in writing) or Art. 8 (by the company)."""
    if body.initiator == "company" and not principal.has_scope("contracts:operate"):
        raise CompanyTerminationNeedsOperatorError(
            "termination by the company needs the contracts:operate scope"
        )
    return await call.change(
        principal,
        body,
        call.commands.terminate(
            contract_id,
            body.initiator,
            body.reason_code,
            body.effective_date,
            body.written_notice_ref,
            body.written_notice_received_on,
            expected_version=call.version,
        ),
    )


@router.post("/contracts/{contract_id}/notice-completion")
async def complete_notice(
    contract_id: UUID,
    body: NoticeCompletion,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 24: a prior notice was completed; the change it gates may take effect."""
    return await call.change(
        principal,
        body,
        call.commands.record_notice_completion(
            contract_id,
            body.notice_for,
            body.completed_at,
            body.user_id,
            expected_version=call.version,
        ),
    )


@router.post("/contracts/{contract_id}/succession")
async def record_succession(
    contract_id: UUID,
    body: Succession,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 5: the successor of a merger or split takes over the contract."""
    return await call.change(
        principal,
        body,
        call.commands.record_succession(
            contract_id,
            body.successor.value(),
            body.cause,
            body.evidence_ref,
            body.effective_date,
            body.tenant_id,
            expected_version=call.version,
        ),
    )


@router.post("/contracts/{contract_id}/transfer")
async def approve_transfer(
    contract_id: UUID,
    body: TransferApprovalIn,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 6: a transfer happens only with the company's approval (an operator's act)."""
    return await call.change(
        principal,
        body,
        call.commands.approve_transfer(
            contract_id,
            body.transferee.value(),
            body.approval_ref,
            body.effective_date,
            body.tenant_id,
            expected_version=call.version,
        ),
    )


@router.post("/contracts/{contract_id}/contractor")
async def change_contractor_details(
    contract_id: UUID,
    body: ContractorDetailsChange,
    principal: Writer,
    call: CallDep,
) -> JSONResponse:
    """Art. 23(8): the contractor reports a change of name or address, with evidence."""
    return await call.change(
        principal,
        body,
        call.commands.change_contractor_details(
            contract_id,
            body.contractor.value(),
            body.evidence_ref,
            body.effective_date,
            expected_version=call.version,
        ),
    )


class ConstructionDate(Body):
    on: date = Field(description="The day construction started, or the request was cancelled")


@router.post("/contracts/{contract_id}/construction/start")
async def start_construction(
    contract_id: UUID,
    body: ConstructionDate,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 14: construction has started; its fee is owed from now on."""
    return await call.change(
        principal,
        body,
        call.commands.start_construction(contract_id, body.on, expected_version=call.version),
    )


@router.post("/contracts/{contract_id}/construction/cancellation")
async def cancel_construction(
    contract_id: UUID,
    body: ConstructionDate,
    principal: Writer,
    call: CallDep,
) -> JSONResponse:
    """Art. 14(2): cancelled before construction starts, the fee is not owed."""
    return await call.change(
        principal,
        body,
        call.commands.cancel_construction(contract_id, body.on, expected_version=call.version),
    )


@router.post("/contracts/{contract_id}/users", status_code=201)
async def register_user(
    contract_id: UUID,
    body: UserIn,
    principal: Writer,
    call: CallDep,
) -> JSONResponse:
    """Art. 26(3): a user is registered only with the user's recorded prior consent."""
    consent = Consent(body.consent.obtained_at, body.consent.method) if body.consent else None
    return await call.register(
        principal,
        body,
        call.commands.register_user(
            contract_id, body.name, str(body.email), consent, expected_version=call.version
        ),
    )


@router.delete("/contracts/{contract_id}/users/{user_id}")
async def remove_user(
    contract_id: UUID,
    user_id: UUID,
    principal: Writer,
    call: CallDep,
) -> JSONResponse:
    return await call.change(
        principal,
        None,
        call.commands.remove_user(contract_id, user_id, expected_version=call.version),
    )


@router.post("/contracts/{contract_id}/users/{user_id}/compromise")
async def report_compromise(
    contract_id: UUID,
    user_id: UUID,
    body: CompromiseReport,
    principal: Writer,
    call: CallDep,
) -> JSONResponse:
    """Art. 23(5): the contractor reports a lost or leaked ID or credential."""
    return await call.change(
        principal,
        body,
        call.commands.report_compromise(
            contract_id, user_id, body.reported_at, expected_version=call.version
        ),
    )


@router.post("/contracts/{contract_id}/users/{user_id}/reissue", status_code=201)
async def reissue_user_id(
    contract_id: UUID,
    user_id: UUID,
    body: Reissue,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 23(6): the company changes a compromised ID (notice follows, Art. 23(7))."""
    return await call.register(
        principal,
        body,
        call.commands.reissue_user_id(
            contract_id, user_id, body.reason, body.urgent, expected_version=call.version
        ),
    )


@router.post("/contracts/{contract_id}/erasure")
def erase_personal_data(
    contract_id: UUID,
    principal: Operator,
    contracts: ContractsDep,
) -> JSONResponse:
    """Arts. 18, 19(3): after the end, personal data becomes unreadable for good."""
    owned(contracts, contract_id, principal)
    return contract_response(contracts.erase_personal_data(contract_id))


# Reads


@router.get("/contracts/{contract_id}")
def get_contract(
    contract_id: UUID,
    principal: Reader,
    contracts: ContractsDep,
    as_of: Annotated[
        datetime | None,
        Query(description="The contract as it was recorded at this moment (RFC 3339)"),
    ] = None,
) -> JSONResponse:
    contract = owned(contracts, contract_id, principal)
    if as_of is not None:
        if as_of.tzinfo is None:
            raise AsOfWithoutZoneError("as_of needs a time zone, e.g. 2026-05-01T00:00:00+09:00")
        contract = contracts.state_as_of(contract_id, as_of)
    return contract_response(contract)


class AsOfWithoutZoneError(Exception):
    rule = "as-of-needs-zone"
    field = "as_of"


ERROR_TABLE[AsOfWithoutZoneError] = 422


@router.get("/contracts/{contract_id}/events")
def get_history(contract_id: UUID, principal: Reader, contracts: ContractsDep) -> JSONResponse:
    """The contract's history, oldest first."""
    owned(contracts, contract_id, principal)
    return OrjsonResponse(contracts.history(contract_id))


@router.get("/contracts/{contract_id}/export")
def export(contract_id: UUID, principal: Reader, contracts: ContractsDep) -> JSONResponse:
    """Art. 19(2): all of the contract's data and events in one document."""
    owned(contracts, contract_id, principal)
    return OrjsonResponse(
        jsonable(contracts.export(contract_id)),
        headers={"Content-Disposition": f'attachment; filename="contract-{contract_id}.json"'},
    )


@router.get("/contracts")
async def search_contracts(
    principal: Reader,
    read_model: ReadModelDep,
    response: Response,
    status: Annotated[
        Literal["applied", "rejected", "active", "suspended", "terminated", "revoked"] | None,
        Query(),
    ] = None,
    contractor_name: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
    applied_from: date | None = None,
    applied_to: date | None = None,
    start_from: date | None = None,
    start_to: date | None = None,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Search the read model, newest application first, with an opaque cursor."""
    search = ContractSearch(
        tenant_id=None if principal.is_operator else principal.tenant,
        status=status,
        contractor_name=contractor_name,
        applied_from=applied_from,
        applied_to=applied_to,
        start_from=start_from,
        start_to=start_to,
        cursor=cursor,
        limit=limit,
    )
    page = await read_model.search(search)
    return {"items": page.items, "next_cursor": page.next_cursor}


# Service-wide facts (Arts. 2, 10, 12(2), 22)


class TermsIn(Body):
    version: str = Field(min_length=1, max_length=50)
    content: str = Field(min_length=1, max_length=200_000)
    effective_date: date


class InterruptionIn(Body):
    reason_code: str = Field(max_length=20)
    starts_at: datetime
    ends_at: datetime | None = None
    scope: str = Field(default="all", max_length=200)
    description: str = Field(default="", max_length=2000)
    urgent: bool = False


class DiscontinuationIn(Body):
    effective_date: date
    scope: str = Field(default="all", max_length=200)
    description: str = Field(default="", max_length=2000)


class FeeChangeIn(Body):
    monthly_fee_per_id: int = Field(ge=0, le=10_000_000)
    effective_date: date


def service_view(contracts: Contracts) -> dict[str, Any]:
    return view_of_service(contracts.get_service())


def view_of_service(service: Service | None) -> dict[str, Any]:
    if service is None:
        return {"version": 0}
    return {
        "version": service.version,
        **jsonable({k: v for k, v in vars(service).items() if not k.startswith("_")}),
    }


@router.get("/service")
def get_service(principal: Reader, contracts: ContractsDep) -> JSONResponse:
    """The service-wide facts: terms versions, interruptions, discontinuation, fees."""
    return OrjsonResponse(service_view(contracts))


@router.post("/terms", status_code=201)
async def publish_terms(
    body: TermsIn,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 2: publish a version of the terms with its content and effective date."""
    service = await call.execute(
        call.commands.publish_terms(
            body.version,
            body.content,
            body.effective_date,
            expected_version=call.version,
        )
    )
    return OrjsonResponse(view_of_service(service), status_code=201)


@router.post("/interruptions", status_code=201)
async def announce_interruption(
    body: InterruptionIn,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 10: announce an interruption of the service, with prior notice unless urgent."""
    interruption_id = await call.execute(
        call.commands.announce_interruption(
            body.reason_code, body.starts_at, body.ends_at, body.scope, body.description,
            body.urgent, expected_version=call.version,
        )
    )  # fmt: skip
    return OrjsonResponse({"interruption_id": str(interruption_id)}, status_code=201)


@router.post("/discontinuations", status_code=201)
def announce_discontinuation(
    body: DiscontinuationIn,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 22: discontinue the service; the affected contracts end on the effective date."""
    result = call.contracts.announce_discontinuation(
        body.effective_date, body.scope, body.description,
        expected_version=call.version,
    )  # fmt: skip
    return OrjsonResponse(
        {
            "ended": [str(c) for c in result.ended],
            "unchanged": {str(c): e.rule for c, e in result.refused.items()},
        },
        status_code=201,
    )


@router.post("/fee-changes", status_code=201)
async def change_fee(
    body: FeeChangeIn,
    principal: Operator,
    call: CallDep,
) -> JSONResponse:
    """Art. 12(2): a new fee, effective only after notice with the fee and its date."""
    service = await call.execute(
        call.commands.change_fee(
            body.monthly_fee_per_id,
            body.effective_date,
            expected_version=call.version,
        )
    )
    return OrjsonResponse(view_of_service(service), status_code=201)
