"""`chikanemail stats`: the safety group's statistics, the same protected numbers as the
page /stats (docs/statistics.md).

Whole months (`--monthly`, the default) or quarters (`--quarterly`) that have ended; `--from`
and `--to` take a month ("2026-01") or a quarter ("2026-Q1") and are widened to whole periods
of the kind asked for. Text tables in the workplace's language fit 80 columns; `--json` and
`--csv` keep English keys and codes, and write a suppressed count as "<5".
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from intake.commands.cli.context import CliContext, open_database, pass_context
from intake.commands.cli.display import Reader, new_table, print_table, reader_of, wide_option

if TYPE_CHECKING:
    from storage.statistics_periods import Granularity

# Periods side by side in one text table (with the category and the total: 80 columns).
_PERIODS_PER_TABLE = 4


def _period(value: str | None) -> Any:
    from storage.statistics_periods import parse_period

    if value is None:
        return None
    try:
        return parse_period(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("stats")
@click.option("--monthly", "granularity", flag_value="month", default=True,
              help="Count per calendar month (the default).")
@click.option("--quarterly", "granularity", flag_value="quarter",
              help="Count per calendar quarter.")
@click.option("--from", "first", metavar="PERIOD",
              help="First month (2026-01) or quarter (2026-Q1); default: 12 months or "
                   "8 quarters back.")
@click.option("--to", "last", metavar="PERIOD",
              help="Last month or quarter; default: the newest that has ended.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (English keys and codes).")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV: table, period, category, value.")
@wide_option
@pass_context
def stats_command(context: CliContext, granularity: str, first: str | None, last: str | None,
                  as_json: bool, as_csv: bool, wide: bool) -> None:
    """Statistics for the safety group: cases per period by type, medium, relation and
    absence, times to acknowledge and close, steps past their deadline. No count below 5
    is shown."""
    from storage.models import utc_now
    from storage.statistics import case_statistics
    from storage.statistics_periods import (
        DEFAULT_PERIODS,
        as_granularity,
        default_first_period,
    )

    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be used together")
    kind: Granularity = "quarter" if granularity == "quarter" else "month"
    start, end = _period(first), _period(last)
    start = as_granularity(start, kind, end=False) if start is not None else None
    end = as_granularity(end, kind, end=True) if end is not None else None
    config = context.config
    now = utc_now()
    if start is None and end is None:
        start = default_first_period(kind, now, config.ui.zone, DEFAULT_PERIODS[kind])
    database = open_database(context)
    try:
        with database.read() as session:
            report = case_statistics(session, kind, start, end, now=now, zone=config.ui.zone)
    finally:
        database.dispose()
    data = report.as_json()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["table", "period", "category", "value"])
        writer.writerows(csv_rows(data))
    else:
        _print_text(report, reader_of(config), wide=wide)


def csv_rows(data: dict[str, Any]) -> Iterator[list[Any]]:
    """The JSON report as rows of (table, period, category, value); "all" is every period
    counted, "total" every category."""
    for dimension, table in data["tables"].items():
        for row in table["rows"]:
            for category, value in row["counts"].items():
                yield [dimension, row["period"], category, value]
            yield [dimension, row["period"], "total", row["total"]]
        for category, value in table["totals_all_periods"].items():
            yield [dimension, "all", category, value]
        yield [dimension, "all", "total", table["total_all_periods"]]
    for key in ("time_to_acknowledge_hours", "time_to_close_hours"):
        for row in data[key]:
            yield [key, row["period"], "median", row["median"]]
            yield [key, row["period"], "p90", row["p90"]]
    for row in data["overdue_steps"]["rows"]:
        yield ["overdue_steps", row["period"], "count", row["count"]]
    yield ["overdue_steps", "all", "count", data["overdue_steps"]["total_all_periods"]]


def _print_text(report: Any, reader: Reader, *, wide: bool) -> None:
    from storage.statistics_suppression import SHOWN_AS
    from storage.statistics_words import CATEGORY_WORDS, DIMENSION_TITLES

    _ = reader.gettext

    def count(value: int | None) -> str:
        return SHOWN_AS if value is None else str(value)

    def hours(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    if not report.periods:
        click.echo(_("No whole period with cases to show yet."))
        return
    click.echo(textwrap.fill(_(
        "Periods with cases: %(first)s to %(last)s. No count below 5 is shown (“< 5”), nor "
        "any number that would give one away.") % {"first": report.counted_from,
                                                    "last": report.counted_to}, width=79))
    step = len(report.periods) if wide else _PERIODS_PER_TABLE
    for table in report.tables:
        for offset in range(0, len(table.periods), step):
            periods = table.periods[offset:offset + step]
            grid = new_table(_(DIMENSION_TITLES[table.dimension]),
                             [("", False), *((period, True) for period in periods),
                              (_("All periods"), True)], wide=wide)
            for index, code in enumerate(table.categories):
                grid.add_row(reader.gettext(CATEGORY_WORDS[table.dimension][code]),
                             *(count(row[index]) for row in table.cells[offset:offset + step]),
                             count(table.category_totals[index]))
            grid.add_row(_("Total"), *(count(total) for total
                                       in table.period_totals[offset:offset + step]),
                         count(table.total))
            print_table(grid, wide=wide)
    grid = new_table(_("Times and steps past their deadline"), [
        (_("Period"), True), (_("hours to acknowledge: median"), False),
        (_("hours to acknowledge: 90 %"), False), (_("hours to close: median"), False),
        (_("hours to close: 90 %"), False), (_("steps past their deadline"), False)],
        wide=wide)
    for period, acknowledge, close, overdue in zip(
            report.periods, report.time_to_acknowledge, report.time_to_close,
            report.overdue_steps, strict=True):
        grid.add_row(period, hours(acknowledge.median_hours), hours(acknowledge.p90_hours),
                     hours(close.median_hours), hours(close.p90_hours), count(overdue))
    print_table(grid, wide=wide)
