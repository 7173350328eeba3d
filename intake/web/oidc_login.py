"""Login with the workplace's identity provider: GET /login/oidc sends the browser there,
GET /login/oidc/callback comes back with a code, and a verified address that may log in
starts a session exactly as a login link's button does.

The start is a link, not a form: the pages' Content-Security-Policy has
`form-action 'self'`, which browsers also apply to a form's redirect to the provider.
Every refusal shows the same page; the log names the check that failed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from intake.web.access import fold
from intake.web.context import WebContext
from intake.web.login_links import STATS_HOME, home_path, may_log_in, safe_next_path
from intake.web.oidc_claims import OidcRefused, OidcUnavailable, verified_address
from intake.web.oidc_client import OidcClient, read_client_secret
from intake.web.oidc_prelogin import (
    COOKIE_NAME,
    PreLogin,
    clear_pre_login_cookie,
    new_pre_login,
    seal,
    sealing_key,
    set_pre_login_cookie,
    unseal,
)
from intake.web.oidc_settings import GOOGLE
from intake.web.rendering import page_language, render
from intake.web.sessions import end_session, set_session_cookie, start_session
from storage.i18n.catalogs import translations

log = logging.getLogger("chikanemail.web.oidc")

START_PATH = "/login/oidc"
CALLBACK_PATH = "/login/oidc/callback"
HOME = "/cases"


def redirect_uri(base_url: str) -> str:
    """The address the provider sends the browser back to: register it with the app."""
    return base_url.rstrip("/") + CALLBACK_PATH


def start_url(next_path: str | None) -> str:
    """The login page's link to the provider, bringing the person back to `next_path`."""
    return START_PATH + (f"?{urlencode({'next': next_path})}" if next_path else "")


def button_label(request: Request, provider: str) -> str:
    """The text of the login page's button for this provider."""
    _ = translations(page_language(request)).gettext
    return _("Log in with Google") if provider == GOOGLE else _("Log in with Microsoft")


def _client(request: Request) -> OidcClient | None:
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    return client


def _refused(request: Request, refusal: OidcRefused) -> Response:
    """The one page of a refused login (the log says which check refused it), or of a
    provider that did not answer as it should."""
    context: WebContext = request.app.state.context
    _ = translations(page_language(request)).gettext
    if isinstance(refusal, OidcUnavailable):
        log.warning("OIDC login failed: %s client=%s", refusal, request.state.client)
        heading, explanation, status = _("The login could not be finished"), _(
            "The service you log in with did not answer. Try again in a moment."), 502
    else:
        log.warning("OIDC login refused: %s client=%s", refusal, request.state.client)
        heading, explanation, status = _("You could not be logged in"), _(
            "The account you logged in with may not use Chikanemail here. Log in with your "
            "work account, or ask the administrator whether your address may log in."), 403
    response = render(request, "error.html", {"heading": heading,
                                              "explanation": explanation}, status=status)
    clear_pre_login_cookie(response, context.web)
    return response


async def start(request: Request) -> Response:
    """Remember state, nonce and verifier in a sealed cookie; send the browser to log in."""
    context: WebContext = request.app.state.context
    client = _client(request)
    if client is None:
        raise HTTPException(status_code=404)
    next_path = safe_next_path(request.query_params.get("next"))
    if request.state.viewer is not None:
        home = STATS_HOME if request.state.viewer.stats_only else HOME
        return RedirectResponse(next_path or home, status_code=303)
    pre_login = new_pre_login(next_path, now=context.clock.now())
    try:
        url, sealed = await asyncio.to_thread(_begin, client, pre_login)
    except OidcRefused as refusal:
        return _refused(request, refusal)
    response = RedirectResponse(url, status_code=303)
    set_pre_login_cookie(response, sealed, context.web)
    return response


def _begin(client: OidcClient, pre_login: PreLogin) -> tuple[str, str]:
    """The provider's authorization URL and the sealed record (reads the secret file and
    perhaps the provider's discovery: not on the event loop)."""
    secret = read_client_secret(client.settings)
    return client.authorization_url(pre_login), seal(pre_login, sealing_key(secret))


async def callback(request: Request) -> Response:
    """Finish the login the provider sends back: check everything, then start a session."""
    context: WebContext = request.app.state.context
    client = _client(request)
    if client is None:
        raise HTTPException(status_code=404)
    now = context.clock.now()
    try:
        pre_login, claims = await asyncio.to_thread(
            _finish, client, request.cookies.get(COOKIE_NAME), dict(request.query_params),
            now)
        address = fold(verified_address(client.settings, claims))
        allowed = await asyncio.to_thread(_may_log_in, context, address)
        if not allowed:
            raise OidcRefused("the address may not log in")
    except OidcRefused as refusal:
        return _refused(request, refusal)
    old = request.state.session
    if old is not None:
        await asyncio.to_thread(end_session, context.database, old.id, now=now)
    cookie, _active = await asyncio.to_thread(start_session, context.database, address,
                                              now=now, client=str(request.state.client),
                                              web=context.web)
    log.info("logged in to the web view with %s client=%s", client.settings.provider,
             request.state.client)
    home = await asyncio.to_thread(_home, context, address)
    response = RedirectResponse(safe_next_path(pre_login.next_path) or home, status_code=303)
    set_session_cookie(response, cookie, context.web)
    clear_pre_login_cookie(response, context.web)
    return response


def _finish(client: OidcClient, sealed: str | None, query: dict[str, str],
            now: datetime) -> tuple[PreLogin, dict[str, Any]]:
    """The pre-login record the browser brought back and the verified claims of the
    provider's ID token; OidcRefused when either is wanting."""
    secret = read_client_secret(client.settings)
    pre_login = unseal(sealed, sealing_key(secret), now=now)
    if pre_login is None:
        raise OidcRefused("no pre-login record, or an expired or forged one")
    return pre_login, client.finish(pre_login, query, secret, now=now)


def _home(context: WebContext, address: str) -> str:
    with context.database.read() as session:
        return home_path(session, context.config, address)


def _may_log_in(context: WebContext, address: str) -> bool:
    with context.database.read() as session:
        return may_log_in(session, context.config, address)


def routes() -> list[BaseRoute]:
    """The OIDC login routes (before /login/{token}, which would match /login/oidc)."""
    return [
        Route(START_PATH, start, methods=["GET"]),
        Route(CALLBACK_PATH, callback, methods=["GET"]),
    ]
