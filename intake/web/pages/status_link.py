"""POST /cases/{number}/status-link/retire: whoever may see the case retires its reporter's
status link (issue 21), e.g. when it may have reached someone else. Audited as
`status-link-retired` with actor `web:<address>`."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intake.web.pages.case_view import case_by_number
from intake.web.pages.viewing import not_found, viewer_of, visible, web_actor, web_context
from storage.status_links import BY_MANAGER, retire_status_links

log = logging.getLogger("chikanemail.web.status_link")

# What the case page is told after the form (`?status_link=`), for the panel to say.
RETIRED = "retired"
NONE_LIVE = "none"


async def retire_status_link(request: Request) -> Response:
    """Retire the case's live status links, then back to the case page; 404 for a case the
    viewer may not see."""
    context = web_context(request)
    number = request.path_params["number"]
    actor = web_actor(viewer_of(request))
    rule = visible(request)

    def retire() -> int | None:
        with context.database.write() as session:
            case = case_by_number(session, rule, number)
            if case is None:
                return None
            return retire_status_links(session, case, reason=BY_MANAGER, actor=actor,
                                       now=context.clock.now())

    retired = await asyncio.to_thread(retire)
    if retired is None:
        raise not_found()
    log.info("case %s: status link retired from the web view (%d)", number, retired)
    outcome = RETIRED if retired else NONE_LIVE
    return RedirectResponse(f"/cases/{number}?status_link={outcome}#status-link-heading",
                            status_code=303)
