"""GET /admin/verify: the last runs of `chikanemail verify` as they were stored (the run
itself is the CLI's or the scheduler's: it re-hashes every blob and may take hours)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from intake.web.admin.guard import admin_viewer, web_context
from intake.web.admin.words import words_for
from intake.web.rendering import render
from storage.verify import recent_verify_runs

# Runs shown, newest first; the problems of the newest run are listed in full.
SHOWN = 10


async def verify_page(request: Request) -> Response:
    """The newest verify runs: when, by whom, how much, and what they found."""
    viewer = admin_viewer(request)
    context = web_context(request)
    runs = await asyncio.to_thread(recent_verify_runs, context.database, SHOWN)
    words = words_for(viewer.language, context.config.ui.zone, context.clock.now())
    return render(request, "admin_verify.html", {
        "runs": [{"id": run.id, "started": words.short(run.started_at),
                  "finished": words.short(run.finished_at), "ok": run.ok,
                  "trigger": run.trigger, "blobs": run.blobs_checked,
                  "mib": f"{run.bytes_checked / (1024 * 1024):.1f}",
                  "events": run.events_checked, "problems": list(run.problems or [])}
                 for run in runs],
        "every_days": context.config.storage.verify_every_days})
