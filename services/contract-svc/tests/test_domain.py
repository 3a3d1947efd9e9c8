"""One test per rule of the Contract and Service aggregates: a command gives events or an error."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from contract_builders import (
    START,
    TERMS,
    a_consent,
    a_contractor,
    a_suspended_contract,
    a_terminated_contract,
    an_active_contract,
    an_application,
    replay,
)

from contract_svc.domain import (
    Construction,
    Contract,
    Contractor,
    Initiator,
    NoticeFor,
    Plan,
    Service,
    Status,
    SuccessionCause,
    due_changes,
)
from contract_svc.domain.errors import (
    AdvanceNoticeError,
    ConsentRequiredError,
    ConstructionStateError,
    ContractEndedError,
    DateOrderError,
    ErasureBeforeEndError,
    EvidenceRequiredError,
    IdCountBelowUsersError,
    InvalidPlanError,
    NoConstructionFeeError,
    NoNoticePendingError,
    NotActiveError,
    NotApprovableError,
    NotRevocableError,
    NotSuspendedError,
    ReissueNeedsCompromiseError,
    SuspensionPeriodRequiredError,
    TerminationGroundError,
    TermsNotAgreedError,
    TermsVersionExistsError,
    TransferNeedsApprovalError,
    UnknownReasonCodeError,
    UnknownTermsVersionError,
    UnknownUserError,
    WrittenNoticeRequiredError,
)

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def names(contract: Contract) -> list[str]:
    return [type(e).__name__ for e in contract.collect_events()]


def apply_with(**overrides: object) -> Contract:
    kwargs: dict[str, object] = {
        "tenant_id": "tenant-1",
        "contractor": a_contractor(),
        "plan": Plan(500, 3),
        "construction_fee": None,
        "terms_version": TERMS,
        "agreed_to_terms": True,
        "published_terms": {TERMS},
    }
    kwargs.update(overrides)
    return Contract.apply(**kwargs)  # type: ignore[arg-type]


# Application and approval (Art. 4)


def test_an_application_records_applied_with_the_agreed_terms_version() -> None:
    contract = an_application()
    assert contract.status is Status.APPLIED
    assert contract.terms_version == TERMS
    assert names(contract) == ["Applied"]


def test_an_application_without_agreement_to_the_terms_is_refused() -> None:
    with pytest.raises(TermsNotAgreedError):
        apply_with(agreed_to_terms=False)


def test_an_application_to_unpublished_terms_is_refused() -> None:
    with pytest.raises(UnknownTermsVersionError):
        apply_with(terms_version="1999-01")


def test_an_application_for_no_ids_is_refused() -> None:
    with pytest.raises(InvalidPlanError):
        apply_with(plan=Plan(500, 0))


def test_approval_makes_the_contract_active_from_its_start_date() -> None:
    contract = an_application()
    contract.approve(START)
    assert (contract.status, contract.start_date) == (Status.ACTIVE, START)


def test_an_active_contract_cannot_be_approved_again() -> None:
    with pytest.raises(NotApprovableError):
        an_active_contract().approve(START)


def test_a_rejected_application_cannot_be_approved() -> None:
    contract = an_application()
    contract.reject("art4.3.4")
    with pytest.raises(ContractEndedError):
        contract.approve(START)


def test_a_rejection_needs_an_article_4_3_reason_code() -> None:
    with pytest.raises(UnknownReasonCodeError):
        an_application().reject("art8.1.1")


def test_an_approval_is_revoked_only_once_given() -> None:
    with pytest.raises(NotRevocableError):
        an_application().revoke_approval("art4.3.4", START)


def test_revoking_an_approval_ends_the_contract() -> None:
    contract = an_active_contract()
    contract.revoke_approval("art4.3.4", date(2026, 4, 10))
    assert (contract.status, contract.end_date) == (Status.REVOKED, date(2026, 4, 10))


# ID count


def test_the_id_count_cannot_fall_below_the_registered_users() -> None:
    contract = an_active_contract(id_count=2)
    contract.register_user("A", "a@x.example", a_consent())
    contract.register_user("B", "b@x.example", a_consent())
    with pytest.raises(IdCountBelowUsersError):
        contract.change_id_count(1, date(2026, 5, 1))


def test_a_user_beyond_the_id_count_is_refused() -> None:
    contract = an_active_contract(id_count=1)
    contract.register_user("A", "a@x.example", a_consent())
    with pytest.raises(IdCountBelowUsersError):
        contract.register_user("B", "b@x.example", a_consent())


def test_the_id_count_is_at_least_one() -> None:
    with pytest.raises(InvalidPlanError):
        an_active_contract().change_id_count(0, date(2026, 5, 1))


def test_an_id_count_change_cannot_precede_the_start_date() -> None:
    with pytest.raises(DateOrderError):
        an_active_contract().change_id_count(5, date(2026, 3, 31))


def test_an_id_count_change_carries_its_effective_date() -> None:
    contract = an_active_contract()
    contract.change_id_count(5, date(2026, 5, 15))
    assert (contract.id_count, contract.id_count_effective_date) == (5, date(2026, 5, 15))


def test_an_id_count_change_needs_an_approved_contract() -> None:
    with pytest.raises(NotActiveError):
        an_application().change_id_count(5, date(2026, 5, 1))


# Suspension (Art. 11)


def test_a_suspension_needs_an_article_11_reason() -> None:
    with pytest.raises(UnknownReasonCodeError):
        an_active_contract().suspend("art10.1.1", date(2026, 5, 1), date(2026, 5, 31))


def test_a_suspension_without_a_period_is_refused_unless_urgent() -> None:
    with pytest.raises(SuspensionPeriodRequiredError):
        an_active_contract().suspend("art11.1.1", date(2026, 5, 1), None)


def test_a_suspension_cannot_end_before_it_starts() -> None:
    with pytest.raises(DateOrderError):
        an_active_contract().suspend("art11.1.1", date(2026, 5, 10), date(2026, 5, 1))


def test_a_noticed_suspension_waits_for_its_notice() -> None:
    contract = an_active_contract()
    contract.suspend("art11.1.2", date(2026, 5, 1), date(2026, 5, 31))
    assert contract.suspension is not None and contract.suspension.notice_required
    assert due_changes(contract, date(2026, 5, 2)) == []
    contract.record_notice_completion(NoticeFor.SUSPENSION, NOW)
    contract.take_effect(date(2026, 5, 2))
    assert contract.status is Status.SUSPENDED


def test_an_urgent_suspension_takes_effect_on_its_start_date_without_notice() -> None:
    contract = an_active_contract()
    contract.suspend("art11.1.1", date(2026, 5, 10), None, urgent=True)
    assert contract.take_effect(date(2026, 5, 9)) == []
    contract.take_effect(date(2026, 5, 10))
    assert contract.status is Status.SUSPENDED


def test_a_suspension_ends_the_day_after_its_end_date() -> None:
    contract = an_active_contract()
    contract.suspend("art11.1.1", date(2026, 5, 1), date(2026, 5, 31), urgent=True)
    contract.take_effect(date(2026, 5, 31))
    assert contract.status is Status.SUSPENDED
    contract.take_effect(date(2026, 6, 1))
    assert contract.status is Status.ACTIVE


def test_a_resumption_needs_a_suspension() -> None:
    with pytest.raises(NotSuspendedError):
        an_active_contract().resume(date(2026, 5, 1))


def test_a_resumption_takes_effect_on_its_date() -> None:
    contract = a_suspended_contract()
    contract.resume(date(2026, 5, 20))
    contract.take_effect(date(2026, 5, 19))
    assert contract.status is Status.SUSPENDED
    contract.take_effect(date(2026, 5, 20))
    assert contract.status is Status.ACTIVE


def test_a_resumption_cannot_precede_the_suspension() -> None:
    with pytest.raises(DateOrderError):
        a_suspended_contract().resume(date(2026, 4, 30))


# Termination (Arts. 7, 8)


def test_a_contractor_terminates_only_with_a_written_notice() -> None:
    with pytest.raises(WrittenNoticeRequiredError):
        an_active_contract().terminate(
            initiator=Initiator.CONTRACTOR,
            reason_code="art7",
            effective_date=date(2026, 6, 30),
            today=date(2026, 6, 1),
        )


def test_a_contractors_written_notice_may_have_been_received_before_it_was_recorded() -> None:
    contract = an_active_contract()
    contract.terminate(
        initiator=Initiator.CONTRACTOR,
        reason_code="art7",
        effective_date=date(2026, 5, 31),
        today=date(2026, 6, 10),
        written_notice_ref="LTR-2026-0042",
        written_notice_received_on=date(2026, 5, 1),
    )
    contract.take_effect(date(2026, 6, 10))
    assert (contract.status, contract.end_date) == (Status.TERMINATED, date(2026, 5, 31))


def test_a_company_termination_on_article_8_1_grounds_waits_for_its_prior_notice() -> None:
    contract = an_active_contract()
    contract.terminate(
        initiator=Initiator.COMPANY,
        reason_code="art8.1.2",
        effective_date=date(2026, 6, 30),
        today=date(2026, 6, 1),
    )
    assert contract.take_effect(date(2026, 7, 1)) == []
    contract.record_notice_completion(NoticeFor.TERMINATION, NOW)
    contract.take_effect(date(2026, 7, 1))
    assert contract.status is Status.TERMINATED


def test_a_company_termination_on_article_8_2_grounds_needs_no_notice() -> None:
    contract = an_active_contract()
    contract.terminate(
        initiator=Initiator.COMPANY,
        reason_code="art8.2.2",
        effective_date=date(2026, 6, 30),
        today=date(2026, 6, 1),
    )
    assert contract.termination is not None and not contract.termination.notice_required
    contract.take_effect(date(2026, 7, 1))
    assert contract.status is Status.TERMINATED


def test_a_termination_takes_effect_only_after_its_last_day_of_service() -> None:
    contract = an_active_contract()
    contract.terminate(
        initiator=Initiator.COMPANY,
        reason_code="art8.2.1",
        effective_date=date(2026, 6, 30),
        today=date(2026, 6, 1),
    )
    contract.take_effect(date(2026, 6, 30))
    assert contract.status is Status.ACTIVE


def test_a_company_termination_needs_an_article_8_reason() -> None:
    with pytest.raises(UnknownReasonCodeError):
        an_active_contract().terminate(
            initiator=Initiator.COMPANY,
            reason_code="art7",
            effective_date=date(2026, 6, 30),
            today=date(2026, 6, 1),
        )


def test_termination_for_an_uncured_suspension_needs_a_suspension() -> None:
    with pytest.raises(TerminationGroundError):
        an_active_contract().terminate(
            initiator=Initiator.COMPANY,
            reason_code="art8.1.1",
            effective_date=date(2026, 6, 30),
            today=date(2026, 6, 1),
        )


def test_a_termination_cannot_precede_the_start_date() -> None:
    with pytest.raises(DateOrderError):
        an_active_contract().terminate(
            initiator=Initiator.COMPANY,
            reason_code="art8.2.1",
            effective_date=date(2026, 3, 1),
            today=date(2026, 6, 1),
        )


def test_nothing_changes_a_terminated_contract() -> None:
    with pytest.raises(ContractEndedError):
        a_terminated_contract().change_id_count(5, date(2026, 6, 1))


def test_a_notice_completion_needs_a_notice_waiting() -> None:
    with pytest.raises(NoNoticePendingError):
        an_active_contract().record_notice_completion(NoticeFor.TERMINATION, NOW)


# The contractor (Arts. 5, 6, 23(8))


def test_a_succession_needs_its_evidence_document() -> None:
    with pytest.raises(EvidenceRequiredError):
        an_active_contract().record_succession(
            a_contractor("Successor K.K."), SuccessionCause.MERGER, " ", date(2026, 5, 1)
        )


def test_a_succession_hands_the_contract_to_the_successor() -> None:
    contract = an_active_contract()
    contract.record_succession(
        a_contractor("Successor K.K."), SuccessionCause.SPLIT, "DOC-7", date(2026, 5, 1)
    )
    assert contract.contractor.name == "Successor K.K."


def test_a_transfer_needs_the_companys_approval() -> None:
    with pytest.raises(TransferNeedsApprovalError):
        an_active_contract().approve_transfer(
            a_contractor("Buyer K.K."), "", date(2026, 5, 1), "tenant-2"
        )


def test_an_approved_transfer_moves_the_contract_to_the_new_tenant() -> None:
    contract = an_active_contract()
    contract.approve_transfer(a_contractor("Buyer K.K."), "APR-1", date(2026, 5, 1), "tenant-2")
    assert (contract.tenant_id, contract.contractor.name) == ("tenant-2", "Buyer K.K.")


def test_a_change_of_details_cannot_swap_the_corporation() -> None:
    other = Contractor("Other K.K.", "Osaka", "o@x.example", corporate_number="1234567890123")
    with pytest.raises(TransferNeedsApprovalError):
        an_active_contract().change_contractor_details(other, "DOC-1", date(2026, 5, 1))


def test_a_change_of_details_needs_its_evidence_document() -> None:
    with pytest.raises(EvidenceRequiredError):
        an_active_contract().change_contractor_details(
            a_contractor("Renamed K.K."), "", date(2026, 5, 1)
        )


# Users (Arts. 23, 26)


def test_a_user_needs_recorded_prior_consent() -> None:
    with pytest.raises(ConsentRequiredError):
        an_active_contract().register_user("Taro", "taro@x.example", None)


def test_removing_an_unknown_user_is_refused() -> None:
    from uuid import uuid4

    with pytest.raises(UnknownUserError):
        an_active_contract().remove_user(uuid4())


def test_only_a_compromised_id_is_reissued() -> None:
    contract = an_active_contract()
    user_id = contract.register_user("Taro", "taro@x.example", a_consent())
    with pytest.raises(ReissueNeedsCompromiseError):
        contract.reissue_user_id(user_id, "reported lost")


def a_contract_with_a_compromised_user() -> tuple[Contract, UUID]:
    contract = an_active_contract()
    user_id = contract.register_user("Taro", "taro@x.example", a_consent())
    contract.report_compromise(user_id, NOW)
    return contract, user_id


def test_an_urgent_reissue_replaces_the_compromised_id_at_once() -> None:
    contract, user_id = a_contract_with_a_compromised_user()
    new_id = contract.reissue_user_id(user_id, "phone stolen", urgent=True)
    assert list(contract.users) == [str(new_id)]
    assert not contract.users[str(new_id)].compromised


def test_a_reissue_that_is_not_urgent_waits_for_its_notice_under_article_23_7() -> None:
    contract, user_id = a_contract_with_a_compromised_user()
    new_id = contract.reissue_user_id(user_id, "phone stolen")
    reissued = contract.pending_events[-1]
    assert isinstance(reissued, Contract.UserIdReissued) and reissued.notice_required
    assert list(contract.users) == [str(user_id)]
    assert contract.users[str(user_id)].reissue_to == new_id

    contract.record_notice_completion(NoticeFor.REISSUE, NOW, user_id)
    assert list(contract.users) == [str(new_id)]
    assert replay(contract).users == contract.users


def test_a_reissue_notice_cannot_complete_without_a_pending_change() -> None:
    contract, user_id = a_contract_with_a_compromised_user()
    with pytest.raises(NoNoticePendingError):
        contract.record_notice_completion(NoticeFor.REISSUE, NOW, user_id)


def test_a_user_whose_id_change_waits_for_notice_is_not_reissued_twice() -> None:
    contract, user_id = a_contract_with_a_compromised_user()
    contract.reissue_user_id(user_id, "phone stolen")
    with pytest.raises(ReissueNeedsCompromiseError):
        contract.reissue_user_id(user_id, "again")


# Construction (Art. 14)


def test_construction_needs_a_construction_fee() -> None:
    with pytest.raises(NoConstructionFeeError):
        an_active_contract().start_construction(date(2026, 4, 5))


def test_started_construction_cannot_be_cancelled() -> None:
    contract = an_active_contract(construction_fee=30000)
    contract.start_construction(date(2026, 4, 5))
    with pytest.raises(ConstructionStateError):
        contract.cancel_construction(date(2026, 4, 6))


def test_terminating_before_construction_starts_cancels_the_construction() -> None:
    contract = an_active_contract(construction_fee=30000)
    contract.terminate(
        initiator=Initiator.COMPANY,
        reason_code="art8.2.1",
        effective_date=date(2026, 6, 30),
        today=date(2026, 6, 1),
    )
    assert contract.construction is Construction.CANCELLED
    assert "ConstructionCancelled" in names(contract)


# Personal data


def test_personal_data_is_erased_only_after_the_contract_ends() -> None:
    with pytest.raises(ErasureBeforeEndError):
        an_active_contract().erase_personal_data()


# Service-wide facts (Arts. 2, 10, 12(2), 22)


def test_a_terms_version_is_published_once() -> None:
    service = Service.open()
    service.publish_terms(TERMS, "第1条 ...", date(2026, 4, 1), NOW)
    with pytest.raises(TermsVersionExistsError):
        service.publish_terms(TERMS, "第1条 ...", date(2026, 4, 1), NOW)


def test_an_interruption_needs_an_article_10_reason() -> None:
    with pytest.raises(UnknownReasonCodeError):
        Service.open().announce_interruption(
            reason_code="art22",
            starts_at=NOW,
            ends_at=None,
            scope="all",
            description="",
            urgent=True,
        )


def test_a_fee_change_takes_effect_only_after_its_notice() -> None:
    with pytest.raises(AdvanceNoticeError):
        Service.open().change_fee(600, date(2026, 5, 1), today=date(2026, 5, 1))


def test_a_discontinuation_is_announced_in_advance() -> None:
    with pytest.raises(AdvanceNoticeError):
        Service.open().announce_discontinuation(date(2026, 5, 1), "all", "", date(2026, 5, 1))
