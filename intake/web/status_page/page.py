"""GET /status/{secret}: the reporter's read-only view of their case, in the case's language.

No login: the secret in the link is the only key. An unknown or retired secret gets the same
404 page as any missing page; every answer is `Cache-Control: no-store` (the app adds
`Referrer-Policy: no-referrer`), and the page links nowhere that carries the secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from intake.web.context import WebContext
from intake.web.csrf import FIELD_NAME
from intake.web.rendering import environment
from intake.web.status_page.rate_limit import ClientRateLimit
from intake.web.status_page.view import StatusView, read_status
from storage.i18n.catalogs import LANGUAGES, translations
from storage.status_links import case_of_live_link

NO_STORE = {"Cache-Control": "no-store"}


def _page(request: Request, template_name: str, language: str, context: Mapping[str, Any],
          *, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A page in `language` (not the viewer's: the reader is the reporter), shown as to
    nobody logged in, never cached."""
    web: WebContext = request.app.state.context
    full: dict[str, Any] = {"request": request, "viewer": None, "csrf_token": "",
                            "csrf_field": FIELD_NAME, "base_url": web.base_url,
                            "language": language, **context}
    html = environment(language).get_template(template_name).render(full)
    return HTMLResponse(html, status_code=status, headers={**NO_STORE, **(headers or {})})


def _read(web: WebContext, secret: str) -> StatusView | None:
    """The status of the case a live link shows, in the case's language; None for any
    other secret."""
    with web.database.read() as session:
        case = case_of_live_link(session, secret)
        if case is None:
            return None
        language = case.language if case.language in LANGUAGES else web.config.ui.language
        return read_status(session, case, language=language, zone=web.config.ui.zone)


def routes() -> list[BaseRoute]:
    """The status page's route, with a rate limit of its own for this app."""
    limit = ClientRateLimit()

    async def status_page(request: Request) -> Response:
        """GET /status/{secret}: the case's status, or the neutral 404."""
        web: WebContext = request.app.state.context
        if not limit.allow(str(request.state.client)):
            _ = translations(web.config.ui.language).gettext
            return _page(request, "error.html", web.config.ui.language, {
                "heading": _("Too many requests"),
                "explanation": _("Wait a few minutes, then open the link again."),
            }, status=429, headers={"Retry-After": str(round(limit.window_seconds))})
        secret = request.path_params["secret"]
        found = await asyncio.to_thread(_read, web, secret)
        if found is None:
            _ = translations(web.config.ui.language).gettext
            return _page(request, "error.html", web.config.ui.language, {
                "heading": _("Not found"),
                "explanation": _("There is no such page, or it is not yours to see."),
            }, status=404)
        return _page(request, "status.html", found.language, {"status": found})

    return [Route("/status/{secret}", status_page, methods=["GET"], name="status")]
