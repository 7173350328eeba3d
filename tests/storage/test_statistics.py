"""The statistics on 500 generated cases (SQLite and PostgreSQL): every shown count equals
one made in plain Python from the generated data, every count below 5 reads as suppressed,
and no suppressed count can be worked out from its row or column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from storage.database import Database
from storage.migrate import upgrade_database
from storage.statistics import StatisticsReport, case_statistics
from storage.statistics_dimensions import DIMENSIONS
from storage.statistics_periods import Month, Quarter
from tests.storage.statistics_cases import NOW, ZONE, Generated, generate, median_and_p90
from tests.support import postgres_schema


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Database, Generated]]:
    """The 500 cases in a database of their own on each backend, shared by the module's
    tests (which only read them)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('statistics') / 'test.sqlite3'}"
        else:
            url = stack.enter_context(postgres_schema())
        database = Database(url)
        stack.callback(database.dispose)
        upgrade_database(database)
        yield database, generate(database)


def _report(database: Database, granularity: str) -> StatisticsReport:
    with database.read() as session:
        return case_statistics(session, granularity, now=NOW, zone=ZONE)  # type: ignore[arg-type]


def test_shown_counts_match_plain_counts_and_small_ones_are_suppressed(
        generated: tuple[Database, Generated]) -> None:
    database, cases = generated
    report = _report(database, "month")
    assert report.periods[0] == "2024-11" and report.periods[-1] == "2026-11"
    shown = suppressed_small = 0
    for table in report.tables:
        expected = cases.count(table.dimension)
        assert table.categories == DIMENSIONS[table.dimension]
        for period, row, total in zip(table.periods, table.cells, table.period_totals,
                                      strict=True):
            for category, cell in zip(table.categories, row, strict=True):
                truth = expected[(period, category)]
                if truth < 5:
                    assert cell is None, (table.dimension, period, category)
                    suppressed_small += 1
                elif cell is not None:
                    assert cell == truth, (table.dimension, period, category)
                    shown += 1
            truth_total = sum(1 for case in cases.counted() if cases.month(case) == period)
            assert total in (None, truth_total)
            assert truth_total >= 5 or total is None
        for category, total in zip(table.categories, table.category_totals, strict=True):
            truth = sum(count for (_, name), count in expected.items() if name == category)
            assert total == truth if truth >= 5 and total is not None else total is None
    assert shown > 100 and suppressed_small > 20  # both kinds of cell were looked at
    overdue = cases.overdue()
    for period, count in zip(report.periods, report.overdue_steps, strict=True):
        assert count is None if overdue[period] < 5 else count in (None, overdue[period])
    for rows, column in ((report.time_to_acknowledge, "acknowledged_at"),
                         (report.time_to_close, "closed_at")):
        hours = cases.hours(column)
        for time_row in rows:
            if len(hours[time_row.period]) < 5:
                assert time_row.median_hours is None and time_row.p90_hours is None
            else:
                assert (time_row.median_hours, time_row.p90_hours) == median_and_p90(
                    hours[time_row.period])


def test_no_suppressed_count_can_be_worked_out_from_its_row_or_column(
        generated: tuple[Database, Generated]) -> None:
    database, cases = generated
    for granularity in ("month", "quarter"):
        report = _report(database, granularity)
        totals = None
        for table in report.tables:
            # The cases of a period are one number: suppressed alike in every table.
            pattern = [total is None for total in table.period_totals]
            assert totals is None or pattern == totals
            totals = pattern
            for row, total in zip(table.cells, table.period_totals, strict=True):
                assert [*row, total].count(None) != 1, (granularity, table.dimension, row)
            for index, category_total in enumerate(table.category_totals):
                column = [row[index] for row in table.cells]
                assert [*column, category_total].count(None) != 1, (table.dimension, index)
            assert [*table.category_totals, table.total].count(None) != 1
            assert [*table.period_totals, table.total].count(None) != 1
        assert [*report.overdue_steps, report.overdue_total].count(None) != 1
    # A quarter shown beside its three months gives none of them away either.
    months = _report(database, "month")
    quarters = _report(database, "quarter")
    for table in quarters.tables:
        monthly = months.table(table.dimension)
        for period, row in zip(table.periods, table.cells, strict=True):
            quarter = Quarter(int(period[:4]) * 4 + int(period[-1]) - 1)
            names = [month.name for month in quarter.months]
            rows = [monthly.cells[monthly.periods.index(name)] for name in names
                    if name in monthly.periods]
            for index in range(len(table.categories)):
                line = [row[index], *(month_row[index] for month_row in rows)]
                assert line.count(None) != 1, (period, table.dimension, index)
    assert len(cases.counted()) == sum(1 for case in cases.cases
                                       if Month.of(2026, 11).name >= cases.month(case))


def test_a_range_is_whole_periods_and_keeps_the_protection_of_the_whole(
        generated: tuple[Database, Generated]) -> None:
    database, _cases = generated
    with database.read() as session:
        whole = case_statistics(session, "quarter", now=NOW, zone=ZONE)
        part = case_statistics(session, "quarter", Quarter(2025 * 4), Quarter(2025 * 4 + 3),
                               now=NOW, zone=ZONE)
    assert part.periods == ("2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4")
    assert whole.periods[-1] == "2026-Q3"  # the quarter still running is not counted
    for table in part.tables:
        full = whole.table(table.dimension)
        offset = full.periods.index("2025-Q1")
        assert table.cells == full.cells[offset:offset + 4]
        assert table.category_totals == full.category_totals  # over every period counted
