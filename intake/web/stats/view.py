"""What the statistics page shows, in the reader's language: each table's numbers as text
("< 5" where suppressed) and each chart's SVG, title and description."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from babel.numbers import format_decimal
from markupsafe import Markup

from intake.web.stats.charts import chart_svg
from storage.i18n.catalogs import translations
from storage.statistics import CountTable, StatisticsReport, TimeRow
from storage.statistics_suppression import SHOWN_AS
from storage.statistics_words import CATEGORY_WORDS, DIMENSION_TITLES


@dataclass(frozen=True)
class Words:
    """The reader's language: texts and numbers."""

    language: str

    @property
    def gettext(self) -> Callable[[str], str]:
        """The catalog's gettext."""
        return translations(self.language).gettext

    def count(self, value: int | None) -> str:
        """A count, or "< 5" when it is suppressed."""
        return SHOWN_AS if value is None else format_decimal(value, locale=self.language)

    def decimal(self, value: float | None) -> str:
        """A duration with one decimal, or "< 5 cases" when there were too few to show it."""
        if value is None:
            return self.gettext("fewer than 5 cases")
        return format_decimal(value, format="#,##0.0", locale=self.language)


def _description(words: Words, report: StatisticsReport, what: str, drawn: str) -> str:
    _ = words.gettext
    if not report.periods:
        return _("No whole period with cases to show yet.")
    per = _("per month") if report.granularity == "month" else _("per quarter")
    return _("%(drawn)s: %(what)s %(per)s from %(first)s to %(last)s. Counts below 5 and "
             "times over fewer than 5 cases are not drawn; the table with the chart gives "
             "every number, with “< 5” where one is hidden.") % {
        "drawn": drawn, "what": what, "per": per, "first": report.periods[0],
        "last": report.periods[-1]}


def count_table(words: Words, report: StatisticsReport, table: CountTable) -> dict[str, Any]:
    """One dimension's chart (stacked bars per period) and table."""
    _ = words.gettext
    labels = [_(CATEGORY_WORDS[table.dimension][code]) for code in table.categories]
    title = _(DIMENSION_TITLES[table.dimension])
    series = tuple((label, tuple(None if row[index] is None else float(row[index] or 0)
                                 for row in table.cells))
                   for index, label in enumerate(labels))
    chart_id = f"chart-{table.dimension}"
    description = _description(words, report, title.lower(), _("Stacked bars"))
    return {
        "id": chart_id, "title": title, "description": description,
        "chart": Markup(chart_svg(chart_id, "stacked", report.periods, series,  # noqa: S704
                                  title, description)) if report.periods else None,
        "columns": labels,
        "rows": [{"period": period, "cells": [words.count(cell) for cell in row],
                  "total": words.count(total)}
                 for period, row, total in zip(table.periods, table.cells,
                                               table.period_totals, strict=True)],
        "totals": [words.count(total) for total in table.category_totals],
        "total": words.count(table.total),
    }


def time_table(words: Words, report: StatisticsReport, key: str, title: str,
               rows: tuple[TimeRow, ...], unit_hours: float) -> dict[str, Any]:
    """A duration's chart (median and 90th percentile side by side) and table, in hours
    (`unit_hours` 1) or days (24)."""
    _ = words.gettext

    def scaled(value: float | None) -> float | None:
        return None if value is None else round(value / unit_hours, 1)

    series = ((_("median"), tuple(scaled(row.median_hours) for row in rows)),
              (_("90th percentile"), tuple(scaled(row.p90_hours) for row in rows)))
    chart_id = f"chart-{key}"
    description = _description(words, report, title.lower(), _("Bars"))
    return {
        "id": chart_id, "title": title, "description": description,
        "chart": Markup(chart_svg(chart_id, "bars", report.periods, series,  # noqa: S704
                                  title, description)) if report.periods else None,
        "rows": [{"period": row.period, "median": words.decimal(scaled(row.median_hours)),
                  "p90": words.decimal(scaled(row.p90_hours))} for row in rows],
    }


def overdue_table(words: Words, report: StatisticsReport) -> dict[str, Any]:
    """The steps past their deadline per period: chart and table."""
    _ = words.gettext
    title = _("Steps past their deadline")
    chart_id = "chart-overdue"
    description = _description(words, report, title.lower(), _("Bars"))
    series = ((title, tuple(None if count is None else float(count)
                            for count in report.overdue_steps)),)
    return {
        "id": chart_id, "title": title, "description": description,
        "chart": Markup(chart_svg(chart_id, "bars", report.periods, series,  # noqa: S704
                                  title, description)) if report.periods else None,
        "rows": [{"period": period, "count": words.count(count)}
                 for period, count in zip(report.periods, report.overdue_steps, strict=True)],
        "total": words.count(report.overdue_total),
    }


def page_model(report: StatisticsReport, language: str) -> dict[str, Any]:
    """Everything the template shows for the report."""
    words = Words(language)
    _ = words.gettext
    return {
        "report": report,
        "tables": [count_table(words, report, table) for table in report.tables],
        "acknowledge": time_table(words, report, "acknowledge",
                                  _("Time to acknowledge (hours)"),
                                  report.time_to_acknowledge, 1),
        "close": time_table(words, report, "close", _("Time to close (days)"),
                            report.time_to_close, 24),
        "overdue": overdue_table(words, report),
    }
