"""Web sessions: a row on the server per login; the browser's cookie holds only a random id.

A session ends at logout, after `[web] idle_timeout_minutes` without a request, and in any
case `absolute_timeout_hours` after the login. The row keeps the SHA-256 of the id, so
reading the table logs nobody in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from starlette.responses import Response

from intake.web.settings import WebSettings
from storage.database import Database
from storage.models import WebSession

COOKIE_NAME = "chikanemail_session"
# last_seen_at is written at most this often: a page's thumbnails then cost no writes, and
# the idle timeout is off by at most this.
_TOUCH_EVERY = timedelta(seconds=30)
_ID_BYTES = 32
# Rows of sessions that have ended are deleted this long after their absolute end.
_KEEP_ENDED = timedelta(days=1)


@dataclass(frozen=True)
class ActiveSession:
    """A live session as a request sees it."""

    id: int
    address: str
    csrf_token: str
    created_at: datetime


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def start_session(database: Database, address: str, *, now: datetime,
                  client: str | None,
                  web: WebSettings | None = None) -> tuple[str, ActiveSession]:
    """Create a session for `address`; the cookie value (shown only to the browser) and the
    session. With `web`, rows of sessions long over are deleted on the way."""
    session_id = secrets.token_urlsafe(_ID_BYTES)
    csrf_token = secrets.token_urlsafe(_ID_BYTES)
    with database.write() as db:
        if web is not None:
            keep = timedelta(hours=web.absolute_timeout_hours) + _KEEP_ENDED
            db.execute(delete(WebSession).where(WebSession.created_at < now - keep))
        row = WebSession(id_sha256=_digest(session_id), address=address,
                         csrf_token=csrf_token, created_at=now, last_seen_at=now,
                         client=(client or "")[:64] or None)
        db.add(row)
        db.flush()
        active = ActiveSession(row.id, row.address, row.csrf_token, row.created_at)
    return session_id, active


def session_expiry(row_created: datetime, last_seen: datetime,
                   web: WebSettings) -> datetime:
    """The moment a session with these times ends unless a request comes first."""
    idle_end = last_seen + timedelta(minutes=web.idle_timeout_minutes)
    absolute_end = row_created + timedelta(hours=web.absolute_timeout_hours)
    return min(idle_end, absolute_end)


def load_session(database: Database, cookie_value: str | None, *, now: datetime,
                 web: WebSettings) -> ActiveSession | None:
    """The live session the cookie names, its last request moved to `now`; None for a
    missing, unknown, ended or expired one."""
    if not cookie_value or len(cookie_value) > 128:
        return None
    digest = _digest(cookie_value)
    with database.read() as db:
        row = db.execute(select(WebSession).where(WebSession.id_sha256 == digest)).scalar()
        if row is None or row.ended_at is not None:
            return None
        if now >= session_expiry(row.created_at, row.last_seen_at, web):
            return None
        active = ActiveSession(row.id, row.address, row.csrf_token, row.created_at)
        needs_touch = now - row.last_seen_at >= _TOUCH_EVERY
    if needs_touch:
        with database.write() as db:
            db.execute(update(WebSession).where(WebSession.id == active.id)
                       .values(last_seen_at=now))
    return active


def end_session(database: Database, session_id: int, *, now: datetime) -> None:
    """End a session (logout): its cookie no longer works, even if the browser keeps it."""
    with database.write() as db:
        db.execute(update(WebSession).where(WebSession.id == session_id,
                                            WebSession.ended_at.is_(None))
                   .values(ended_at=now))


def set_session_cookie(response: Response, cookie_value: str, web: WebSettings) -> None:
    """Give the browser its session id: HttpOnly, SameSite=Lax, Secure unless the base URL
    is loopback http; it lives no longer than the absolute timeout."""
    response.set_cookie(COOKIE_NAME, cookie_value,
                        max_age=int(web.absolute_timeout_hours * 3600), path="/",
                        secure=web.cookies_secure, httponly=True, samesite="lax")


def clear_session_cookie(response: Response, web: WebSettings) -> None:
    """Tell the browser to forget its session id."""
    response.delete_cookie(COOKIE_NAME, path="/", secure=web.cookies_secure, httponly=True,
                           samesite="lax")
