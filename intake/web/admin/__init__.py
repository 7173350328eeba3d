"""The admin pages (issue 21, point 3), for `[plan] admins` only: health, the outbox with
retry, the kept-out mails with retry, IMAP mailboxes, verify runs, and patterns across cases.

Each page reads the same storage functions as the CLI command it mirrors, and each retry
calls the function the CLI calls, with the actor `web:<address>`. Anyone who is not an admin
gets a 404 (`guard.admin_viewer`). `routes()` is what `intake.web.app` mounts.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from intake.web.admin.guard import ADMIN_METHODS
from intake.web.admin.health_page import health_page
from intake.web.admin.imap_page import imap_page
from intake.web.admin.outbox_page import outbox_page, outbox_retry
from intake.web.admin.overview_page import overview_page
from intake.web.admin.patterns_page import patterns_page
from intake.web.admin.quarantine_pages import (
    quarantine_list,
    quarantine_message,
    quarantine_retry,
)
from intake.web.admin.verify_page import verify_page

PREFIX = "/admin"


def routes() -> list[BaseRoute]:
    """The admin pages' routes, all under /admin."""
    message = f"{PREFIX}/quarantine/{{message_id:int}}"
    return [
        Route(PREFIX, overview_page, methods=ADMIN_METHODS, name="admin"),
        Route(f"{PREFIX}/health", health_page, methods=ADMIN_METHODS, name="admin_health"),
        Route(f"{PREFIX}/outbox", outbox_page, methods=ADMIN_METHODS, name="admin_outbox"),
        Route(f"{PREFIX}/outbox/retry", outbox_retry, methods=ADMIN_METHODS,
              name="admin_outbox_retry"),
        Route(f"{PREFIX}/quarantine", quarantine_list, methods=ADMIN_METHODS,
              name="admin_quarantine"),
        Route(message, quarantine_message, methods=ADMIN_METHODS, name="admin_quarantine_message"),
        Route(f"{message}/retry", quarantine_retry, methods=ADMIN_METHODS,
              name="admin_quarantine_retry"),
        Route(f"{PREFIX}/imap", imap_page, methods=ADMIN_METHODS, name="admin_imap"),
        Route(f"{PREFIX}/verify", verify_page, methods=ADMIN_METHODS, name="admin_verify"),
        Route(f"{PREFIX}/patterns", patterns_page, methods=ADMIN_METHODS, name="admin_patterns"),
    ]
