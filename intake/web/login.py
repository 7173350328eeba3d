"""The login pages: ask for a link, open it, press its one button; and logout.

GET /login/{token} consumes nothing: mail scanners (Safe Links and the like) open every link
in a mail before the person does. Only the POST of its button uses the link up and starts a
session. The page after asking says the same whether or not the address may log in.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from intake.receive.smtp.throttled_log import ThrottledLog
from intake.web.context import WebContext
from intake.web.login_links import (
    CASES_HOME,
    STATS_HOME,
    consume_link,
    home_path,
    login_url,
    looks_like_address,
    may_log_in,
    queue_login_mail,
    rate_limited,
    record_request,
    render_login_mail,
    safe_next_path,
    valid_link,
)
from intake.web.oidc_login import button_label, start_url
from intake.web.rendering import render
from intake.web.sessions import (
    clear_session_cookie,
    end_session,
    set_session_cookie,
    start_session,
)
from storage.i18n.catalogs import translations

log = logging.getLogger("chikanemail.web.login")
# A flood of refused requests is said once a minute per client, not once per request.
_refusals = ThrottledLog(log, logging.WARNING, 60.0)

HOME = CASES_HOME


def _context(request: Request) -> WebContext:
    context: WebContext = request.app.state.context
    return context


def _link_minutes(context: WebContext) -> int:
    return round(context.web.login_link_minutes)


def _login_choices(request: Request, next_path: str | None) -> dict[str, object]:
    """What the login page offers: the provider's button (when [web.oidc] is set) and the
    mail-link form (unless [web] mail_link = false)."""
    web = _context(request).web
    return {
        "mail_link": web.mail_link,
        "oidc_url": start_url(next_path) if web.oidc is not None else None,
        "oidc_label": button_label(request, web.oidc.provider) if web.oidc else "",
        "link_minutes": _link_minutes(_context(request)),
    }


def _refuse_when_mail_link_is_off(request: Request) -> None:
    """A 404 when [web] mail_link = false: the link's routes answer as if they did not
    exist, and links issued before still do not work."""
    if not _context(request).web.mail_link:
        raise HTTPException(status_code=404)


async def login_page(request: Request) -> Response:
    """The login page: the provider's button and the form to ask for a link (or, when
    logged in already, where `next` says)."""
    next_path = safe_next_path(request.query_params.get("next"))
    if request.state.viewer is not None:
        home = STATS_HOME if request.state.viewer.stats_only else HOME
        return RedirectResponse(next_path or home, status_code=303)
    return render(request, "login.html", {"next_path": next_path or "", "address": "",
                                          "problem": None,
                                          **_login_choices(request, next_path)})


async def ask_for_link(request: Request) -> Response:
    """Mail a link when the address may log in; the same page either way."""
    context = _context(request)
    _refuse_when_mail_link_is_off(request)
    form = await request.form()
    address = str(form.get("address") or "").strip()
    next_path = safe_next_path(str(form.get("next") or ""))
    _ = translations(context.config.ui.language).gettext
    if not looks_like_address(address):
        return render(request, "login.html", {
            "next_path": next_path or "", "address": address[:200],
            "problem": _("Write one mail address, such as leder@kommune.dk."),
            **_login_choices(request, next_path)}, status=400)
    client = str(request.state.client)
    sent = await asyncio.to_thread(_ask_for_link, context, address, client, next_path)
    if sent is None:
        return render(request, "error.html", {
            "heading": _("Too many login links asked for"),
            "explanation": _("Wait a little, then ask again. A link we have sent already "
                             "still works until it expires."),
        }, status=429, headers={"Retry-After": str(round(
            context.web.login_rate_window_minutes * 60))})
    return render(request, "login_sent.html", {"address": address,
                                               "link_minutes": _link_minutes(context)})


def _ask_for_link(context: WebContext, address: str, client: str,
                  next_path: str | None) -> bool | None:
    """True when a link was queued, False when the address may not log in, None when the
    rate limits refused the request."""
    now = context.clock.now()
    with context.database.write() as session:
        if rate_limited(session, address=address, client=client, web=context.web, now=now):
            _refusals.say(client, "login links refused: rate limit client=%s", client)
            return None
        allowed = may_log_in(session, context.config, address)
        token = record_request(session, address=address, client=client, now=now,
                               web=context.web, with_link=allowed, next_path=next_path)
        language = context.composer.language_for(address)
        if token is not None:
            queue_login_mail(session, context.composer, context.config, address=address,
                             url=login_url(context.base_url, token), language=language)
        else:
            # Render the mail all the same and throw it away: an answer that came back
            # faster would tell which addresses may log in.
            render_login_mail(context.composer, context.config, address=address,
                              url=login_url(context.base_url, "x" * 43), language=language)
    if allowed:
        context.wake_outbox()
        log.info("login link mailed client=%s", client)
    else:
        log.info("login link asked for an address that may not log in client=%s", client)
    return allowed


async def link_page(request: Request) -> Response:
    """The page a login link opens: one button; nothing is used up."""
    context = _context(request)
    _refuse_when_mail_link_is_off(request)
    token = request.path_params["token"]
    holder = await asyncio.to_thread(valid_link, context.database, token,
                                     now=context.clock.now())
    if holder is None:
        return render(request, "login_refused.html", status=400)
    return render(request, "login_confirm.html", {"address": holder.address, "token": token})


async def use_link(request: Request) -> Response:
    """The button: use the link up, start a session, go where the person was going."""
    context = _context(request)
    _refuse_when_mail_link_is_off(request)
    token = request.path_params["token"]
    now = context.clock.now()
    holder = await asyncio.to_thread(consume_link, context.database, token, now=now)
    if holder is None:
        log.info("login link refused (used, expired or unknown) client=%s",
                 request.state.client)
        return render(request, "login_refused.html", status=400)
    old = request.state.session
    if old is not None:
        await asyncio.to_thread(end_session, context.database, old.id, now=now)
    cookie, _active = await asyncio.to_thread(start_session, context.database,
                                              holder.address, now=now,
                                              client=str(request.state.client),
                                              web=context.web)
    log.info("logged in to the web view client=%s", request.state.client)
    home = await asyncio.to_thread(_home, context, holder.address)
    response = RedirectResponse(safe_next_path(holder.next_path) or home, status_code=303)
    set_session_cookie(response, cookie, context.web)
    return response


def _home(context: WebContext, address: str) -> str:
    with context.database.read() as session:
        return home_path(session, context.config, address)


async def logout(request: Request) -> Response:
    """End the session and forget its cookie."""
    context = _context(request)
    active = request.state.session
    if active is not None:
        await asyncio.to_thread(end_session, context.database, active.id,
                                now=context.clock.now())
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, context.web)
    return response


def routes() -> list[BaseRoute]:
    """The login and logout routes."""
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", ask_for_link, methods=["POST"]),
        Route("/login/{token}", link_page, methods=["GET"]),
        Route("/login/{token}", use_link, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
