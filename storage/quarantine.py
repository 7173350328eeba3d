"""Quarantined messages: list them, look at one, and hand them back to the worker.

A message lands in quarantine because its sender's domain is not allowed (`foreign-sender`)
or because its pipeline steps kept failing (`processing-failed`). Retrying one puts it back
in the worker's queue as if it had just arrived, with a fresh count of attempts; its raw
blob, evidence already stored and audit events stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage import audit
from storage.database import Database
from storage.errors import ChikanemailError
from storage.models import AuditEvent, Message, MessageState, QuarantineReason, utc_now

RETRIED_ACTION = "quarantine-retried"


@dataclass(frozen=True)
class QuarantinedMessage:
    """One quarantined message as the quarantine tools show it."""

    message_pk: int
    sha256: str
    received_at: datetime
    reason: str | None
    attempts: int
    last_error: str | None
    subject: str | None
    mail_from: str | None

    @property
    def error_line(self) -> str:
        """The first line of the last error (empty when there is none)."""
        return (self.last_error or "").strip().split("\n", 1)[0]


@dataclass(frozen=True)
class QuarantineDetail:
    """A quarantined (or formerly quarantined) message with its audit events."""

    message: Message
    events: list[AuditEvent]


class RetryRefused(ChikanemailError):
    """A message cannot be retried (not quarantined, or foreign without permission)."""


def _summary(row: Message) -> QuarantinedMessage:
    return QuarantinedMessage(row.id, row.sha256, row.received_at, row.quarantine_reason,
                              row.attempts, row.last_error, row.subject, row.mail_from)


def list_quarantined(database: Database) -> list[QuarantinedMessage]:
    """Every quarantined message, oldest first."""
    with database.read() as session:
        rows = session.execute(
            select(Message).where(Message.state == MessageState.QUARANTINED)
            .order_by(Message.id)).scalars()
        return [_summary(row) for row in rows]


def quarantine_detail(database: Database, message_pk: int) -> QuarantineDetail | None:
    """The message's row and every audit event about it, or None when there is no such id."""
    with database.read() as session:
        row = session.get(Message, message_pk)
        if row is None:
            return None
        events = list(session.execute(
            select(AuditEvent).where(AuditEvent.message_sha256 == row.sha256)
            .order_by(AuditEvent.seq)).scalars())
        session.expunge_all()
    return QuarantineDetail(row, events)


def retry_quarantined(
    database: Database,
    message_pks: Sequence[int] | None,
    *,
    actor: str,
    include_foreign: bool = False,
    now: datetime | None = None,
) -> list[int]:
    """Hand quarantined messages back to the worker, in one transaction; their ids.

    `message_pks=None` means every quarantined message that may be retried: those whose
    processing failed, plus foreign senders when `include_foreign`. Named messages that are
    not quarantined, or are foreign senders without `include_foreign`, raise
    `RetryRefused` and nothing changes.
    """
    now = now or utc_now()
    allowed = {QuarantineReason.PROCESSING_FAILED.value}
    if include_foreign:
        allowed.add(QuarantineReason.FOREIGN_SENDER.value)
    with database.write() as session:
        statement = select(Message).where(Message.state == MessageState.QUARANTINED)
        if message_pks is not None:
            statement = statement.where(Message.id.in_(list(message_pks)))
        rows = list(session.execute(statement.order_by(Message.id).with_for_update()).scalars())
        if message_pks is not None:
            _refuse_unretryable(rows, message_pks, allowed)
        retried: list[int] = []
        for row in rows:
            if row.quarantine_reason not in allowed:
                continue
            audit.record(session, RETRIED_ACTION, actor=actor, message_sha256=row.sha256,
                         now=now, case_number=audit.case_number_of(session, row.case_id),
                         details={"message": row.id, "reason": row.quarantine_reason,
                                  "attempts": row.attempts})
            row.state = MessageState.RECEIVED
            row.quarantine_reason = None
            row.attempts = 0
            row.not_before = None
            row.claimed_by = None
            row.claimed_until = None
            retried.append(row.id)
        return retried


def _refuse_unretryable(rows: Sequence[Message], message_pks: Sequence[int],
                        allowed: set[str]) -> None:
    found = {row.id: row for row in rows}
    for message_pk in message_pks:
        row = found.get(message_pk)
        if row is None:
            raise RetryRefused(f"message {message_pk} is not quarantined")
        if row.quarantine_reason not in allowed:
            raise RetryRefused(
                f"message {message_pk} was quarantined as {row.quarantine_reason}: "
                "give --include-foreign to let it in anyway")
