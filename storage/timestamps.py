"""Rows of RFC 3161 time-stamps: which raw messages need a token now, record a token or a
failed try, and read a message's token back (for the export).

A message has at most one `message_timestamp` row; it is made by the first try. The token
itself (the TSA's whole DER TimeStampResp) is a blob in the derived store named by
`token_sha256`. Once a row holds a token it never changes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import audit
from storage.blobstore import BlobStore, BlobStoreError, sha256_hex
from storage.database import Database
from storage.models import Message, MessageTimestamp

# Kept short in the row; the log says more.
_MAX_ERROR_TEXT = 2000


@dataclass(frozen=True)
class DueTimestamp:
    """A raw message that has no token yet and may be time-stamped now."""

    message_sha256: str
    failed_attempts: int  # tries that did not give a token so far


def messages_due_for_timestamp(database: Database, *, now: datetime,
                               limit: int) -> list[DueTimestamp]:
    """Up to `limit` messages without a token that are due (never tried, or their retry time
    has come), oldest first."""
    row = MessageTimestamp
    due = or_(
        row.id.is_(None),
        and_(row.token_sha256.is_(None),
             or_(row.next_attempt_at.is_(None), row.next_attempt_at <= now)),
    )
    with database.read() as session:
        found = session.execute(
            select(Message.sha256, row.attempts)
            .outerjoin(row, row.message_sha256 == Message.sha256)
            .where(due)
            .order_by(Message.received_at, Message.id)
            .limit(limit)
        ).all()
    return [DueTimestamp(sha256, attempts or 0) for sha256, attempts in found]


def record_timestamp_token(database: Database, message_sha256: str, *, tsa_url: str,
                           token_sha256: str, gen_time: datetime, now: datetime) -> bool:
    """Record a message's token (already stored in the derived store) and its `timestamped`
    audit event, in one transaction; False if the message already had a token or is gone."""
    with database.write() as session:
        row = _row_without_token(session, message_sha256, now)
        if row is None:
            return False
        row.tsa_url = tsa_url
        row.token_sha256 = token_sha256
        row.gen_time = gen_time
        row.attempts += 1
        row.last_error = None
        row.next_attempt_at = None
        audit.record(session, "timestamped", message_sha256=message_sha256, now=now,
                     details={"tsa_url": tsa_url, "token_sha256": token_sha256,
                              "gen_time": audit.format_utc(gen_time)})
    return True


def record_timestamp_failure(database: Database, message_sha256: str, *, tsa_url: str,
                             error: str, next_attempt_at: datetime,
                             now: datetime) -> int | None:
    """Record a try that gave no token and when to try again; the number of failed tries
    so far, or None if the message meanwhile has a token or is gone."""
    with database.write() as session:
        row = _row_without_token(session, message_sha256, now)
        if row is None:
            return None
        row.tsa_url = tsa_url
        row.attempts += 1
        row.last_error = error[:_MAX_ERROR_TEXT]
        row.next_attempt_at = next_attempt_at
        return row.attempts


def timestamp_of(database: Database, message_sha256: str) -> MessageTimestamp | None:
    """The time-stamp row of a message (detached), with or without a token."""
    with database.read() as session:
        row = session.execute(
            select(MessageTimestamp).where(MessageTimestamp.message_sha256 == message_sha256)
        ).scalar_one_or_none()
        if row is not None:
            session.expunge(row)
    return row


def token_for_message(database: Database, derived_store: BlobStore,
                      message_sha256: str) -> bytes | None:
    """The DER TimeStampResp kept for a message (what an export writes as
    `timestamps/<sha256>.tsr`), or None if it has no token; raises `BlobStoreError` if the
    stored token is missing or no longer matches its name."""
    row = timestamp_of(database, message_sha256)
    if row is None or row.token_sha256 is None:
        return None
    token = derived_store.read_bytes(row.token_sha256)
    if sha256_hex(token) != row.token_sha256:
        raise BlobStoreError(f"time-stamp token {row.token_sha256} of message "
                             f"{message_sha256} does not match its name")
    return token


def _row_without_token(session: Session, message_sha256: str,
                       now: datetime) -> MessageTimestamp | None:
    """The message's row, locked, while it has no token; None if it has one or the message
    is gone."""
    if not _message_exists(session, message_sha256):
        return None
    row = _locked_row(session, message_sha256, now)
    return row if row.token_sha256 is None else None


def _message_exists(session: Session, message_sha256: str) -> bool:
    return session.execute(
        select(Message.id).where(Message.sha256 == message_sha256)
    ).first() is not None


def _locked_row(session: Session, message_sha256: str, now: datetime) -> MessageTimestamp:
    """The message's row, locked for this transaction; made (with no try counted) if missing."""
    statement = (select(MessageTimestamp)
                 .where(MessageTimestamp.message_sha256 == message_sha256)
                 .with_for_update())
    row = session.execute(statement).scalar_one_or_none()
    if row is not None:
        return row
    row = MessageTimestamp(message_sha256=message_sha256, attempts=0, created_at=now)
    try:
        # A savepoint: on PostgreSQL another daemon may insert the same row concurrently;
        # losing that race must not spoil this transaction.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return session.execute(statement).scalar_one()
    return row
