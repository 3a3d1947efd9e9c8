"""The rules a command can break: each error names its rule and the article it rests on."""

from __future__ import annotations


class ContractRuleError(Exception):
    """A command refused by a rule of the terms; nothing was recorded."""

    rule: str = "rule"
    article: str = ""

    def __init__(self, message: str, *, article: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if article is not None:
            self.article = article

    def __str__(self) -> str:
        return f"{self.message} (Art. {self.article}, rule {self.rule})"


class TermsNotAgreedError(ContractRuleError):
    rule, article = "terms-must-be-agreed", "4(1)"


class UnknownTermsVersionError(ContractRuleError):
    rule, article = "terms-version-unknown", "2"


class TermsVersionExistsError(ContractRuleError):
    rule, article = "terms-version-exists", "2"


class InvalidPlanError(ContractRuleError):
    rule, article = "plan-invalid", "4(1)"


class UnknownReasonCodeError(ContractRuleError):
    rule, article = "reason-code-unknown", "4(3)"


class ContractEndedError(ContractRuleError):
    rule, article = "contract-ended", "18"


class NotApprovableError(ContractRuleError):
    rule, article = "approval-needs-application", "4(2)"


class NotRejectableError(ContractRuleError):
    rule, article = "rejection-needs-application", "4(3)"


class NotRevocableError(ContractRuleError):
    rule, article = "revocation-needs-approval", "4(4)"


class NotActiveError(ContractRuleError):
    rule, article = "contract-not-in-force", "4(2)"


class DateOrderError(ContractRuleError):
    rule, article = "dates-out-of-order", "13(1)"


class IdCountBelowUsersError(ContractRuleError):
    rule, article = "id-count-covers-users", "4(1)"


class SuspensionPeriodRequiredError(ContractRuleError):
    rule, article = "suspension-needs-period", "11(2)"


class SuspensionExistsError(ContractRuleError):
    rule, article = "suspension-already-recorded", "11(1)"


class NotSuspendedError(ContractRuleError):
    rule, article = "resumption-needs-suspension", "11(1)"


class WrittenNoticeRequiredError(ContractRuleError):
    rule, article = "termination-needs-written-notice", "7"


class TerminationExistsError(ContractRuleError):
    rule, article = "termination-already-recorded", "8"


class TerminationGroundError(ContractRuleError):
    rule, article = "termination-ground-unmet", "8(1)"


class NoNoticePendingError(ContractRuleError):
    rule, article = "no-notice-pending", "24"


class TransferNeedsApprovalError(ContractRuleError):
    rule, article = "transfer-needs-approval", "6"


class EvidenceRequiredError(ContractRuleError):
    rule, article = "change-needs-evidence", "23(8)"


class ConsentRequiredError(ContractRuleError):
    rule, article = "user-needs-consent", "26(3)"


class UnknownUserError(ContractRuleError):
    rule, article = "user-unknown", "23(4)"


class ReissueNeedsCompromiseError(ContractRuleError):
    rule, article = "reissue-needs-compromise", "23(6)"


class NoConstructionFeeError(ContractRuleError):
    rule, article = "construction-fee-not-set", "14(1)"


class ConstructionStateError(ContractRuleError):
    rule, article = "construction-already-decided", "14(2)"


class AdvanceNoticeError(ContractRuleError):
    rule, article = "change-needs-advance-notice", "12(2)"


class ErasureBeforeEndError(ContractRuleError):
    rule, article = "erasure-after-end", "18"


class InvalidValueError(ContractRuleError):
    rule, article = "value-invalid", "4(1)"
