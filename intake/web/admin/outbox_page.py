"""GET /admin/outbox: mails waiting to go out and mails given up on (never their content);
POST /admin/outbox/retry: queue failed mails again, as `chikanemail outbox retry` does."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intake.web.admin.guard import admin_viewer, web_actor, web_context
from intake.web.admin.words import OUTBOX_STATES, AdminWords, words_for
from intake.web.context import WebContext
from intake.web.rendering import render
from storage.audit_words import MAIL_KINDS
from storage.cases import case_numbers
from storage.models import OutboxMail, OutboxState
from storage.outbox_retry import OutboxRetryRefused, retry_failed_outbox
from storage.outbox_rows import list_outbox_rows

PATH = "/admin/outbox"
# The page lists at most this many mails of each kind, newest first, and says so.
SHOWN = 200


def _rows(context: WebContext) -> tuple[list[OutboxMail], list[OutboxMail], dict[int, str]]:
    database = context.database
    failed = list_outbox_rows(database, state=OutboxState.FAILED.value, limit=SHOWN)
    waiting = [*list_outbox_rows(database, state=OutboxState.SENDING.value, limit=SHOWN),
               *list_outbox_rows(database, state=OutboxState.PENDING.value, limit=SHOWN)]
    numbers = case_numbers(database, [mail.case_id for mail in failed + waiting])
    return failed, waiting[:SHOWN], numbers


def _entry(mail: OutboxMail, numbers: dict[int, str], words: AdminWords) -> dict[str, Any]:
    return {"id": mail.id,
            "case": numbers.get(mail.case_id) if mail.case_id is not None else None,
            "kind": words.word(MAIL_KINDS, mail.kind),
            # As `chikanemail outbox list` shows them: an admin sees every case anyway.
            "to": ", ".join(mail.rcpt_tos),
            "state": words.word(OUTBOX_STATES, mail.state),
            "attempts": mail.attempts,
            "error_words": words.send_error(mail.last_error),
            "error": mail.last_error or "",
            "next_try": words.short(mail.next_attempt_at),
            "created": words.short(mail.created_at)}


async def outbox_page(request: Request) -> Response:
    """The failed mails (with a button to queue them again) and the waiting ones."""
    viewer = admin_viewer(request)
    context = web_context(request)
    failed, waiting, numbers = await asyncio.to_thread(_rows, context)
    words = words_for(viewer.language, context.config.ui.zone, context.clock.now())
    retried = request.query_params.get("retried")
    return render(request, "admin_outbox.html", {
        "failed": [_entry(mail, numbers, words) for mail in failed],
        "waiting": [_entry(mail, numbers, words) for mail in waiting],
        "shown": SHOWN,
        "retried": int(retried) if retried and retried.isdigit() else None,
        "refused": request.query_params.get("refused") == "1"})


async def outbox_retry(request: Request) -> Response:
    """Queue the failed mail the button names (or every failed one) again, as the admin."""
    viewer = admin_viewer(request, method="POST")
    context = web_context(request)
    form = await request.form()
    every = form.get("all") == "1"
    named = str(form.get("mail") or "")
    if not every and not named.isdigit():
        return RedirectResponse(f"{PATH}?refused=1", status_code=303)
    try:
        retried = await asyncio.to_thread(
            retry_failed_outbox, context.database, None if every else [int(named)],
            actor=web_actor(viewer),
            retry_for=timedelta(hours=context.config.notify.retry_deadline_hours),
            now=context.clock.now())
    except OutboxRetryRefused:
        # Another admin (or the CLI) retried it first, or the id was made up.
        return RedirectResponse(f"{PATH}?refused=1", status_code=303)
    if retried:
        context.wake_outbox()
    return RedirectResponse(f"{PATH}?retried={len(retried)}", status_code=303)
