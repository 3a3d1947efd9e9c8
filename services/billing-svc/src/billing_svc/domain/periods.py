"""Calendar months ("YYYY-MM" periods) and the dates billing derives from them."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import date
from functools import lru_cache

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class InvalidPeriodError(ValueError):
    """A period is not a calendar month written `YYYY-MM`."""


@lru_cache(maxsize=1024)
def parse(period: str) -> tuple[int, int]:
    # Cached (like the functions below): a billing run asks about the same few months for
    # every account. An invalid period raises and is not cached.
    match = _PERIOD.match(period)
    if match is None:
        raise InvalidPeriodError(f"period must be YYYY-MM, got {period!r}")
    return int(match.group(1)), int(match.group(2))


def of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@lru_cache(maxsize=1024)
def first_day(period: str) -> date:
    year, month = parse(period)
    return date(year, month, 1)


@lru_cache(maxsize=1024)
def last_day(period: str) -> date:
    year, month = parse(period)
    return date(year, month, calendar.monthrange(year, month)[1])


@lru_cache(maxsize=1024)
def following(period: str) -> str:
    year, month = parse(period)
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def between(first: str, last: str) -> Iterator[str]:
    """Every period from `first` through `last`, inclusive (none when first > last)."""
    current = first
    while current <= last:
        yield current
        current = following(current)


@lru_cache(maxsize=1024)
def due_date(period: str) -> date:
    """The last day of the month after the invoiced one; it never moves for holidays."""
    return last_day(following(period))
