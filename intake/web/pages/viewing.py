"""What a page handler needs from a request: the context, the viewer, the visibility rule,
and the audit events opening a case, an evidence item or a download writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from starlette.exceptions import HTTPException
from starlette.requests import Request

from intake.web.access import Viewer, visible_cases
from intake.web.context import WebContext
from storage import audit

VIEWED = "viewed"
DOWNLOADED = "downloaded"
# How the audit log names a person acting through the web pages.
WEB_ACTOR_PREFIX = "web:"


def web_context(request: Request) -> WebContext:
    """The daemon's context the app was built with."""
    context: WebContext = request.app.state.context
    return context


def viewer_of(request: Request) -> Viewer:
    """The logged-in viewer (the login middleware lets no request here without one)."""
    viewer: Viewer = request.state.viewer
    return viewer


def visible(request: Request) -> ColumnElement[bool]:
    """The cases this request's viewer may see, as a WHERE clause (checked on every
    request, so a reassignment takes effect at once)."""
    return visible_cases(viewer_of(request))


def web_actor(viewer: Viewer) -> str:
    """The audit log's actor for the viewer: `web:<address>`."""
    return WEB_ACTOR_PREFIX + viewer.address


def record_view(request: Request, action: str, case_number: str, *,
                message_sha256: str | None = None, details: dict[str, Any]) -> None:
    """Write a `viewed` or `downloaded` event for the viewer in a transaction of its own."""
    audit.record_committed(web_context(request).database, action,
                           actor=web_actor(viewer_of(request)), case_number=case_number,
                           message_sha256=message_sha256, details={**details, "via": "web"},
                           now=web_context(request).clock.now())


def not_found() -> HTTPException:
    """What a handler raises for a case or item that does not exist or is not the viewer's:
    the same 404 either way (the app's error page), so a number that exists is not given
    away."""
    return HTTPException(status_code=404)
