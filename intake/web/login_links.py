"""Single-use login links: who may get one, the rate limits, issuing and consuming them.

A link is `<base_url>/login/<token>`: 256 random bits, kept only as their SHA-256, valid for
`[web] login_link_minutes` and consumed by exactly one POST (two daemons racing for it
cannot both win: the consuming UPDATE names the unused row).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from intake.service.config import AppConfig
from intake.web.access import fold, is_stats_viewer
from intake.web.settings import WebSettings
from notifier.mails import MailComposer
from notifier.outbox import enqueue
from notifier.outgoing import OutgoingMail
from storage.database import Database
from storage.models import Case, LoginRequest

MAIL_KIND = "login_link"
CASES_HOME = "/cases"
STATS_HOME = "/stats"
_TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
# Requests older than this are deleted: they count for no limit and no link of theirs works.
_KEEP_REQUESTS = timedelta(days=1)
_ADDRESS = re.compile(r"[^@\s<>]{1,200}@[^@\s<>]{1,200}")


@dataclass(frozen=True)
class LinkHolder:
    """Who a valid link logs in, and where they go after."""

    address: str
    next_path: str | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_address(value: str) -> bool:
    """Whether the text entered is shaped like one mail address (nothing more is checked)."""
    return bool(_ADDRESS.fullmatch(value.strip()))


def may_log_in(session: Session, config: AppConfig, address: str) -> bool:
    """Whether a link may go to this address: one of `[plan] admins`, a manager or deputy
    the routing names, the manager or deputy of a case, or a reader of the statistics
    (`[stats] viewers`)."""
    return is_stats_viewer(config, address) or manages_cases(session, config, address)


def home_path(session: Session, config: AppConfig, address: str) -> str:
    """Where a person goes after logging in: the statistics for a reader of them who
    manages no case, else the case list."""
    if (is_stats_viewer(config, address) and fold(address) not in
            {fold(admin) for admin in config.plan.admins}
            and not manages_cases(session, config, address)):
        return STATS_HOME
    return CASES_HOME


def manages_cases(session: Session, config: AppConfig, address: str) -> bool:
    """Whether the address is one of `[plan] admins`, a manager or deputy the routing
    names, or the manager or deputy of a case."""
    folded = fold(address)
    routing = config.routing
    named = {fold(admin) for admin in config.plan.admins}
    named.update(fold(person) for person in (routing.default_manager, routing.deputy) if person)
    for rule in routing.rules:
        named.update(fold(person) for person in (rule.manager, rule.deputy) if person)
    if folded in named:
        return True
    found = session.execute(
        select(Case.id).where(or_(func.lower(Case.manager) == folded,
                                  func.lower(Case.deputy) == folded)).limit(1)
    ).first()
    return found is not None


def rate_limited(session: Session, *, address: str, client: str, web: WebSettings,
                 now: datetime) -> bool:
    """Whether this address or this client has asked for enough links in the window."""
    since = now - timedelta(minutes=web.login_rate_window_minutes)
    by_address = session.execute(
        select(func.count(LoginRequest.id)).where(LoginRequest.address == fold(address),
                                                  LoginRequest.requested_at > since)
    ).scalar_one()
    if by_address >= web.login_requests_per_address:
        return True
    by_client = session.execute(
        select(func.count(LoginRequest.id)).where(LoginRequest.client == client[:64],
                                                  LoginRequest.requested_at > since)
    ).scalar_one()
    return bool(by_client >= web.login_requests_per_client)


def record_request(session: Session, *, address: str, client: str, now: datetime,
                   web: WebSettings, with_link: bool,
                   next_path: str | None = None) -> str | None:
    """Count a request against the limits; with `with_link`, issue a link and return its
    token (shown once, never stored)."""
    session.execute(delete(LoginRequest).where(LoginRequest.requested_at < now - _KEEP_REQUESTS))
    token = secrets.token_urlsafe(_TOKEN_BYTES) if with_link else None
    session.add(LoginRequest(
        address=fold(address)[:400], client=client[:64], requested_at=now,
        token_sha256=_digest(token) if token else None,
        expires_at=now + timedelta(minutes=web.login_link_minutes) if token else None,
        next_path=next_path if token else None))
    return token


def login_url(base_url: str, token: str) -> str:
    """The link a person opens."""
    return f"{base_url.rstrip('/')}/login/{token}"


def render_login_mail(composer: MailComposer, config: AppConfig, *, address: str, url: str,
                      language: str) -> OutgoingMail:
    """The mail carrying the link, rendered for the outbox."""
    minutes = round(config.web.login_link_minutes)
    return composer.compose(MAIL_KIND, recipient=fold(address), recipient_name=None,
                            context={"link": url, "link_minutes": minutes},
                            language=language)


def queue_login_mail(session: Session, composer: MailComposer, config: AppConfig, *,
                     address: str, url: str, language: str) -> None:
    """Queue the mail carrying the link, in the caller's transaction.

    The outbox keeps the machine's time (not the web view's clock): it decides when the
    sender tries, and that is real time."""
    mail = render_login_mail(composer, config, address=address, url=url, language=language)
    enqueue(session, mail, case_id=None, settings=config.notify)


def valid_link(database: Database, token: str, *, now: datetime) -> LinkHolder | None:
    """Who the link would log in, if it is one of ours, unused and not expired; consumes
    nothing (mail scanners open links before people do)."""
    if not _TOKEN.fullmatch(token):
        return None
    with database.read() as session:
        row = session.execute(select(LoginRequest).where(
            LoginRequest.token_sha256 == _digest(token))).scalar()
        if row is None or row.used_at is not None or row.expires_at is None:
            return None
        if now >= row.expires_at:
            return None
        return LinkHolder(row.address, row.next_path)


def consume_link(database: Database, token: str, *, now: datetime) -> LinkHolder | None:
    """Use the link up: who it logs in, or None when it is not ours, used or expired."""
    if not _TOKEN.fullmatch(token):
        return None
    digest = _digest(token)
    with database.write() as session:
        used = session.execute(
            update(LoginRequest)
            .where(LoginRequest.token_sha256 == digest, LoginRequest.used_at.is_(None),
                   LoginRequest.expires_at > now)
            .values(used_at=now)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = session.execute(select(LoginRequest).where(
            LoginRequest.token_sha256 == digest)).scalar_one()
        return LinkHolder(row.address, row.next_path)


def safe_next_path(value: str | None) -> str | None:
    """`value` when it is a path on this site (so a login never redirects elsewhere)."""
    if not value or len(value) > 2000 or not value.startswith("/"):
        return None
    if value.startswith(("//", "/\\")) or any(ord(character) < 0x21 or character == "\\"
                                              for character in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value
