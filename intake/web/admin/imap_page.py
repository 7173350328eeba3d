"""GET /admin/imap: each `[[imap]]` mailbox as `chikanemail imap status` reports it, and the
mails left on their servers for their size, read from the stored state (no server is asked)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from intake.receive.imap.status import imap_status
from intake.web.admin.guard import admin_viewer, web_context
from intake.web.admin.words import words_for
from intake.web.context import WebContext
from intake.web.rendering import render
from storage.imap_state import OversizedMessage, oversized_messages


def _read(context: WebContext) -> tuple[list[dict[str, Any]], list[OversizedMessage]]:
    return (imap_status(context.database, context.config.imap),
            oversized_messages(context.database))


async def imap_page(request: Request) -> Response:
    """The mailboxes: connected, last success, last error, UIDVALIDITY, last UID; and each
    mail left on a server (mailbox, folder, UID, size, when it was seen)."""
    viewer = admin_viewer(request)
    context = web_context(request)
    entries, left = await asyncio.to_thread(_read, context)
    words = words_for(viewer.language, context.config.ui.zone, context.clock.now())
    return render(request, "admin_imap.html", {
        "mailboxes": [{**entry,
                       "last_success": words.short_iso(entry["last_success_at"]),
                       "last_error_time": words.short_iso(entry["last_error_at"])}
                      for entry in entries],
        "left": [{"mailbox": item.mailbox, "folder": item.folder, "uid": item.uid,
                  "uidvalidity": item.uidvalidity, "size": item.size,
                  "seen": words.short(item.seen_at)} for item in left],
        # Mail over the listener's limit is left on the IMAP server too.
        "limit": context.config.smtp.max_message_bytes})
