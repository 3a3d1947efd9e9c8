"""The Contract aggregate: its commands check the terms, its private methods record events."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as BaseSnapshot

from contract_svc.domain import codes
from contract_svc.domain.codes import (
    ENDED,
    IN_FORCE,
    Construction,
    Initiator,
    NoticeFor,
    Status,
    SuccessionCause,
)
from contract_svc.domain.errors import (
    ConsentRequiredError,
    ConstructionStateError,
    ContractEndedError,
    DateOrderError,
    ErasureBeforeEndError,
    EvidenceRequiredError,
    IdCountBelowUsersError,
    InvalidPlanError,
    InvalidValueError,
    NoConstructionFeeError,
    NoNoticePendingError,
    NotActiveError,
    NotApprovableError,
    NotRejectableError,
    NotRevocableError,
    NotSuspendedError,
    ReissueNeedsCompromiseError,
    SuspensionExistsError,
    SuspensionPeriodRequiredError,
    TerminationExistsError,
    TerminationGroundError,
    TermsNotAgreedError,
    TransferNeedsApprovalError,
    UnknownReasonCodeError,
    UnknownTermsVersionError,
    UnknownUserError,
    WrittenNoticeRequiredError,
)
from contract_svc.domain.schedule import DueChange, due_changes
from contract_svc.domain.values import (
    Consent,
    Contractor,
    Plan,
    Suspension,
    Termination,
    User,
)

CONTRACTOR_FIELDS = ("contractor_name", "contractor_address", "contractor_email", "contractor_fax")
ENDED_ARTICLE = {Status.REJECTED: "4(3)", Status.REVOKED: "4(4)", Status.TERMINATED: "13(1)"}


def _require_text(value: str | None, field: str) -> None:
    if value is None or not value.strip():
        raise InvalidValueError(f"{field} must not be empty")


def _require_reason(code: str, allowed: Collection[str], article: str) -> None:
    if code not in allowed:
        raise UnknownReasonCodeError(
            f"reason code {code!r} is not one of {sorted(allowed)}", article=article
        )


def _validate_contractor(contractor: Contractor) -> None:
    _require_text(contractor.name, "contractor.name")
    _require_text(contractor.address, "contractor.address")
    if "@" not in contractor.email:
        raise InvalidValueError("contractor.email must be an e-mail address", article="24(2)")


class Contract(Aggregate):
    """One SECOM Smartphone ID contract, from its application (Art. 4) to its end."""

    class Snapshot(BaseSnapshot):
        # The whole state holds personal data: snapshots are sealed with the contract's key.
        personal_fields: ClassVar[tuple[str, ...]] = ("state",)

        def mutate(self, _: None) -> Contract:
            contract = super().mutate(None)
            assert isinstance(contract, Contract)
            # JSON keeps a StrEnum as its plain string: restore the enums.
            contract.status = Status(contract.status)
            contract.construction = Construction(contract.construction)
            return contract

    class Applied(Aggregate.Created):
        personal_fields: ClassVar[tuple[str, ...]] = CONTRACTOR_FIELDS
        tenant_id: str
        terms_version: str
        contractor_name: str
        contractor_address: str
        contractor_email: str
        contractor_fax: str | None
        corporate_number: str | None
        monthly_fee_per_id: int
        id_count: int
        construction_fee: int | None

    def __init__(
        self,
        tenant_id: str,
        terms_version: str,
        contractor_name: str,
        contractor_address: str,
        contractor_email: str,
        contractor_fax: str | None,
        corporate_number: str | None,
        monthly_fee_per_id: int,
        id_count: int,
        construction_fee: int | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.terms_version = terms_version
        self.contractor = Contractor(
            contractor_name, contractor_address, contractor_email, contractor_fax, corporate_number
        )
        self.monthly_fee_per_id = monthly_fee_per_id
        self.id_count = id_count
        self.id_count_effective_date: date | None = None
        self.construction_fee = construction_fee
        self.construction = Construction.NONE if construction_fee is None else Construction.PENDING
        self.status = Status.APPLIED
        self.start_date: date | None = None
        self.end_date: date | None = None
        self.reason_code: str | None = None
        self.suspension: Suspension | None = None
        self.resumption_date: date | None = None
        self.termination: Termination | None = None
        self.users: dict[str, User] = {}
        self.personal_data_erased = False

    # Application and approval (Art. 4)

    @classmethod
    def apply(
        cls,
        *,
        tenant_id: str,
        contractor: Contractor,
        plan: Plan,
        construction_fee: int | None,
        terms_version: str,
        agreed_to_terms: bool,
        published_terms: Collection[str],
        contract_id: UUID | None = None,
    ) -> Contract:
        if agreed_to_terms is not True:
            raise TermsNotAgreedError("the applicant must agree to the terms")
        if terms_version not in published_terms:
            raise UnknownTermsVersionError(f"terms version {terms_version!r} was never published")
        _require_text(tenant_id, "tenant_id")
        _validate_contractor(contractor)
        if plan.monthly_fee_per_id < 0:
            raise InvalidPlanError("monthly_fee_per_id must not be negative", article="12(1)")
        if plan.id_count < 1:
            raise InvalidPlanError("id_count must be at least 1")
        if construction_fee is not None and construction_fee < 0:
            raise InvalidPlanError("construction_fee must not be negative", article="14(1)")
        return cls._create(
            cls.Applied,
            id=contract_id or uuid4(),
            tenant_id=tenant_id,
            terms_version=terms_version,
            contractor_name=contractor.name,
            contractor_address=contractor.address,
            contractor_email=contractor.email,
            contractor_fax=contractor.fax,
            corporate_number=contractor.corporate_number,
            monthly_fee_per_id=plan.monthly_fee_per_id,
            id_count=plan.id_count,
            construction_fee=construction_fee,
        )

    def approve(self, start_date: date) -> None:
        self._ensure_not_ended()
        if self.status is not Status.APPLIED:
            raise NotApprovableError(f"a contract that is {self.status} cannot be approved")
        self._approved(start_date=start_date)

    class Approved(Aggregate.Event):
        start_date: date

    @event(Approved)
    def _approved(self, start_date: date) -> None:
        self.status = Status.ACTIVE
        self.start_date = start_date
        self.id_count_effective_date = start_date

    def reject(self, reason_code: str, note: str | None = None) -> None:
        self._ensure_not_ended()
        if self.status is not Status.APPLIED:
            raise NotRejectableError(f"a contract that is {self.status} cannot be rejected")
        _require_reason(reason_code, codes.REJECTION, "4(3)")
        self._rejected(reason_code=reason_code, note=note)
        self._cancel_pending_construction(None, "application-rejected")

    class Rejected(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = ("note",)
        reason_code: str
        note: str | None

    @event(Rejected)
    def _rejected(self, reason_code: str, note: str | None) -> None:
        self.status = Status.REJECTED
        self.reason_code = reason_code

    def revoke_approval(
        self, reason_code: str, effective_date: date, note: str | None = None
    ) -> None:
        """Art. 4(4): revoke an approval on an Art. 4(3) ground; costs so far stay owed."""
        self._ensure_not_ended()
        if self.status not in IN_FORCE:
            raise NotRevocableError(f"a contract that is {self.status} has no approval to revoke")
        _require_reason(reason_code, codes.REJECTION, "4(4)")
        self._ensure_on_or_after_start(effective_date, "revocation effective_date")
        self._approval_revoked(reason_code=reason_code, note=note, effective_date=effective_date)
        self._cancel_pending_construction(effective_date, "approval-revoked")

    class ApprovalRevoked(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = ("note",)
        reason_code: str
        note: str | None
        effective_date: date

    @event(ApprovalRevoked)
    def _approval_revoked(self, reason_code: str, note: str | None, effective_date: date) -> None:
        self.status = Status.REVOKED
        self.reason_code = reason_code
        self.end_date = effective_date

    # The ID count (Art. 13(1))

    def change_id_count(self, id_count: int, effective_date: date) -> None:
        self._ensure_in_force()
        if id_count < 1:
            raise InvalidPlanError("id_count must be at least 1")
        if id_count < len(self.users):
            raise IdCountBelowUsersError(
                f"id_count {id_count} is below the {len(self.users)} registered users"
            )
        self._ensure_on_or_after_start(effective_date, "id-count effective_date")
        self._ensure_before_end(effective_date, "id-count effective_date")
        self._id_count_changed(id_count=id_count, effective_date=effective_date)

    class IdCountChanged(Aggregate.Event):
        id_count: int
        effective_date: date

    @event(IdCountChanged)
    def _id_count_changed(self, id_count: int, effective_date: date) -> None:
        self.id_count = id_count
        self.id_count_effective_date = effective_date

    # Suspension and resumption (Art. 11)

    def suspend(
        self, reason_code: str, start_date: date, end_date: date | None, urgent: bool = False
    ) -> None:
        self._ensure_in_force()
        _require_reason(reason_code, codes.SUSPENSION, "11(1)")
        if self.suspension is not None:
            raise SuspensionExistsError("the contract already has a suspension")
        # Art. 11(2): the notice states the reason, the start date and the period, unless urgent.
        if end_date is None and not urgent:
            raise SuspensionPeriodRequiredError("a suspension needs an end date unless urgent")
        if end_date is not None and end_date < start_date:
            raise DateOrderError("the suspension ends before it starts", article="11(2)")
        self._ensure_on_or_after_start(start_date, "suspension start_date")
        self._ensure_before_end(start_date, "suspension start_date")
        self._suspended(
            reason_code=reason_code,
            start_date=start_date,
            end_date=end_date,
            urgent=urgent,
            notice_required=not urgent,
        )

    class Suspended(Aggregate.Event):
        reason_code: str
        start_date: date
        end_date: date | None
        urgent: bool
        notice_required: bool

    @event(Suspended)
    def _suspended(
        self,
        reason_code: str,
        start_date: date,
        end_date: date | None,
        urgent: bool,
        notice_required: bool,
    ) -> None:
        self.suspension = Suspension(reason_code, start_date, end_date, urgent, notice_required)

    def resume(self, effective_date: date) -> None:
        """Decide the first day of service again; it takes effect on that date."""
        self._ensure_in_force()
        if self.suspension is None:
            raise NotSuspendedError("the contract has no suspension to end")
        if self.resumption_date is not None:
            raise NotSuspendedError("a resumption is already recorded")
        if effective_date <= self.suspension.start_date:
            raise DateOrderError("a resumption must follow the suspension's start", article="11")
        self._resumed(effective_date=effective_date)

    class Resumed(Aggregate.Event):
        effective_date: date

    @event(Resumed)
    def _resumed(self, effective_date: date) -> None:
        self.resumption_date = effective_date

    # Termination (Arts. 7, 8, 22)

    def terminate(
        self,
        *,
        initiator: Initiator,
        reason_code: str,
        effective_date: date,
        today: date,
        written_notice_ref: str | None = None,
        written_notice_received_on: date | None = None,
    ) -> None:
        """Decide the end; `effective_date` is the last day of service."""
        self._ensure_in_force()
        if self.termination is not None:
            raise TerminationExistsError("the contract already has a termination")
        if initiator is Initiator.CONTRACTOR:
            _require_reason(reason_code, codes.CONTRACTOR_TERMINATION, "7")
            # Art. 7: the contractor terminates by written notice only.
            if not written_notice_ref or written_notice_received_on is None:
                raise WrittenNoticeRequiredError(
                    "a contractor's termination needs the written notice's reference and the "
                    "date it was received"
                )
            notice_required = False
        else:
            _require_reason(reason_code, codes.COMPANY_TERMINATION, "8")
            suspended = self.suspension is not None and self.suspension.in_effect
            if reason_code == codes.TERMINATION_AFTER_SUSPENSION and not suspended:
                raise TerminationGroundError(
                    "Art. 8(1)(1) applies only to a contract that is suspended"
                )
            # Art. 8(1) grounds need a prior notice; Art. 8(2) grounds none.
            notice_required = reason_code in codes.COMPANY_TERMINATION_WITH_NOTICE
        self._ensure_on_or_after_start(effective_date, "termination effective_date", "13(1)")
        if (
            self.id_count_effective_date is not None
            and effective_date < self.id_count_effective_date
        ):
            raise DateOrderError("the termination precedes a recorded ID-count change")
        self._terminated(
            initiator=initiator.value,
            reason_code=reason_code,
            effective_date=effective_date,
            notice_required=notice_required,
            written_notice_ref=written_notice_ref,
            written_notice_received_on=written_notice_received_on,
        )
        self._cancel_pending_construction(today, "contract-terminated")

    def end_by_discontinuation(self, effective_date: date, today: date) -> None:
        """Art. 22(2): discontinuing the service ends its contracts; 22(4)'s notice is public."""
        self._ensure_in_force()
        if self.termination is not None:
            raise TerminationExistsError("the contract already has a termination")
        self._ensure_on_or_after_start(effective_date, "discontinuation effective_date", "22")
        self._terminated(
            initiator=Initiator.COMPANY.value,
            reason_code="art22",
            effective_date=effective_date,
            notice_required=False,
            written_notice_ref=None,
            written_notice_received_on=None,
        )
        self._cancel_pending_construction(today, "service-discontinued")

    class Terminated(Aggregate.Event):
        class_version: ClassVar[int] = 2
        initiator: str
        reason_code: str
        effective_date: date
        notice_required: bool
        written_notice_ref: str | None
        written_notice_received_on: date | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # v1 did not record whether a prior notice gates the effect: derive it from the ground.
            state["notice_required"] = state["reason_code"] in codes.COMPANY_TERMINATION_WITH_NOTICE

    @event(Terminated)
    def _terminated(
        self,
        initiator: str,
        reason_code: str,
        effective_date: date,
        notice_required: bool,
        written_notice_ref: str | None,
        written_notice_received_on: date | None,
    ) -> None:
        self.termination = Termination(initiator, reason_code, effective_date, notice_required)

    # Notices (Art. 24) reported complete by the notification service

    def record_notice_completion(
        self, notice_for: NoticeFor, completed_at: datetime, user_id: UUID | None = None
    ) -> None:
        self._ensure_not_ended()
        if notice_for is NoticeFor.REISSUE:
            if user_id is None or self._user(user_id).reissue_to is None:
                raise NoNoticePendingError("no notice of an ID change is waiting for this user")
            self._notice_completed(
                notice_for=notice_for.value, completed_at=completed_at, user_id=str(user_id)
            )
            return
        pending: Suspension | Termination | None = (
            self.suspension if notice_for is NoticeFor.SUSPENSION else self.termination
        )
        if pending is None or not pending.notice_required or pending.notice_completed_at:
            raise NoNoticePendingError(f"no {notice_for} notice is waiting to complete")
        self._notice_completed(notice_for=notice_for.value, completed_at=completed_at)

    class NoticeCompleted(Aggregate.Event):
        notice_for: str
        completed_at: datetime
        user_id: str | None = None  # a reissue notice's user (Art. 23(7))

    @event(NoticeCompleted)
    def _notice_completed(
        self, notice_for: str, completed_at: datetime, user_id: str | None = None
    ) -> None:
        if notice_for == NoticeFor.REISSUE.value and user_id is not None:
            reissue_to = self.users[user_id].reissue_to
            assert reissue_to is not None
            self._swap_user_id(UUID(user_id), reissue_to)
        elif notice_for == NoticeFor.SUSPENSION.value and self.suspension is not None:
            self.suspension = replace(self.suspension, notice_completed_at=completed_at)
        elif self.termination is not None:
            self.termination = replace(self.termination, notice_completed_at=completed_at)

    # Effective dates: the scheduler records when a decided change takes effect

    def take_effect(self, today: date) -> list[DueChange]:
        """Record every change due on `today`; returns what took effect."""
        changes = due_changes(self, today)
        for change in changes:
            if change.kind == "suspension":
                self._suspension_took_effect(effective_date=change.effective_date)
            elif change.kind == "suspension-ended":
                self._resumed(effective_date=change.effective_date)
            elif change.kind == "resumption":
                self._resumption_took_effect(effective_date=change.effective_date)
            else:
                self._termination_took_effect(effective_date=change.effective_date)
        return changes

    class SuspensionTookEffect(Aggregate.Event):
        effective_date: date

    @event(SuspensionTookEffect)
    def _suspension_took_effect(self, effective_date: date) -> None:
        assert self.suspension is not None
        self.suspension = replace(self.suspension, in_effect=True)
        self.status = Status.SUSPENDED

    class ResumptionTookEffect(Aggregate.Event):
        effective_date: date

    @event(ResumptionTookEffect)
    def _resumption_took_effect(self, effective_date: date) -> None:
        self.suspension = None
        self.resumption_date = None
        if self.status is Status.SUSPENDED:
            self.status = Status.ACTIVE

    class TerminationTookEffect(Aggregate.Event):
        effective_date: date

    @event(TerminationTookEffect)
    def _termination_took_effect(self, effective_date: date) -> None:
        self.status = Status.TERMINATED
        self.end_date = effective_date

    # The contractor (Arts. 5, 6, 23(8))

    def record_succession(
        self,
        successor: Contractor,
        cause: SuccessionCause,
        evidence_ref: str,
        effective_date: date,
        tenant_id: str | None = None,
    ) -> None:
        """Art. 5: the corporation surviving a merger or split takes the contractor's place."""
        self._ensure_not_ended()
        if not evidence_ref.strip():
            raise EvidenceRequiredError("a succession needs its evidence document", article="5(2)")
        _validate_contractor(successor)
        self._contractor_succeeded(
            cause=cause.value,
            evidence_ref=evidence_ref,
            effective_date=effective_date,
            tenant_id=tenant_id or self.tenant_id,
            **_contractor_kwargs(successor),
        )

    class ContractorSucceeded(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = CONTRACTOR_FIELDS
        cause: str
        evidence_ref: str
        effective_date: date
        tenant_id: str
        contractor_name: str
        contractor_address: str
        contractor_email: str
        contractor_fax: str | None
        corporate_number: str | None

    @event(ContractorSucceeded)
    def _contractor_succeeded(
        self,
        cause: str,
        evidence_ref: str,
        effective_date: date,
        tenant_id: str,
        contractor_name: str,
        contractor_address: str,
        contractor_email: str,
        contractor_fax: str | None,
        corporate_number: str | None,
    ) -> None:
        self.contractor = Contractor(
            contractor_name, contractor_address, contractor_email, contractor_fax, corporate_number
        )
        self.tenant_id = tenant_id

    def approve_transfer(
        self,
        transferee: Contractor,
        approval_ref: str,
        effective_date: date,
        tenant_id: str,
    ) -> None:
        """Art. 6: the contract passes to another party only with the company's approval."""
        self._ensure_not_ended()
        if not approval_ref.strip():
            raise TransferNeedsApprovalError("a transfer needs the company's approval reference")
        _validate_contractor(transferee)
        _require_text(tenant_id, "tenant_id")
        self._transfer_approved(
            approval_ref=approval_ref,
            effective_date=effective_date,
            tenant_id=tenant_id,
            **_contractor_kwargs(transferee),
        )

    class TransferApproved(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = CONTRACTOR_FIELDS
        approval_ref: str
        effective_date: date
        tenant_id: str
        contractor_name: str
        contractor_address: str
        contractor_email: str
        contractor_fax: str | None
        corporate_number: str | None

    @event(TransferApproved)
    def _transfer_approved(
        self,
        approval_ref: str,
        effective_date: date,
        tenant_id: str,
        contractor_name: str,
        contractor_address: str,
        contractor_email: str,
        contractor_fax: str | None,
        corporate_number: str | None,
    ) -> None:
        self.contractor = Contractor(
            contractor_name, contractor_address, contractor_email, contractor_fax, corporate_number
        )
        self.tenant_id = tenant_id

    def change_contractor_details(
        self, details: Contractor, evidence_ref: str, effective_date: date
    ) -> None:
        """Art. 23(8): a reported change of name or address, with the document proving it."""
        self._ensure_not_ended()
        if details.corporate_number != self.contractor.corporate_number:
            # Another corporation is another party: that is a transfer or a succession.
            raise TransferNeedsApprovalError(
                "a new corporate number is a transfer (Art. 6) or a succession (Art. 5)"
            )
        if not evidence_ref.strip():
            raise EvidenceRequiredError("a change of details needs its evidence document")
        _validate_contractor(details)
        self._contractor_details_changed(
            evidence_ref=evidence_ref, effective_date=effective_date, **_contractor_kwargs(details)
        )

    class ContractorDetailsChanged(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = CONTRACTOR_FIELDS
        evidence_ref: str
        effective_date: date
        contractor_name: str
        contractor_address: str
        contractor_email: str
        contractor_fax: str | None
        corporate_number: str | None

    @event(ContractorDetailsChanged)
    def _contractor_details_changed(
        self,
        evidence_ref: str,
        effective_date: date,
        contractor_name: str,
        contractor_address: str,
        contractor_email: str,
        contractor_fax: str | None,
        corporate_number: str | None,
    ) -> None:
        self.contractor = Contractor(
            contractor_name, contractor_address, contractor_email, contractor_fax, corporate_number
        )

    # Users (Arts. 23(4)-(7), 26)

    def register_user(self, name: str, email: str, consent: Consent | None) -> UUID:
        self._ensure_in_force()
        # Art. 26(3): a user is passed on only with consent obtained beforehand.
        if consent is None or not consent.method.strip():
            raise ConsentRequiredError("the user's prior consent must be recorded")
        _require_text(name, "name")
        if "@" not in email:
            raise InvalidValueError("email must be an e-mail address", article="26(2)")
        if len(self.users) + 1 > self.id_count:
            raise IdCountBelowUsersError(f"all {self.id_count} IDs of the contract are in use")
        user_id = uuid4()
        self._user_registered(
            user_id=user_id,
            name=name,
            email=email,
            consent_obtained_at=consent.obtained_at,
            consent_method=consent.method,
        )
        return user_id

    class UserRegistered(Aggregate.Event):
        personal_fields: ClassVar[tuple[str, ...]] = ("name", "email")
        user_id: UUID
        name: str
        email: str
        consent_obtained_at: datetime
        consent_method: str

    @event(UserRegistered)
    def _user_registered(
        self,
        user_id: UUID,
        name: str,
        email: str,
        consent_obtained_at: datetime,
        consent_method: str,
    ) -> None:
        self.users[str(user_id)] = User(user_id, name, email, consent_obtained_at, consent_method)

    def remove_user(self, user_id: UUID) -> None:
        self._ensure_not_ended()
        self._user(user_id)
        self._user_removed(user_id=user_id)

    class UserRemoved(Aggregate.Event):
        user_id: UUID

    @event(UserRemoved)
    def _user_removed(self, user_id: UUID) -> None:
        del self.users[str(user_id)]

    def report_compromise(self, user_id: UUID, reported_at: datetime) -> None:
        """Art. 23(5): the contractor reports that an ID may have been misused."""
        self._ensure_in_force()
        self._user(user_id)
        self._user_credentials_compromised(user_id=user_id, reported_at=reported_at)

    class UserCredentialsCompromised(Aggregate.Event):
        user_id: UUID
        reported_at: datetime

    @event(UserCredentialsCompromised)
    def _user_credentials_compromised(self, user_id: UUID, reported_at: datetime) -> None:
        key = str(user_id)
        self.users[key] = replace(self.users[key], compromised=True)

    def reissue_user_id(self, user_id: UUID, reason: str, urgent: bool = False) -> UUID:
        """Art. 23(6): change a compromised ID; 23(7) wants a notice with the reason first."""
        self._ensure_in_force()
        user = self._user(user_id)
        if not user.compromised:
            raise ReissueNeedsCompromiseError("only a reportedly compromised ID is changed")
        if user.reissue_to is not None:
            raise ReissueNeedsCompromiseError(
                f"a change of this ID to {user.reissue_to} already waits for its notice"
            )
        _require_text(reason, "reason")
        new_user_id = uuid4()
        self._user_id_reissued(
            user_id=user_id,
            new_user_id=new_user_id,
            reason=reason,
            urgent=urgent,
            notice_required=not urgent,
        )
        return new_user_id

    class UserIdReissued(Aggregate.Event):
        user_id: UUID
        new_user_id: UUID
        reason: str
        urgent: bool
        notice_required: bool

    @event(UserIdReissued)
    def _user_id_reissued(
        self, user_id: UUID, new_user_id: UUID, reason: str, urgent: bool, notice_required: bool
    ) -> None:
        if notice_required:
            # Art. 23(7): decided now; the ID changes once the notice with its reason is complete.
            key = str(user_id)
            self.users[key] = replace(self.users[key], reissue_to=new_user_id)
        else:
            self._swap_user_id(user_id, new_user_id)

    def _swap_user_id(self, user_id: UUID, new_user_id: UUID) -> None:
        old = self.users.pop(str(user_id))
        self.users[str(new_user_id)] = replace(
            old, user_id=new_user_id, compromised=False, reissue_to=None
        )

    def _user(self, user_id: UUID) -> User:
        try:
            return self.users[str(user_id)]
        except KeyError:
            raise UnknownUserError(f"no user {user_id} in this contract") from None

    # Construction (Art. 14)

    def start_construction(self, started_on: date) -> None:
        self._ensure_in_force()
        self._ensure_construction_pending()
        self._construction_started(started_on=started_on)

    class ConstructionStarted(Aggregate.Event):
        started_on: date

    @event(ConstructionStarted)
    def _construction_started(self, started_on: date) -> None:
        self.construction = Construction.STARTED

    def cancel_construction(self, cancelled_on: date) -> None:
        self._ensure_not_ended()
        self._ensure_construction_pending()
        self._construction_cancelled(cancelled_on=cancelled_on, reason="request-cancelled")

    class ConstructionCancelled(Aggregate.Event):
        cancelled_on: date | None
        reason: str

    @event(ConstructionCancelled)
    def _construction_cancelled(self, cancelled_on: date | None, reason: str) -> None:
        self.construction = Construction.CANCELLED

    def _ensure_construction_pending(self) -> None:
        if self.construction is Construction.NONE:
            raise NoConstructionFeeError("the contract sets no construction fee")
        if self.construction is not Construction.PENDING:
            raise ConstructionStateError(f"the construction is already {self.construction}")

    def _cancel_pending_construction(self, on: date | None, reason: str) -> None:
        # Art. 14(2): ended before construction starts, the construction fee is not owed.
        if self.construction is Construction.PENDING:
            self._construction_cancelled(cancelled_on=on, reason=reason)

    # Personal data (Art. 18)

    def erase_personal_data(self) -> None:
        if self.status not in ENDED:
            raise ErasureBeforeEndError("personal data is erased only after the contract ends")
        if not self.personal_data_erased:
            self._personal_data_erased()

    class PersonalDataErased(Aggregate.Event):
        pass

    @event(PersonalDataErased)
    def _personal_data_erased(self) -> None:
        self.personal_data_erased = True

    # Guards

    def _ensure_not_ended(self) -> None:
        if self.status in ENDED:
            raise ContractEndedError(
                f"the contract is {self.status}: nothing changes it any more",
                article=ENDED_ARTICLE[self.status],
            )

    def _ensure_in_force(self) -> None:
        self._ensure_not_ended()
        if self.status not in IN_FORCE:
            raise NotActiveError(f"the contract is {self.status}, not yet approved")

    def _ensure_on_or_after_start(self, day: date, what: str, article: str = "3(4)") -> None:
        if self.start_date is not None and day < self.start_date:
            raise DateOrderError(
                f"{what} {day} precedes the start date {self.start_date}", article=article
            )

    def _ensure_before_end(self, day: date, what: str) -> None:
        if self.termination is not None and day > self.termination.effective_date:
            raise DateOrderError(
                f"{what} {day} follows the last day of service {self.termination.effective_date}"
            )


def _contractor_kwargs(contractor: Contractor) -> dict[str, Any]:
    return {
        "contractor_name": contractor.name,
        "contractor_address": contractor.address,
        "contractor_email": contractor.email,
        "contractor_fax": contractor.fax,
        "corporate_number": contractor.corporate_number,
    }
