"""Secret reply tokens: issued for one case and one person, kept only as their SHA-256,
retired by a row update (reassignment, a removed deputy, a closed case).

A token travels only in the Reply-To of a mail we send (`chikanemail+<token>@…`); a reply to
that address proves the replier holds our mail. The token itself is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import ReplyToken

# 160 random bits: 32 base32 characters, lower case, no padding.
TOKEN_BYTES = 20
TOKEN_PATTERN = re.compile(r"[a-z2-7]{32}")


# A token in the Reply-To field of a raw mail of ours, and what replaces it once sent.
_REPLY_TO_TOKEN = re.compile(rb"(?im)^(Reply-To:[^\r\n]*?[+-])([a-z2-7]{32})(@)")
_SENT_PLACEHOLDER = b"0" * 32  # "0" is no base32 letter: it can never be a token


@dataclass(frozen=True)
class TokenState:
    """What a token found in a recipient address stands for."""

    token_id: int
    case_id: int | None
    address: str
    live: bool


def new_token() -> str:
    """A fresh random token: 160 bits in lower-case base32."""
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").lower()


def token_sha256(token: str) -> str:
    """The SHA-256 under which a token is stored (of its lower-case form)."""
    return hashlib.sha256(token.strip().lower().encode("ascii", "replace")).hexdigest()


def issue_token(session: Session, *, case_id: int | None, address: str, kind: str,
                now: datetime) -> str:
    """Store a new token for this case (None: a digest) and person; the token to send."""
    token = new_token()
    session.add(ReplyToken(token_sha256=token_sha256(token), case_id=case_id,
                           address=address.strip().casefold(), kind=kind, issued_at=now))
    return token


def find_token(session: Session, token: str) -> TokenState | None:
    """The stored token with this value, live or retired; None if we never issued it."""
    if not TOKEN_PATTERN.fullmatch(token.strip().lower()):
        return None
    row = session.execute(
        select(ReplyToken).where(ReplyToken.token_sha256 == token_sha256(token))
    ).scalar_one_or_none()
    if row is None:
        return None
    return TokenState(token_id=row.id, case_id=row.case_id, address=row.address,
                      live=row.retired_at is None)


def retire_tokens(session: Session, *, case_id: int, reason: str, now: datetime,
                  address: str | None = None) -> int:
    """Retire the live tokens of a case (only this person's when `address` is given); how
    many."""
    statement = (update(ReplyToken)
                 .where(ReplyToken.case_id == case_id, ReplyToken.retired_at.is_(None))
                 .values(retired_at=now, retired_reason=reason))
    if address is not None:
        statement = statement.where(ReplyToken.address == address.strip().casefold())
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def without_reply_token(raw: bytes) -> bytes:
    """A mail of ours as kept once it has left: the token in its Reply-To blanked, so the
    outbox never holds a usable token after sending (the token table holds only hashes)."""
    return _REPLY_TO_TOKEN.sub(lambda match: match.group(1) + _SENT_PLACEHOLDER
                               + match.group(3), raw, count=1)
