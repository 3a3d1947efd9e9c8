"""Monthly fee lines: whole months at the full fee, partial months in segments (Art. 13(1))."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

from billing_svc.domain import periods
from billing_svc.domain.lines import Line, LineKind

# Art. 13(1): for proration one month counts as 30.4 days.
DAYS_PER_MONTH = Decimal("30.4")


@dataclass(frozen=True)
class Segment:
    """Days of one month at a constant fee per ID and ID count, both ends inclusive."""

    first: date
    last: date
    monthly_fee_per_id: int
    id_count: int

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def monthly_fee(self) -> int:
        return self.monthly_fee_per_id * self.id_count

    def prorated(self) -> int:
        """floor(fee × ids × days / 30.4), exact in Decimal."""
        amount = Decimal(self.monthly_fee) * self.days / DAYS_PER_MONTH
        return int(amount.to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class Step:
    """A value that applies from `effective` on (until the next step)."""

    effective: date
    value: int


@dataclass
class Tariff:
    """What a contract is charged over time: its service span and its fee and ID-count steps."""

    fee_steps: list[Step] = field(default_factory=list)
    id_steps: list[Step] = field(default_factory=list)
    start: date | None = None
    end: date | None = None

    def set_fee(self, effective: date, value: int) -> None:
        _set_step(self.fee_steps, Step(effective, value))

    def set_id_count(self, effective: date, value: int) -> None:
        _set_step(self.id_steps, Step(effective, value))

    def with_fee_steps(self, steps: list[Step]) -> Tariff:
        """This tariff with `steps` overriding its own fee from each one's effective date."""
        if not steps:
            return self
        fees = {s.effective: s for s in self.fee_steps}
        fees.update((s.effective, s) for s in steps)
        return Tariff(
            sorted(fees.values(), key=lambda s: s.effective), self.id_steps, self.start, self.end
        )

    def segments(self, period: str) -> list[Segment]:
        """The month's service split wherever the fee or the ID count changes."""
        if self.start is None:
            return []
        first = max(self.start, periods.first_day(period))
        last = periods.last_day(period) if self.end is None else self.end
        last = min(last, periods.last_day(period))
        if first > last:
            return []
        fee_steps, id_steps = self.fee_steps, self.id_steps
        if (
            len(fee_steps) == 1
            and len(id_steps) == 1
            and fee_steps[0].effective <= first
            and id_steps[0].effective <= first
        ):
            # Most contracts: one fee and one ID count throughout, one segment.
            return [Segment(first, last, fee_steps[0].value, id_steps[0].value)]
        # A change effective on day D applies from D: D starts a new segment.
        cuts = sorted(
            {s.effective for s in (*self.fee_steps, *self.id_steps) if first < s.effective <= last}
        )
        starts = [first, *cuts]
        ends = [d - timedelta(days=1) for d in cuts] + [last]
        return [
            Segment(a, b, _value_at(self.fee_steps, a), _value_at(self.id_steps, a))
            for a, b in zip(starts, ends, strict=True)
        ]

    def fee_lines(self, period: str) -> list[Line]:
        segments = self.segments(period)
        if not segments:
            return []
        whole = (
            len(segments) == 1
            and segments[0].first == periods.first_day(period)
            and segments[0].last == periods.last_day(period)
        )
        if whole:
            s = segments[0]
            text = f"{period} 月額利用料 {s.id_count} ID × ¥{s.monthly_fee_per_id:,}"
            return [Line(LineKind.MONTHLY_FEE, text, s.monthly_fee)]
        return [
            Line(
                LineKind.PRORATED_FEE,
                f"{period} 日割利用料 {s.first:%m/%d}〜{s.last:%m/%d} ({s.days}日) "
                f"{s.id_count} ID × ¥{s.monthly_fee_per_id:,}",
                s.prorated(),
            )
            for s in segments
        ]

    def fee_total(self, period: str) -> int:
        return sum(line.amount for line in self.fee_lines(period))

    def monthly_fee_on(self, day: date) -> int:
        return _value_at(self.fee_steps, day) * _value_at(self.id_steps, day)


def _set_step(steps: list[Step], step: Step) -> None:
    # A later fact for the same effective date replaces the earlier one.
    kept = [s for s in steps if s.effective != step.effective]
    kept.append(step)
    kept.sort(key=lambda s: s.effective)
    steps[:] = kept


def _value_at(steps: list[Step], day: date) -> int:
    index = bisect_right([s.effective for s in steps], day) - 1
    return steps[max(index, 0)].value if steps else 0
