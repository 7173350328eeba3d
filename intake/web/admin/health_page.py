"""GET /admin/health: the checks of `chikanemail health`, run now, with their findings."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from intake.service.health import is_healthy, run_health_checks
from intake.service.health.words import HEALTH_CHECK_NAMES, HEALTH_STATUSES
from intake.web.admin.guard import admin_viewer, web_context
from intake.web.admin.words import words_for
from intake.web.rendering import render


async def health_page(request: Request) -> Response:
    """Every health check, in the CLI's order: its status, name and finding, in the admin's
    language."""
    viewer = admin_viewer(request)
    context = web_context(request)
    now = context.clock.now()
    # The checks open sockets and read the disk: never on the event loop.
    results = await asyncio.to_thread(run_health_checks, context.config, now=now)
    words = words_for(viewer.language, context.config.ui.zone, now)
    checks = [{"name": result.name,
               "label": words.word(HEALTH_CHECK_NAMES, result.name),
               "status": result.finding.status.value,
               "status_words": words.word(HEALTH_STATUSES, result.finding.status.value),
               "summary": result.finding.in_language(viewer.language)}
              for result in results]
    return render(request, "admin_health.html", {
        "checks": checks, "healthy": is_healthy(results),
        "warnings": sum(check["status"] == "warn" for check in checks),
        "checked_at": words.long(now)})
