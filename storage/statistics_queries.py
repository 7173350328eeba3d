"""The statistics' reads from the database: grouped counts per month, and the durations to
acknowledge and to close, by the month a case was opened in the workplace's zone.

A month is found in SQL by comparing `opened_at` with the months' starts in UTC (a CASE
expression), so the same query runs on SQLite and PostgreSQL and uses the index on
`opened_at` (revision 0015). Only the columns counted are read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.orm import Session

from storage.models import Case, CaseStep
from storage.statistics_dimensions import category_of
from storage.statistics_periods import Month, month_of


@dataclass(frozen=True)
class MonthlyData:
    """What was read: the first month counted, cases per month, cases per (dimension, month,
    category), steps past their deadline per month, and durations in seconds per month."""

    first_month: Month | None
    cases: Mapping[Month, int] = field(default_factory=dict)
    counts: Mapping[tuple[str, Month, str], int] = field(default_factory=dict)
    overdue: Mapping[Month, int] = field(default_factory=dict)
    acknowledge_seconds: Mapping[Month, list[float]] = field(default_factory=dict)
    close_seconds: Mapping[Month, list[float]] = field(default_factory=dict)


# The column each dimension reads.
_COLUMNS: Mapping[str, Any] = {
    "harassment_type": Case.harassment_type,
    "medium": Case.medium,
    "relation": Case.relation_detail,
    "absence": Case.absence,
}


def _month_expression(months: list[Month], zone: tzinfo, low: int = 0,
                      high: int | None = None) -> ColumnElement[Any]:
    """The index in `months` of the month a case was opened in (the range is filtered):
    CASE expressions nested as a binary search, a few comparisons a row however many
    months are counted."""
    high = len(months) if high is None else high
    if high - low == 1:
        return literal(low)
    middle = (low + high) // 2
    return case((Case.opened_at < months[middle].start(zone),
                 _month_expression(months, zone, low, middle)),
                else_=_month_expression(months, zone, middle, high))


def _seconds_between(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def read_monthly_data(session: Session, *, until: Month, zone: tzinfo, now: datetime,
                      max_months: int) -> MonthlyData:
    """The counts of every month from the first case's (at most `max_months` back) to
    `until`, both whole."""
    oldest = session.execute(select(func.min(Case.opened_at))).scalar_one_or_none()
    if oldest is None:
        return MonthlyData(first_month=None)
    first = max(month_of(oldest, zone), Month(until.index - max_months + 1))
    if first > until:
        return MonthlyData(first_month=None)
    months = [Month(index) for index in range(first.index, until.index + 1)]
    in_range = and_(Case.opened_at >= first.start(zone),
                    Case.opened_at < until.next().start(zone))
    month_number = _month_expression(months, zone).label("month")
    # Core rows, not ORM rows: the ORM's per-row work is a third of the time on 100,000.
    connection = session.connection()

    cases: dict[Month, int] = defaultdict(int)
    counts: dict[tuple[str, Month, str], int] = defaultdict(int)
    for dimension, column in _COLUMNS.items():
        inner = select(month_number, column.label("code")).where(in_range).subquery()
        rows = connection.execute(select(inner.c.month, inner.c.code, func.count())
                                  .group_by(inner.c.month, inner.c.code))
        for number, code, count in rows:
            month = months[number]
            counts[(dimension, month, category_of(dimension, code))] += count
            if dimension == "harassment_type":
                cases[month] += count

    overdue_inner = (select(month_number).select_from(CaseStep)
                     .join(Case, Case.id == CaseStep.case_id)
                     .where(in_range, CaseStep.done_at.is_(None), CaseStep.due_at < now)
                     .subquery())
    overdue = {months[number]: count for number, count in connection.execute(
        select(overdue_inner.c.month, func.count()).group_by(overdue_inner.c.month))}

    def durations(later: Any) -> dict[Month, list[float]]:
        found: dict[int, list[float]] = defaultdict(list)
        rows = connection.execute(select(month_number,
                                         _seconds_between(session, later, Case.opened_at))
                                  .where(in_range, later.is_not(None))).all()
        for number, seconds in rows:
            found[number].append(seconds)
        # A clock set back could make a time negative: counted as no time at all.
        return {months[number]: [max(0.0, float(value)) for value in values]
                for number, values in found.items()}

    return MonthlyData(first_month=first, cases=dict(cases), counts=dict(counts),
                       overdue=overdue, acknowledge_seconds=durations(Case.acknowledged_at),
                       close_seconds=durations(Case.closed_at))
