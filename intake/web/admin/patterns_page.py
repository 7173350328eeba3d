"""GET /admin/patterns: groups of related cases, as `chikanemail patterns` finds them (the
same harasser's address, their domain, or the same screenshot)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from intake.web.admin.guard import admin_viewer, web_context
from intake.web.admin.words import words_for
from intake.web.rendering import render
from storage.audit_words import LINK_REASONS
from storage.case_links import pattern_groups


async def patterns_page(request: Request) -> Response:
    """Each group: its cases (linked to their pages) and why they belong together."""
    viewer = admin_viewer(request)
    context = web_context(request)
    groups = await asyncio.to_thread(pattern_groups, context.database)
    words = words_for(viewer.language, context.config.ui.zone, context.clock.now())
    return render(request, "admin_patterns.html", {"groups": [
        {"cases": [{"number": case.number, "open": case.status == "open",
                    "manager": case.manager, "opened": words.short(case.opened_at)}
                   for case in group.cases],
         "reasons": [{"words": words.word(LINK_REASONS, reason), "detail": detail}
                     for reason, detail in group.reasons]}
        for group in groups]})
