"""GET /stats: the safety group's statistics, for `[plan] admins` and `[stats] viewers`
(anyone else a 404), and GET /stats/charts.css, the charts' style sheet.

The form asks for monthly or quarterly counts and a range of whole periods by GET: nothing
changes. A period given as a month for quarterly counts names its quarter, and a quarter
for monthly counts its months.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from intake.web.access import Viewer
from intake.web.context import WebContext
from intake.web.rendering import render
from intake.web.stats.charts import chart_css
from intake.web.stats.view import page_model
from storage.statistics import StatisticsReport, build_report, statistics_data
from storage.statistics_periods import (
    DEFAULT_PERIODS,
    GRANULARITIES,
    Granularity,
    Period,
    as_granularity,
    default_first_period,
    last_complete_month,
    parse_period,
)
from storage.statistics_queries import MonthlyData

PATH = "/stats"


@dataclass(frozen=True)
class Choice:
    """What the form asked for (always valid; what was not understood is left out)."""

    granularity: Granularity
    first: Period | None
    last: Period | None


def read_choice(params: QueryParams) -> Choice:
    """The form's choice from the query string."""
    given = params.get("granularity", "month")
    granularity: Granularity = "quarter" if given == "quarter" else "month"

    def period(name: str, *, end: bool) -> Period | None:
        try:
            return as_granularity(parse_period(params.get(name, "")), granularity, end=end)
        except ValueError:
            return None

    return Choice(granularity, period("from", end=False), period("to", end=True))


def stats_viewer(request: Request) -> Viewer:
    """The logged-in admin or stats viewer the request is for; 404 for anyone else."""
    viewer = getattr(request.state, "viewer", None)
    if not isinstance(viewer, Viewer) or not viewer.may_read_statistics:
        raise HTTPException(status_code=404)
    return viewer


class DataCache:
    """The counts read for the page, kept CACHE_SECONDS: reading them takes a good part of
    a second on 100,000 cases, and they are of whole months that have ended, so a page may
    show them a minute old. Kept per database and zone; one reader fills it at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str, str], tuple[datetime, MonthlyData]] = {}

    def data(self, context: WebContext, *, now: datetime, zone: tzinfo) -> MonthlyData:
        """The counts, from the cache while they are fresh, else read now."""
        key = (context.database.url.render_as_string(), str(zone),
               last_complete_month(now, zone).name)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and timedelta(0) <= now - kept[0] < CACHE_TIME:
                return kept[1]
            with context.database.read() as session:
                data = statistics_data(session, now=now, zone=zone)
            self._kept = {key: (now, data)}
            return data


CACHE_TIME = timedelta(seconds=60)
_cache = DataCache()


def report_for(context: WebContext, choice: Choice, *, now: datetime,
               zone: tzinfo) -> StatisticsReport:
    """The statistics for the choice (the default range when none is given)."""
    first = choice.first
    if first is None and choice.last is None:
        first = default_first_period(choice.granularity, now, zone,
                                     DEFAULT_PERIODS[choice.granularity])
    data = _cache.data(context, now=now, zone=zone)
    return build_report(data, choice.granularity, first, choice.last, now=now, zone=zone)


async def stats_page(request: Request) -> Response:
    """The statistics page: the form, then each chart with its table."""
    viewer = stats_viewer(request)
    context: WebContext = request.app.state.context
    choice = read_choice(request.query_params)
    report = await asyncio.to_thread(report_for, context, choice, now=context.clock.now(),
                                     zone=context.config.ui.zone)
    return render(request, "stats.html", {
        **page_model(report, viewer.language),
        "granularities": GRANULARITIES, "granularity": choice.granularity,
        "first": report.periods[0] if report.periods else "",
        "last": report.periods[-1] if report.periods else "",
    })


async def charts_css(request: Request) -> Response:
    """The charts' style sheet (what pygal would inline), for the same readers."""
    stats_viewer(request)
    return Response(chart_css(), media_type="text/css",
                    headers={"Cache-Control": "private, max-age=3600"})


def routes() -> list[BaseRoute]:
    """The statistics page's routes."""
    return [Route(PATH, stats_page, methods=["GET"], name="stats"),
            Route(f"{PATH}/charts.css", charts_css, methods=["GET"], name="stats_css")]
