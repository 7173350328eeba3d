"""The case list: filters, search, counts and pages; with htmx, only the list is swapped."""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import true
from starlette.requests import Request
from starlette.responses import Response

from intake.web.pages.case_list import FLAGS, list_cases, managed_by, parse_filters
from intake.web.pages.viewing import viewer_of, visible, web_context
from intake.web.rendering import render
from storage.time_text import short_datetime


def case_list(request: Request) -> Response:
    """GET /cases: the cases the viewer sees under the query string's filters. Writes no
    audit event: the list shows no evidence."""
    context = web_context(request)
    viewer = viewer_of(request)
    filters = parse_filters(request.query_params)
    now = context.clock.now()
    with context.database.read() as session:
        # A manager, deputy or default manager sees only their own cases: all are "mine".
        # An admin sees every case, and their own are those they manage.
        mine = managed_by(viewer.address) if viewer.is_admin else true()
        listing = list_cases(session, visible(request), mine, filters, now)
    zone = context.config.ui.zone

    def link(**changes: object) -> str:
        return "/cases?" + urlencode(filters.query(**changes))

    page = {
        "listing": listing, "filters": listing.filters, "flags": FLAGS, "link": link,
        "opened": {row.number: short_datetime(row.opened_at, viewer.language, zone, now=now)
                   for row in listing.rows},
    }
    # htmx asks for the list alone when a filter changes; the page works without it.
    template = "case_list_results.html" if request.headers.get("HX-Request") else "cases.html"
    return render(request, template, page, headers={"Vary": "HX-Request"})
