"""The reporter's status page links: issued with the receipt, kept only as their SHA-256,
retired by a manager or 30 days after the case closed.

A link is `<base_url>/status/<secret>`: 256 random bits, shown once in the receipt and never
stored. It only reads; it is not a reply token (`storage.reply_tokens`), so whoever finds a
leaked link cannot send a follow-up that counts as the reporter's.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage import audit
from storage.audit import SYSTEM_ACTOR
from storage.database import Database
from storage.models import Case, CaseStatus, StatusLink

SECRET_BYTES = 32
# token_urlsafe(32) gives 43 characters of the URL-safe base64 alphabet.
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
# How long after a case closes its reporter can still read the page.
KEEP_AFTER_CLOSE = timedelta(days=30)
CREATED = "status-link-created"
RETIRED = "status-link-retired"
# Why a link was retired (the audit event's `reason`, the row's `retired_reason`).
BY_MANAGER = "manager"
CASE_CLOSED = "case-closed"

# A status link in a raw mail of ours: its characters need no quoted-printable escape, but a
# soft line break ("=" CRLF) may fall between any two of them.
_SOFT_BREAK = rb"(?:=\r?\n)?"
_LINK_IN_RAW = re.compile(
    _SOFT_BREAK.join(re.escape(bytes([byte])) for byte in b"/status/") + _SOFT_BREAK
    + rb"((?:" + _SOFT_BREAK + rb"[A-Za-z0-9_-]){43})")
_SECRET_CHARACTER = re.compile(rb"[A-Za-z0-9_-]")


def secret_sha256(secret: str) -> str:
    """The SHA-256 under which a secret is stored."""
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


def new_secret() -> str:
    """A fresh random secret for a status link."""
    return secrets.token_urlsafe(SECRET_BYTES)


def issue_status_link(session: Session, case: Case, secret: str, *, now: datetime) -> None:
    """Store the link of `secret` (from `new_secret`) for the case, in the caller's
    transaction, once the receipt carrying it has been written."""
    session.add(StatusLink(secret_sha256=secret_sha256(secret), case_id=case.id,
                           created_at=now))
    audit.record(session, CREATED, case=case, now=now, details={})


def status_url(base_url: str, secret: str) -> str:
    """The link the reporter opens."""
    return f"{base_url.rstrip('/')}/status/{secret}"


def without_status_secrets(raw: bytes) -> bytes:
    """A mail of ours as kept once it has left: the secret of every status link in its text
    (plain or quoted-printable) replaced by zeros of the same length, so the outbox holds no
    usable link after sending (the table holds only hashes)."""
    def blank(match: re.Match[bytes]) -> bytes:
        start, end = match.span(1)
        secret = _SECRET_CHARACTER.sub(b"0", match.string[start:end])
        return match.string[match.start():start] + secret
    return _LINK_IN_RAW.sub(blank, raw)


def case_of_live_link(session: Session, secret: str) -> Case | None:
    """The case a live link shows; None for a secret we never issued or one retired."""
    if not SECRET_PATTERN.fullmatch(secret):
        return None
    return session.execute(
        select(Case).join(StatusLink, StatusLink.case_id == Case.id)
        .where(StatusLink.secret_sha256 == secret_sha256(secret),
               StatusLink.retired_at.is_(None))
    ).scalar_one_or_none()


def has_live_link(session: Session, case_id: int) -> bool:
    """Whether the case has a link its reporter can still open."""
    return session.execute(
        select(StatusLink.id).where(StatusLink.case_id == case_id,
                                    StatusLink.retired_at.is_(None)).limit(1)
    ).first() is not None


def retire_status_links(session: Session, case: Case, *, reason: str, actor: str,
                        now: datetime) -> int:
    """Retire the case's live links in the caller's transaction, with an audit event when
    there was one; how many."""
    result = session.execute(
        update(StatusLink)
        .where(StatusLink.case_id == case.id, StatusLink.retired_at.is_(None))
        .values(retired_at=now, retired_reason=reason)
        .execution_options(synchronize_session=False))
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        audit.record(session, RETIRED, actor=actor, case=case, now=now,
                     details={"reason": reason})
    return count


def retire_links_of_closed_cases(database: Database, *, now: datetime) -> int:
    """Retire the live links of every case closed KEEP_AFTER_CLOSE ago or longer (the
    scheduler runs it); how many cases lost their link."""
    with database.write() as session:
        cases = list(session.execute(
            select(Case).where(
                Case.status == CaseStatus.CLOSED, Case.closed_at.is_not(None),
                Case.closed_at <= now - KEEP_AFTER_CLOSE,
                Case.id.in_(select(StatusLink.case_id)
                            .where(StatusLink.retired_at.is_(None))))
            .order_by(Case.id)
        ).scalars())
        for case in cases:
            retire_status_links(session, case, reason=CASE_CLOSED, actor=SYSTEM_ACTOR,
                                now=now)
        return len(cases)
