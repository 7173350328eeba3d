"""Rows of outgoing mail: add one, claim due ones, record the outcome of a try, list.

Each state change is guarded by the claim (`claimed_by`, state `sending`), so a sender that
lost its claim to another (its lease ran out) cannot undo the other's work. The one exception
is `mark_outbox_sent`: once any sender handed a mail to the relay, "sent" is the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import audit
from storage.claims import claim_rows, release_rows
from storage.database import Database
from storage.models import OutboxMail, OutboxState, utc_now
from storage.reply_tokens import without_reply_token
from storage.status_links import without_status_secrets

# Kept short in the row; details go to the log.
# The kind of mail that goes to the reporter, and how the audit log names its recipient.
RECEIPT_KIND = "receipt"
REPORTER_ROLE = "(reporter)"
_MAX_ERROR_TEXT = 2000


@dataclass(frozen=True)
class ClaimedMail:
    """An outgoing mail a sender holds: everything needed to send it and to report on it."""

    id: int
    kind: str
    case_id: int | None
    message_id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    attempts: int  # including the one this claim is for
    deadline_at: datetime


@dataclass(frozen=True)
class NewOutboxRow:
    """The content and schedule of an outgoing mail about to be queued."""

    kind: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str
    subject: str
    raw: bytes
    case_id: int | None
    created_at: datetime
    deadline_at: datetime


def outbox_row_by_message_id(session: Session, message_id: str) -> OutboxMail | None:
    """The outgoing mail with this Message-ID, seen from the caller's transaction."""
    return session.execute(
        select(OutboxMail).where(OutboxMail.message_id == message_id)
    ).scalar_one_or_none()


def audited_recipients(kind: str, rcpt_tos: Sequence[str]) -> list[str]:
    """Who a mail went to, as the audit log keeps it: staff addresses as they are, the
    reporter as the role only. The log outlives the case (retention cannot redact a hash
    chain), so the person who reported is not named in it."""
    return [REPORTER_ROLE] if kind == RECEIPT_KIND else list(rcpt_tos)


def add_outbox_row(session: Session, new: NewOutboxRow) -> tuple[OutboxMail, bool]:
    """Queue a mail in the caller's transaction, once per Message-ID; True if it was added.

    Nothing is committed: the row becomes visible with the rest of the caller's work.
    """
    existing = outbox_row_by_message_id(session, new.message_id)
    if existing is not None:
        return existing, False
    row = OutboxMail(
        case_id=new.case_id,
        kind=new.kind,
        mail_from=new.mail_from,
        rcpt_tos=list(new.rcpt_tos),
        message_id=new.message_id,
        subject=new.subject,
        raw=new.raw,
        state=OutboxState.PENDING,
        attempts=0,
        created_at=new.created_at,
        next_attempt_at=new.created_at,
        deadline_at=new.deadline_at,
    )
    try:
        # A savepoint: on PostgreSQL a concurrent transaction may have inserted the same
        # Message-ID; losing that race must not spoil the caller's transaction.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = outbox_row_by_message_id(session, new.message_id)
        if existing is None:
            raise
        return existing, False
    audit.record(session, "mail-queued", case_number=audit.case_number_of(session, new.case_id),
                 now=new.created_at,
                 details={"kind": new.kind, "message_id": new.message_id,
                          "to": audited_recipients(new.kind, new.rcpt_tos)})
    return row, True


def claim_outbox(
    database: Database,
    *,
    sender_id: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
) -> list[ClaimedMail]:
    """Take up to `limit` due mails (or ones whose sender's lease ran out) for a sender."""
    now = now or utc_now()
    due = or_(
        and_(OutboxMail.state == OutboxState.PENDING, OutboxMail.next_attempt_at <= now),
        and_(OutboxMail.state == OutboxState.SENDING, OutboxMail.claimed_until < now),
    )
    rows = claim_rows(
        database, OutboxMail, waiting=due,
        order_by=[OutboxMail.next_attempt_at, OutboxMail.id], limit=limit,
        claimed_state=OutboxState.SENDING, claimer=sender_id, lease=lease, now=now,
        returning=[
            OutboxMail.id, OutboxMail.kind, OutboxMail.case_id, OutboxMail.message_id,
            OutboxMail.mail_from, OutboxMail.rcpt_tos, OutboxMail.raw, OutboxMail.attempts,
            OutboxMail.deadline_at,
        ],
    )
    claimed = [
        ClaimedMail(
            id=row.id, kind=row.kind, case_id=row.case_id, message_id=row.message_id,
            mail_from=row.mail_from, rcpt_tos=tuple(row.rcpt_tos), raw=bytes(row.raw),
            attempts=row.attempts, deadline_at=row.deadline_at,
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda mail: mail.id)


def mark_outbox_sent(
    database: Database,
    mail_id: int,
    sender_id: str,
    *,
    note: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record that the relay accepted the mail; False if this sender no longer held the claim.

    The mail is recorded as sent either way (unless it already is): it did leave.
    `note` (e.g. recipients the relay refused for good) is kept as the row's last error.
    """
    now = now or utc_now()
    with database.write() as session:
        current = session.execute(
            select(OutboxMail.state, OutboxMail.claimed_by, OutboxMail.case_id,
                   OutboxMail.kind, OutboxMail.message_id, OutboxMail.rcpt_tos,
                   OutboxMail.raw)
            .where(OutboxMail.id == mail_id).with_for_update()
        ).one_or_none()
        if current is None or current.state == OutboxState.SENT:
            return False
        audit.record(session, "mail-sent", now=now,
                     case_number=audit.case_number_of(session, current.case_id),
                     details={"kind": current.kind, "message_id": current.message_id,
                              "to": audited_recipients(current.kind, current.rcpt_tos),
                              "refused": note is not None})
        session.execute(
            update(OutboxMail).where(OutboxMail.id == mail_id)
            .values(state=OutboxState.SENT, sent_at=now, claimed_by=None, claimed_until=None,
                    last_error=note[:_MAX_ERROR_TEXT] if note else None,
                    raw=without_status_secrets(without_reply_token(bytes(current.raw)))),
            execution_options={"synchronize_session": False},
        )
        return bool(current.state == OutboxState.SENDING and current.claimed_by == sender_id)


def mark_outbox_retry(
    database: Database,
    mail_id: int,
    sender_id: str,
    *,
    error: str,
    next_attempt_at: datetime,
) -> bool:
    """Put a mail back in the queue until `next_attempt_at`; False if the claim was lost."""
    return _finish_claim(
        database, mail_id, sender_id,
        state=OutboxState.PENDING, error=error, next_attempt_at=next_attempt_at,
    )


def mark_outbox_failed(database: Database, mail_id: int, sender_id: str, *, error: str) -> bool:
    """Give up on a mail for good; False if the claim was lost."""
    return _finish_claim(database, mail_id, sender_id, state=OutboxState.FAILED, error=error)


def _finish_claim(
    database: Database,
    mail_id: int,
    sender_id: str,
    *,
    state: OutboxState,
    error: str,
    next_attempt_at: datetime | None = None,
) -> bool:
    values: dict[str, object] = {
        "state": state, "last_error": error[:_MAX_ERROR_TEXT],
        "claimed_by": None, "claimed_until": None,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    with database.write() as session:
        result = session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == mail_id, OutboxMail.claimed_by == sender_id,
                   OutboxMail.state == OutboxState.SENDING)
            .values(**values)
            .returning(OutboxMail.case_id, OutboxMail.kind, OutboxMail.message_id),
            execution_options={"synchronize_session": False},
        ).one_or_none()
        if result is None:
            return False
        if state == OutboxState.FAILED:
            audit.record(session, "mail-failed",
                         case_number=audit.case_number_of(session, result.case_id),
                         details={"kind": result.kind, "message_id": result.message_id})
        return True


def release_outbox_claims(database: Database, mail_ids: Sequence[int], sender_id: str) -> int:
    """Give back mails a sender claimed but did not try (it is stopping); no try is spent."""
    return release_rows(database, OutboxMail, mail_ids, claimer=sender_id,
                        claimed_state=OutboxState.SENDING, waiting_state=OutboxState.PENDING)


def release_abandoned_outbox(
    database: Database,
    *,
    is_abandoned: Callable[[str], bool],
    now: datetime | None = None,
) -> int:
    """Put mails whose claiming sender is gone back in the queue, due at once; how many."""
    now = now or utc_now()
    with database.write() as session:
        claims = session.execute(
            select(OutboxMail.id, OutboxMail.claimed_by)
            .where(OutboxMail.state == OutboxState.SENDING).with_for_update()
        ).all()
        abandoned = [row.id for row in claims if row.claimed_by and is_abandoned(row.claimed_by)]
        if not abandoned:
            return 0
        session.execute(
            update(OutboxMail)
            .where(OutboxMail.id.in_(abandoned), OutboxMail.state == OutboxState.SENDING)
            .values(state=OutboxState.PENDING, claimed_by=None, claimed_until=None,
                    next_attempt_at=now),
            execution_options={"synchronize_session": False},
        )
        return len(abandoned)


def list_outbox_rows(
    database: Database, *, state: str | None = None, limit: int | None = None
) -> list[OutboxMail]:
    """Outgoing mails, newest first, optionally in one state (detached)."""
    statement = select(OutboxMail).order_by(OutboxMail.id.desc())
    if state is not None:
        statement = statement.where(OutboxMail.state == state)
    if limit is not None:
        statement = statement.limit(limit)
    with database.read() as session:
        rows = list(session.execute(statement).scalars())
        session.expunge_all()
    return rows


def outbox_rows_for_case(database: Database, case_id: int) -> list[OutboxMail]:
    """A case's outgoing mails, oldest first (detached)."""
    statement = select(OutboxMail).where(OutboxMail.case_id == case_id).order_by(OutboxMail.id)
    with database.read() as session:
        rows = list(session.execute(statement).scalars())
        session.expunge_all()
    return rows
