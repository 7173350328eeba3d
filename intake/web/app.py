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

from intake.web import admin, login, oidc_login, pages
from intake.web.authentication import AuthenticationMiddleware
from intake.web.context import WebContext
from intake.web.oidc_client import OidcClient
from intake.web.rendering import render
from intake.web.security import SecurityHeadersMiddleware
from intake.web.stats import page as stats_page
from intake.web.status import HEALTH_PATH, HEALTH_TEXT
from intake.web.status_page import page as status_page
from storage.i18n.catalogs import translations

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def front_page(request: Request) -> Response:
    """The case list when logged in (the statistics for one who reads only them), else the
    login page."""
    viewer = request.state.viewer
    target = "/login" if viewer is None else "/stats" if viewer.stats_only else "/cases"
    return RedirectResponse(target, status_code=303)


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
        *oidc_login.routes(),
        *login.routes(),
        *pages.routes(),
        *admin.routes(),
        *stats_page.routes(),
        *status_page.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeadersMiddleware),
                    Middleware(AuthenticationMiddleware, context=context)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.context = context
    oidc = context.web.oidc
    app.state.oidc = (OidcClient(oidc, oidc_login.redirect_uri(context.base_url))
                      if oidc is not None else None)
    return app
