"""The case page: everything about one case the viewer may see; opening it is audited."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from intake.web.pages.case_view import case_by_number, openable_related, read_case_page
from intake.web.pages.viewing import (
    VIEWED,
    not_found,
    record_view,
    viewer_of,
    visible,
    web_context,
)
from intake.web.rendering import render


def case_page(request: Request) -> Response:
    """GET /cases/{number}: the case, or 404 when it is not there or not the viewer's."""
    context = web_context(request)
    viewer = viewer_of(request)
    rule = visible(request)
    with context.database.read() as session:
        case = case_by_number(session, rule, request.path_params["number"])
        if case is None:
            raise not_found()
        openable = openable_related(session, case, rule)
        page = read_case_page(session, case, may_open=openable.__contains__,
                              language=viewer.language, zone=context.config.ui.zone,
                              now=context.clock.now())
    record_view(request, VIEWED, case.number, details={"what": "case"})
    return render(request, "case.html", {"page": page, "case": page.case})
