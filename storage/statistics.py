"""The safety group's statistics (issue 22, point 5): cases per month or quarter by type,
medium, relation and absence; time to acknowledge and to close; steps past their deadline.

Counted by the period in which a case was opened, in the workplace's zone, over whole
periods that have ended. Every count goes through `statistics_suppression` before anyone
sees it, over *every* period counted (not only those asked for) and months and quarters
together: a reader who asks for different ranges, or for months and then quarters, gets
numbers protected as one table, so no two views can be subtracted to undo a suppression.

The database is read in few queries that return only grouped counts and two columns of
durations (`storage.statistics_queries`); no name, address or case number is read.
"""

from __future__ import annotations

import math
import statistics as stats
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from storage.statistics_dimensions import DIMENSIONS, MAX_MONTHS, MINIMUM_CASES_FOR_TIMES
from storage.statistics_periods import (
    Granularity,
    Month,
    Period,
    Quarter,
    last_complete_month,
    last_complete_quarter,
)
from storage.statistics_queries import MonthlyData, read_monthly_data
from storage.statistics_suppression import JSON_SUPPRESSED, Line, suppressed_entries

_ALL = "*"
def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    return float(stats.median(values))


def percentile_90(values: Sequence[float]) -> float:
    """The 90th percentile by nearest rank: the smallest value with at least 90 % of the
    values at or below it."""
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


@dataclass(frozen=True)
class CountTable:
    """Cases per period and category of one dimension, as they may be shown: None is a
    suppressed count ("< 5"). `category_totals` and `total` cover every period counted."""

    dimension: str
    categories: tuple[str, ...]
    periods: tuple[str, ...]
    cells: tuple[tuple[int | None, ...], ...]  # [period][category]
    period_totals: tuple[int | None, ...]
    category_totals: tuple[int | None, ...]
    total: int | None


@dataclass(frozen=True)
class TimeRow:
    """Median and 90th percentile of a duration in hours over a period's cases; None when
    fewer than MINIMUM_CASES_FOR_TIMES cases have one."""

    period: str
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class StatisticsReport:
    """Everything the page and the CLI show for a range of whole periods."""

    granularity: Granularity
    periods: tuple[str, ...]
    counted_from: str | None  # every period counted (and protected together)
    counted_to: str | None
    tables: tuple[CountTable, ...]
    time_to_acknowledge: tuple[TimeRow, ...]
    time_to_close: tuple[TimeRow, ...]
    overdue_steps: tuple[int | None, ...]  # per period
    overdue_total: int | None  # over every period counted

    def table(self, dimension: str) -> CountTable:
        """The table of one dimension."""
        return next(table for table in self.tables if table.dimension == dimension)

    def as_json(self) -> dict[str, Any]:
        """The report with English keys and codes; a suppressed count is "<5"."""
        def value(number: int | float | None) -> int | float | str:
            return JSON_SUPPRESSED if number is None else number

        return {
            "granularity": self.granularity,
            "periods": list(self.periods),
            "counted_from": self.counted_from,
            "counted_to": self.counted_to,
            "tables": {table.dimension: {
                "categories": list(table.categories),
                "rows": [{"period": period,
                          "counts": {category: value(cell) for category, cell
                                     in zip(table.categories, row, strict=True)},
                          "total": value(total)}
                         for period, row, total in zip(table.periods, table.cells,
                                                       table.period_totals, strict=True)],
                "totals_all_periods": {category: value(total) for category, total
                                       in zip(table.categories, table.category_totals,
                                              strict=True)},
                "total_all_periods": value(table.total),
            } for table in self.tables},
            "time_to_acknowledge_hours": [_time_json(row, value)
                                          for row in self.time_to_acknowledge],
            "time_to_close_hours": [_time_json(row, value) for row in self.time_to_close],
            "overdue_steps": {
                "rows": [{"period": period, "count": value(count)}
                         for period, count in zip(self.periods, self.overdue_steps,
                                                  strict=True)],
                "total_all_periods": value(self.overdue_total),
            },
        }


def _time_json(row: TimeRow, value: Any) -> dict[str, Any]:
    return {"period": row.period, "median": value(row.median_hours),
            "p90": value(row.p90_hours)}


def _round_hours(seconds: Sequence[float], measure: Any) -> float | None:
    if len(seconds) < MINIMUM_CASES_FOR_TIMES:
        return None
    return round(float(measure(seconds)) / 3600, 1)


@dataclass(frozen=True)
class _Spans:
    months: tuple[Month, ...]
    quarters: tuple[Quarter, ...]


def _spans(data: MonthlyData, now: datetime, zone: tzinfo) -> _Spans:
    if data.first_month is None:
        return _Spans((), ())
    last = last_complete_month(now, zone)
    months = tuple(Month(index) for index in range(data.first_month.index, last.index + 1))
    quarters = tuple(Quarter(index) for index in range(
        data.first_month.quarter.index, last_complete_quarter(now, zone).index + 1))
    return _Spans(months, quarters)


def _protected_values(data: MonthlyData,
                      spans: _Spans) -> tuple[dict[Hashable, int], list[Line]]:
    """Every count of both granularities by key, and the lines that tie them."""
    values: dict[Hashable, int] = {}
    lines: list[Line] = []
    by_kind: dict[str, Sequence[Period]] = {"m": spans.months, "q": spans.quarters}

    def months_of(kind: str, period: Period) -> tuple[Month, ...]:
        return (period,) if isinstance(period, Month) else tuple(
            month for month in period.months if month in data_months)

    data_months = set(spans.months)
    for kind, periods in by_kind.items():
        for period in periods:
            months = months_of(kind, period)
            values[(kind, period, _ALL)] = sum(data.cases.get(month, 0) for month in months)
            for dimension, categories in DIMENSIONS.items():
                for category in categories:
                    values[(kind, period, dimension, category)] = sum(
                        data.counts.get((dimension, month, category), 0) for month in months)
            values[("o" + kind, period)] = sum(data.overdue.get(month, 0) for month in months)
        values[(kind, _ALL, _ALL)] = sum(values[(kind, period, _ALL)] for period in periods)
        values[("o" + kind, _ALL)] = sum(values[("o" + kind, period)] for period in periods)
        lines.append(Line((kind, _ALL, _ALL), tuple((kind, p, _ALL) for p in periods)))
        lines.append(Line(("o" + kind, _ALL), tuple(("o" + kind, p) for p in periods)))
        for dimension, categories in DIMENSIONS.items():
            for category in categories:
                total_key = (kind, _ALL, dimension, category)
                values[total_key] = sum(values[(kind, p, dimension, category)]
                                        for p in periods)
                lines.append(Line(total_key, tuple((kind, p, dimension, category)
                                                   for p in periods)))
            lines.append(Line((kind, _ALL, _ALL), tuple(
                (kind, _ALL, dimension, category) for category in categories)))
            for period in periods:
                lines.append(Line((kind, period, _ALL), tuple(
                    (kind, period, dimension, category) for category in categories)))
    # A quarter is the sum of its months; the totals over all months are those over all
    # quarters plus the months after the last whole quarter.
    tail = tuple(month for month in spans.months
                 if not spans.quarters or month > spans.quarters[-1].last_month)
    for quarter in spans.quarters:
        months = tuple(month for month in quarter.months if month in data_months)
        lines.append(Line(("q", quarter, _ALL), tuple(("m", m, _ALL) for m in months)))
        lines.append(Line(("oq", quarter), tuple(("om", m) for m in months)))
        for dimension, categories in DIMENSIONS.items():
            for category in categories:
                lines.append(Line(("q", quarter, dimension, category), tuple(
                    ("m", m, dimension, category) for m in months)))
    lines.append(Line(("m", _ALL, _ALL), (("q", _ALL, _ALL), *(("m", m, _ALL) for m in tail))))
    lines.append(Line(("om", _ALL), (("oq", _ALL), *(("om", m) for m in tail))))
    for dimension, categories in DIMENSIONS.items():
        for category in categories:
            lines.append(Line(("m", _ALL, dimension, category), (
                ("q", _ALL, dimension, category),
                *(("m", m, dimension, category) for m in tail))))
    return values, lines


def build_report(data: MonthlyData, granularity: Granularity, first: Period | None,
                 last: Period | None, *, now: datetime, zone: tzinfo) -> StatisticsReport:
    """The report for the periods from `first` to `last` (whole periods of `granularity`;
    None: the counted history's first or last), clipped to the periods counted."""
    spans = _spans(data, now, zone)
    values, lines = _protected_values(data, spans)
    hidden = suppressed_entries(values, lines)
    kind = "m" if granularity == "month" else "q"
    available: Sequence[Period] = spans.months if kind == "m" else spans.quarters

    def show(key: Hashable) -> int | None:
        return None if key in hidden else values[key]

    low = first.index if first is not None else -1
    high = last.index if last is not None else 10**9
    periods = [period for period in available if low <= period.index <= high]
    tables = tuple(CountTable(
        dimension=dimension, categories=categories,
        periods=tuple(period.name for period in periods),
        cells=tuple(tuple(show((kind, period, dimension, category)) for category in categories)
                    for period in periods),
        period_totals=tuple(show((kind, period, _ALL)) for period in periods),
        category_totals=tuple(show((kind, _ALL, dimension, category))
                              for category in categories),
        total=show((kind, _ALL, _ALL)),
    ) for dimension, categories in DIMENSIONS.items())

    def times(durations: Mapping[Month, Sequence[float]]) -> tuple[TimeRow, ...]:
        rows = []
        for period in periods:
            months = (period,) if isinstance(period, Month) else period.months
            seconds = [value for month in months for value in durations.get(month, ())]
            rows.append(TimeRow(period.name, _round_hours(seconds, median),
                                _round_hours(seconds, percentile_90)))
        return tuple(rows)

    return StatisticsReport(
        granularity=granularity, periods=tuple(period.name for period in periods),
        counted_from=available[0].name if available else None,
        counted_to=available[-1].name if available else None,
        tables=tables,
        time_to_acknowledge=times(data.acknowledge_seconds),
        time_to_close=times(data.close_seconds),
        overdue_steps=tuple(show(("o" + kind, period)) for period in periods),
        overdue_total=show(("o" + kind, _ALL)),
    )


def statistics_data(session: Session, *, now: datetime, zone: tzinfo) -> MonthlyData:
    """The counts of every whole month that has ended, read from the database now."""
    return read_monthly_data(session, until=last_complete_month(now, zone), zone=zone,
                             now=now, max_months=MAX_MONTHS)


def case_statistics(session: Session, granularity: Granularity, first: Period | None = None,
                    last: Period | None = None, *, now: datetime,
                    zone: tzinfo) -> StatisticsReport:
    """The statistics for whole periods from `first` to `last`, read from the database now
    (whole months or quarters that have ended, in `zone`), every count protected."""
    data = statistics_data(session, now=now, zone=zone)
    return build_report(data, granularity, first, last, now=now, zone=zone)
