"""The periods the statistics count by: whole calendar months ("2026-11") and whole quarters
("2026-Q4") in the workplace's zone ([ui] timezone). There are no other windows: a window a
reader could choose freely could be differenced against a neighbouring one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

Granularity = Literal["month", "quarter"]
GRANULARITIES: tuple[Granularity, ...] = ("month", "quarter")
# Without a range the page and the CLI show the last 12 months, or the last 8 quarters.
DEFAULT_PERIODS: dict[Granularity, int] = {"month": 12, "quarter": 8}
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month, counted from year 0 so months can be compared and stepped."""

    index: int  # year * 12 + (month - 1)

    @classmethod
    def of(cls, year: int, month: int) -> Month:
        """The month `month` (1-12) of `year`."""
        return cls(year * 12 + month - 1)

    @property
    def year(self) -> int:
        """The calendar year."""
        return self.index // 12

    @property
    def month(self) -> int:
        """The month of the year, 1-12."""
        return self.index % 12 + 1

    @property
    def quarter(self) -> Quarter:
        """The quarter the month is in."""
        return Quarter(self.year * 4 + (self.month - 1) // 3)

    @property
    def name(self) -> str:
        """E.g. "2026-11"."""
        return f"{self.year:04d}-{self.month:02d}"

    def start(self, zone: tzinfo) -> datetime:
        """Midnight at the start of the month in the zone, as UTC."""
        return datetime(self.year, self.month, 1, tzinfo=zone).astimezone(UTC)

    def next(self) -> Month:
        """The month after."""
        return Month(self.index + 1)


@dataclass(frozen=True, order=True)
class Quarter:
    """One calendar quarter (January-March is Q1)."""

    index: int  # year * 4 + (quarter - 1)

    @property
    def year(self) -> int:
        """The calendar year."""
        return self.index // 4

    @property
    def number(self) -> int:
        """1-4."""
        return self.index % 4 + 1

    @property
    def name(self) -> str:
        """E.g. "2026-Q4"."""
        return f"{self.year:04d}-Q{self.number}"

    @property
    def first_month(self) -> Month:
        """The quarter's first month."""
        return Month.of(self.year, 3 * self.number - 2)

    @property
    def last_month(self) -> Month:
        """The quarter's last month."""
        return Month(self.first_month.index + 2)

    @property
    def months(self) -> tuple[Month, Month, Month]:
        """The three months of the quarter."""
        first = self.first_month.index
        return Month(first), Month(first + 1), Month(first + 2)


Period = Month | Quarter


def parse_period(text: str) -> Period:
    """A period from its name ("2026-11" or "2026-Q4"); ValueError for anything else."""
    value = text.strip()
    month = _MONTH.fullmatch(value)
    if month:
        return Month.of(int(month.group(1)), int(month.group(2)))
    quarter = _QUARTER.fullmatch(value)
    if quarter:
        return Quarter(int(quarter.group(1)) * 4 + int(quarter.group(2)) - 1)
    raise ValueError(f"{text!r} is not a month (2026-11) or a quarter (2026-Q4)")


def as_granularity(period: Period, granularity: Granularity, *, end: bool) -> Period:
    """The whole period of `granularity` that covers `period`: a month names its quarter; a
    quarter names its first month (or its last, for the end of a range)."""
    if granularity == "quarter":
        return period.quarter if isinstance(period, Month) else period
    if isinstance(period, Quarter):
        return period.last_month if end else period.first_month
    return period


def month_of(moment: datetime, zone: tzinfo) -> Month:
    """The month a moment falls in, in the zone."""
    local = moment.astimezone(zone)
    return Month.of(local.year, local.month)


def last_complete_month(now: datetime, zone: tzinfo) -> Month:
    """The newest month that has ended (the month before the current one)."""
    return Month(month_of(now, zone).index - 1)


def last_complete_quarter(now: datetime, zone: tzinfo) -> Quarter:
    """The newest quarter that has ended."""
    return Quarter(month_of(now, zone).quarter.index - 1)


def periods_between(first: Period, last: Period) -> list[Period]:
    """Every period from `first` to `last` (both of one kind), in order."""
    kind = type(first)
    return [kind(index) for index in range(first.index, last.index + 1)]


def default_first_period(granularity: Granularity, now: datetime, zone: tzinfo,
                         count: int) -> Period:
    """The first of the `count` newest whole periods that have ended."""
    if granularity == "quarter":
        return Quarter(last_complete_quarter(now, zone).index - count + 1)
    return Month(last_complete_month(now, zone).index - count + 1)
