"""The kept-out mails, as `chikanemail quarantine list|show|retry` has them: GET
/admin/quarantine, GET /admin/quarantine/ID, POST /admin/quarantine/ID/retry.

Never a mail's body: why it was kept out, when, its SHA-256, its envelope and its audit
events. Looking at one is a `viewed` event, retrying it a `quarantine-retried` event, both
by `web:<address>`, as the CLI's are by `cli:<user>`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intake.web.access import Viewer
from intake.web.admin.guard import admin_viewer, web_actor, web_context
from intake.web.admin.words import QUARANTINE_REASONS, AdminWords, words_for
from intake.web.context import WebContext
from intake.web.rendering import render
from storage import audit
from storage.audit_words import SOURCES, describe, label
from storage.models import MessageState, QuarantineReason
from storage.quarantine import (
    QuarantineDetail,
    RetryRefused,
    list_quarantined,
    quarantine_detail,
    retry_quarantined,
)

PATH = "/admin/quarantine"


def _words(request: Request, viewer: Viewer) -> AdminWords:
    context = web_context(request)
    return words_for(viewer.language, context.config.ui.zone, context.clock.now())


async def quarantine_list(request: Request) -> Response:
    """Every kept-out mail, oldest first: when, why, tries, the error's first line."""
    viewer = admin_viewer(request)
    entries = await asyncio.to_thread(list_quarantined, web_context(request).database)
    words = _words(request, viewer)
    retried = request.query_params.get("retried")
    return render(request, "admin_quarantine.html", {
        "entries": [{"id": entry.message_pk, "received": words.short(entry.received_at),
                     "reason": words.word(QUARANTINE_REASONS, entry.reason),
                     "attempts": entry.attempts, "error": entry.error_line,
                     "sha256": entry.sha256, "sender": entry.mail_from or "—"}
                    for entry in entries],
        "retried": int(retried) if retried and retried.isdigit() else None})


def _look(context: WebContext, message_id: int, actor: str) -> QuarantineDetail | None:
    detail = quarantine_detail(context.database, message_id)
    if detail is not None:
        audit.record_committed(context.database, "viewed", actor=actor,
                               message_sha256=detail.message.sha256,
                               details={"what": "quarantine", "via": "web"},
                               now=context.clock.now())
    return detail


def _event(event: Any, words: AdminWords) -> dict[str, Any]:
    described = describe(event.action, event.details, words.language)
    return {"seq": event.seq, "time": words.short(event.occurred_at),
            "action": label(event.action, words.language), "actor": event.actor,
            "sentence": described.sentence}


async def quarantine_message(request: Request) -> Response:
    """One kept-out mail (by its id): its envelope, the whole error and its audit events."""
    viewer = admin_viewer(request)
    message_id = int(request.path_params["message_id"])
    context = web_context(request)
    detail = await asyncio.to_thread(_look, context, message_id, web_actor(viewer))
    if detail is None:
        raise HTTPException(status_code=404)
    words = _words(request, viewer)
    row = detail.message
    return render(request, "admin_quarantine_message.html", {
        "message": {
            "id": row.id, "sha256": row.sha256, "size": row.size,
            "source": words.word(SOURCES, row.source), "received": words.long(row.received_at),
            "quarantined": row.state == MessageState.QUARANTINED,
            "reason": words.word(QUARANTINE_REASONS, row.quarantine_reason),
            "foreign": row.quarantine_reason == QuarantineReason.FOREIGN_SENDER.value,
            "attempts": row.attempts, "sender": row.mail_from or "—",
            "recipients": ", ".join(row.rcpt_tos or []) or "—",
            "subject": row.subject or "—", "message_id": row.message_id or "—",
            "error": row.last_error or ""},
        "events": [_event(event, words) for event in detail.events],
        "refused": request.query_params.get("refused") == "1"})


async def quarantine_retry(request: Request) -> Response:
    """Hand the kept-out mail back to the worker, as the admin; a foreign sender's only
    when the form says to let it in anyway."""
    viewer = admin_viewer(request, method="POST")
    message_id = int(request.path_params["message_id"])
    context = web_context(request)
    form = await request.form()
    try:
        retried = await asyncio.to_thread(
            retry_quarantined, context.database, [message_id], actor=web_actor(viewer),
            include_foreign=form.get("include_foreign") == "1", now=context.clock.now())
    except RetryRefused:
        return RedirectResponse(f"{PATH}/{message_id}?refused=1", status_code=303)
    return RedirectResponse(f"{PATH}?retried={len(retried)}", status_code=303)
