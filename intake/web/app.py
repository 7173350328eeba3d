"""The web application: login, the pages, static files, under the security middleware."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from intake.web import login, pages
from intake.web.authentication import AuthenticationMiddleware
from intake.web.context import WebContext
from intake.web.rendering import render
from intake.web.security import SecurityHeadersMiddleware
from intake.web.status import HEALTH_PATH, HEALTH_TEXT
from storage.i18n.catalogs import translations

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def front_page(request: Request) -> Response:
    """The case list when logged in, else the login page."""
    return RedirectResponse("/cases" if request.state.viewer else "/login", status_code=303)


async def health(request: Request) -> Response:
    """A fixed answer for `chikanemail health`."""
    return PlainTextResponse(HEALTH_TEXT)


async def http_error(request: Request, error: Exception) -> Response:
    """An error page in the viewer's language (404 for a case one may not see, too)."""
    status = error.status_code if isinstance(error, HTTPException) else 500
    language = request.state.viewer.language if getattr(request.state, "viewer",
                                                         None) else None
    context: WebContext = request.app.state.context
    _ = translations(language or context.config.ui.language).gettext
    if status == 404:
        heading, explanation = _("Not found"), _(
            "There is no such page, or it is not yours to see.")
    elif status == 405:
        heading, explanation = _("Not allowed"), _("This page cannot be used that way.")
    else:
        heading, explanation = _("Something went wrong"), _(
            "The page could not be shown. Try again in a moment.")
    return render(request, "error.html", {"heading": heading, "explanation": explanation},
                  status=status)


def build_app(context: WebContext) -> Starlette:
    """The web view for this daemon's configuration, database and stores."""
    routes: list[BaseRoute] = [
        Route("/", front_page, methods=["GET"]),
        Route(HEALTH_PATH, health, methods=["GET"]),
        *login.routes(),
        *pages.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeadersMiddleware),
                    Middleware(AuthenticationMiddleware, context=context)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.context = context
    return app
