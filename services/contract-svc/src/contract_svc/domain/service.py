"""Service-wide facts with one fixed id: terms versions, interruptions, discontinuation, fees."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from contract_svc.domain import codes
from contract_svc.domain.errors import (
    AdvanceNoticeError,
    DateOrderError,
    InvalidPlanError,
    InvalidValueError,
    TermsVersionExistsError,
    UnknownReasonCodeError,
)

SERVICE_ID = uuid5(UUID("6f1d2c1e-8a39-4d55-9b53-2f1b0c6a7e10"), "smartid/contract-svc/service")
SCOPES = ("all", "partial")


def _require_scope(scope: str, description: str, article: str) -> None:
    if scope not in SCOPES:
        raise InvalidValueError(f"scope must be one of {SCOPES}", article=article)
    if scope == "partial" and not description.strip():
        raise InvalidValueError("a partial scope needs a description of the part", article=article)


class Service(Aggregate):
    """SECOM Smartphone ID itself: what applies to every contract."""

    class Opened(Aggregate.Created):
        pass

    def __init__(self) -> None:
        self.terms: dict[str, date] = {}
        self.interruptions: list[UUID] = []
        self.discontinuation_date: date | None = None
        self.fee_changes: list[tuple[int, date]] = []

    @classmethod
    def open(cls) -> Service:
        return cls._create(cls.Opened, id=SERVICE_ID)

    def publish_terms(
        self, version: str, content: str, effective_date: date, published_at: datetime
    ) -> None:
        """Art. 2: a terms version is posted with its content and when it takes effect."""
        if not version.strip() or not content.strip():
            raise InvalidValueError("terms need a version and their content", article="2")
        if version in self.terms:
            raise TermsVersionExistsError(f"terms version {version!r} is already published")
        self._terms_published(
            version=version,
            content=content,
            effective_date=effective_date,
            published_at=published_at,
        )

    class TermsPublished(Aggregate.Event):
        version: str
        content: str
        effective_date: date
        published_at: datetime

    @event(TermsPublished)
    def _terms_published(
        self, version: str, content: str, effective_date: date, published_at: datetime
    ) -> None:
        self.terms[version] = effective_date

    def announce_interruption(
        self,
        *,
        reason_code: str,
        starts_at: datetime,
        ends_at: datetime | None,
        scope: str,
        description: str,
        urgent: bool,
    ) -> UUID:
        """Art. 10: interrupt all or part of the service; notice first unless urgent (10(2))."""
        if reason_code not in codes.INTERRUPTION:
            raise UnknownReasonCodeError(
                f"reason code {reason_code!r} is not one of {sorted(codes.INTERRUPTION)}",
                article="10(1)",
            )
        if ends_at is not None and ends_at <= starts_at:
            raise DateOrderError("the interruption ends before it starts", article="10(1)")
        _require_scope(scope, description, "10(1)")
        interruption_id = uuid4()
        self._interruption_announced(
            interruption_id=interruption_id,
            reason_code=reason_code,
            starts_at=starts_at,
            ends_at=ends_at,
            scope=scope,
            description=description,
            urgent=urgent,
            notice_required=not urgent,
        )
        return interruption_id

    class InterruptionAnnounced(Aggregate.Event):
        interruption_id: UUID
        reason_code: str
        starts_at: datetime
        ends_at: datetime | None
        scope: str
        description: str
        urgent: bool
        notice_required: bool

    @event(InterruptionAnnounced)
    def _interruption_announced(
        self,
        interruption_id: UUID,
        reason_code: str,
        starts_at: datetime,
        ends_at: datetime | None,
        scope: str,
        description: str,
        urgent: bool,
        notice_required: bool,
    ) -> None:
        self.interruptions.append(interruption_id)

    def announce_discontinuation(
        self, effective_date: date, scope: str, description: str, today: date
    ) -> None:
        """Art. 22: discontinue all or part of the service; `effective_date` is its last day."""
        # Art. 22(4): announced a reasonable period in advance, so never for today or the past.
        if effective_date <= today:
            raise AdvanceNoticeError(
                "a discontinuation must be announced before its date", article="22(4)"
            )
        _require_scope(scope, description, "22(1)")
        self._discontinuation_announced(
            reason_code="art22",
            effective_date=effective_date,
            scope=scope,
            description=description,
            announced_on=today,
            notice_required=True,
        )

    class DiscontinuationAnnounced(Aggregate.Event):
        reason_code: str
        effective_date: date
        scope: str
        description: str
        announced_on: date
        notice_required: bool

    @event(DiscontinuationAnnounced)
    def _discontinuation_announced(
        self,
        reason_code: str,
        effective_date: date,
        scope: str,
        description: str,
        announced_on: date,
        notice_required: bool,
    ) -> None:
        if scope == "all":
            self.discontinuation_date = effective_date

    def change_fee(self, monthly_fee_per_id: int, effective_date: date, today: date) -> None:
        """Art. 12(2): a new fee applies from its effective date, after notice."""
        if monthly_fee_per_id < 0:
            raise InvalidPlanError("monthly_fee_per_id must not be negative", article="12(2)")
        if effective_date <= today:
            raise AdvanceNoticeError("a fee change takes effect only after its notice")
        self._fee_changed(
            monthly_fee_per_id=monthly_fee_per_id,
            effective_date=effective_date,
            announced_on=today,
            notice_required=True,
        )

    class FeeChanged(Aggregate.Event):
        monthly_fee_per_id: int
        effective_date: date
        announced_on: date
        notice_required: bool

    @event(FeeChanged)
    def _fee_changed(
        self,
        monthly_fee_per_id: int,
        effective_date: date,
        announced_on: date,
        notice_required: bool,
    ) -> None:
        self.fee_changes.append((monthly_fee_per_id, effective_date))
