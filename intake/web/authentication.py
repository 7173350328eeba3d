"""Who a request is for, on every request: `request.state.viewer` (None before login),
`request.state.csrf_token` and `request.state.client` (the client's address).

Pages under /cases need a viewer: without one the browser is sent to the login page, which
brings the person back afterwards. Every POST must carry the CSRF token (403 without it).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.web.access import viewer_for
from intake.web.context import WebContext
from intake.web.csrf import (
    FIELD_NAME,
    PRE_SESSION_COOKIE,
    new_token,
    set_pre_session_cookie,
    tokens_match,
)
from intake.web.login_links import manages_cases
from intake.web.rendering import page_language, render
from intake.web.security import TrustedProxies
from intake.web.sessions import COOKIE_NAME, load_session
from storage.i18n.catalogs import translations

PROTECTED_PREFIXES = ("/cases", "/stats")
# What a reader of the statistics who manages no case may not open (a 404, as for a case
# that is not theirs).
CASE_PREFIXES = ("/cases",)
# Served to anyone, and asked for with every page: no session is looked up for them.
UNAUTHENTICATED_PREFIXES = ("/static/", "/healthz")
CSRF_HEADER = "x-csrf-token"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A form post larger than this is refused before its token is looked for (the pages of
# issue 20 post short forms only).
MAX_FORM_BYTES = 1024 * 1024


def _protected(path: str, prefixes: tuple[str, ...] = PROTECTED_PREFIXES) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def _stats_only(context: WebContext, address: str) -> bool:
    """Whether a reader of the statistics manages no case (read now: a case assigned to
    them opens the case pages at their next request)."""
    with context.database.read() as session:
        return not manages_cases(session, context.config, address)


class AuthenticationMiddleware:
    """Sets the viewer, the CSRF token and the client; guards /cases and every POST."""

    def __init__(self, app: ASGIApp, context: WebContext) -> None:
        self.app = app
        self.context = context
        self.proxies = TrustedProxies(context.web.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Look the session up, then let the request through, redirect it or refuse it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        context = self.context
        peer = scope["client"][0] if scope.get("client") else None
        client = self.proxies.client_address(peer, request.headers.get("x-forwarded-for"))
        state: dict[str, Any] = scope.setdefault("state", {})
        state["client"] = client
        if request.url.path.startswith(UNAUTHENTICATED_PREFIXES):
            # The same for everyone: no session, no form token, no cookie to set.
            state.update(session=None, viewer=None, csrf_token="")
            await self.app(scope, receive, send)
            return
        active = await asyncio.to_thread(load_session, context.database,
                                         request.cookies.get(COOKIE_NAME),
                                         now=context.clock.now(), web=context.web)
        state["session"] = active
        new_pre_session_token: str | None = None
        if active is not None:
            viewer = viewer_for(context.config, active.address)
            if viewer.is_stats_viewer and not viewer.is_admin and await asyncio.to_thread(
                    _stats_only, context, active.address):
                viewer = replace(viewer, stats_only=True)
            state["viewer"] = viewer
            state["csrf_token"] = active.csrf_token
        else:
            state["viewer"] = None
            cookie_token = request.cookies.get(PRE_SESSION_COOKIE)
            if cookie_token and 20 <= len(cookie_token) <= 100:
                state["csrf_token"] = cookie_token
            else:
                new_pre_session_token = new_token()
                state["csrf_token"] = new_pre_session_token

        if active is None and _protected(request.url.path):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response: Response = RedirectResponse(
                "/login?" + urlencode({"next": target}, quote_via=quote), status_code=303)
            await response(scope, receive, send)
            return

        if state["viewer"] is not None and state["viewer"].stats_only and _protected(
                request.url.path, CASE_PREFIXES):
            await self._not_found(scope, send)
            return

        if scope["method"] in _UNSAFE_METHODS:
            body = await _read_body(receive)
            if body is None or not await _csrf_ok(scope, body, state["csrf_token"]):
                await self._refuse(scope, send)
                return
            receive = _replay(body)

        if new_pre_session_token is None:
            await self.app(scope, receive, send)
            return
        cookie_carrier = Response()
        set_pre_session_cookie(cookie_carrier, new_pre_session_token, context.web)
        cookie = cookie_carrier.headers["set-cookie"]

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _not_found(self, scope: Scope, send: Send) -> None:
        request = Request(scope)
        _ = translations(page_language(request)).gettext
        response = render(request, "error.html", {
            "heading": _("Not found"),
            "explanation": _("There is no such page, or it is not yours to see."),
        }, status=404)
        await response(scope, _no_body, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        request = Request(scope)
        _ = translations(page_language(request)).gettext
        response = render(request, "error.html", {
            "heading": _("The form has expired"),
            "explanation": _("The page was open too long, or the form did not come from "
                             "this site. Go back, reload the page and try again."),
        }, status=403)
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it is larger than MAX_FORM_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A receive callable that hands the already read body to the application."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _csrf_ok(scope: Scope, body: bytes, expected: str) -> bool:
    request = Request(scope, _replay(body))
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded",
                                    "multipart/form-data")):
            form = await request.form()
            value = form.get(FIELD_NAME)
            given = value if isinstance(value, str) else None
            await form.close()
    return tokens_match(expected, given)
