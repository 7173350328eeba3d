"""Who may use the admin pages: `[plan] admins`, checked on every request.

Anyone else, logged in or not, gets the same 404 as for a page that does not exist: the
admin pages are not announced to those who may not use them.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from intake.web.access import Viewer
from intake.web.context import WebContext

ADMIN_METHODS = ["GET", "POST"]


def admin_viewer(request: Request, *, method: str = "GET") -> Viewer:
    """The logged-in admin the request is for; 404 for anyone else, and 405 for an admin
    using another method than the page's `method`.

    Every admin route answers GET and POST (`ADMIN_METHODS`) and checks the method only
    here: the router's own 405 would tell anyone that the page exists.
    """
    viewer = getattr(request.state, "viewer", None)
    if not isinstance(viewer, Viewer) or not viewer.is_admin:
        raise HTTPException(status_code=404)
    if request.method not in ({method, "HEAD"} if method == "GET" else {method}):
        raise HTTPException(status_code=405)
    return viewer


def web_context(request: Request) -> WebContext:
    """The daemon's configuration, database and stores, as the app was built with them."""
    context: WebContext = request.app.state.context
    return context


def web_actor(viewer: Viewer) -> str:
    """The audit log's actor for an admin acting on the web pages: `web:<address>`."""
    return f"web:{viewer.address}"
