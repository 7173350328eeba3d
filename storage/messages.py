"""Rows of received messages: record a delivery, claim work, finish or fail it, list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import audit
from storage.claims import claim_rows, release_rows
from storage.database import Database
from storage.defects import DefectsByPlace, defect_changes, defects_of_message
from storage.errors import ChikanemailError
from storage.models import Message, MessageState, QuarantineReason, utc_now

# Kept short in the row; the full traceback goes to the log.
_MAX_ERROR_TEXT = 2000


@dataclass(frozen=True)
class DeliveryEnvelope:
    """How one copy of a message arrived: transport facts, never content."""

    source: str
    mail_from: str | None = None
    rcpt_tos: Sequence[str] = field(default_factory=tuple)
    peer: str | None = None
    helo: str | None = None
    tls: bool = False


@dataclass(frozen=True)
class HeaderSummary:
    """The few header values kept on the row for listing; the blob stays the authority."""

    message_id: str | None = None
    subject: str | None = None
    from_address: str | None = None  # for the sender check of mail without an envelope


@dataclass(frozen=True)
class RecordedDelivery:
    """What recording a delivery did: the row's id and whether the bytes were already known."""

    message_pk: int
    duplicate: bool
    times_seen: int


@dataclass(frozen=True)
class ClaimedMessage:
    """A message a worker holds: enough to run the pipeline on it."""

    message_pk: int
    sha256: str
    attempts: int


@dataclass(frozen=True)
class NewDelivery:
    """One copy of a message to record: its blob, size and header summary."""

    sha256: str
    size: int
    headers: HeaderSummary
    quarantine_reason: QuarantineReason | None = None


def record_delivery(
    database: Database,
    *,
    sha256: str,
    size: int,
    envelope: DeliveryEnvelope,
    headers: HeaderSummary,
    quarantine_reason: QuarantineReason | None = None,
    now: datetime | None = None,
) -> RecordedDelivery:
    """Insert the message row, or count one more sighting of the same raw bytes; committed."""
    (recorded,) = record_deliveries(
        database, [NewDelivery(sha256, size, headers, quarantine_reason)], envelope=envelope,
        now=now)
    return recorded


def record_deliveries(
    database: Database,
    deliveries: Sequence[NewDelivery],
    *,
    envelope: DeliveryEnvelope,
    now: datetime | None = None,
) -> list[RecordedDelivery]:
    """Record several copies that arrived the same way, in one transaction, in order: as
    `record_delivery` one after the other would (the same bytes twice count twice), but all
    rows are committed together, or none."""
    if not deliveries:
        return []
    now = now or utc_now()
    try:
        return _insert_or_count(database, deliveries, envelope, now)
    except IntegrityError:
        # Another writer inserted some of the same bytes between our look-up and our insert
        # (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises us). Now those are duplicates.
        return _insert_or_count(database, deliveries, envelope, now)


def _insert_or_count(
    database: Database,
    deliveries: Sequence[NewDelivery],
    envelope: DeliveryEnvelope,
    now: datetime,
) -> list[RecordedDelivery]:
    with database.write() as session:
        rows = {row.sha256: row for row in session.execute(
            select(Message).where(Message.sha256.in_({d.sha256 for d in deliveries}))
            .order_by(Message.id).with_for_update()
        ).scalars()}
        # First every row (new ones flushed together), then the events, in arrival order.
        sightings: list[tuple[Message, bool, int]] = []
        for delivery in deliveries:
            row = rows.get(delivery.sha256)
            if row is not None:
                row.times_seen += 1
                row.last_seen_at = now
                sightings.append((row, True, row.times_seen))
                continue
            row = rows[delivery.sha256] = _new_row(delivery, envelope, now)
            session.add(row)
            sightings.append((row, False, 1))
        session.flush()
        recorded: list[RecordedDelivery] = []
        for delivery, (row, duplicate, times_seen) in zip(deliveries, sightings, strict=True):
            if duplicate:
                audit.record(session, "seen-again", message_sha256=row.sha256, now=now,
                             details={"source": envelope.source, "times_seen": times_seen})
            else:
                reason = delivery.quarantine_reason
                audit.record(session, "received", message_sha256=row.sha256, now=now,
                             details={"source": envelope.source, "size": delivery.size,
                                      "tls": envelope.tls, "message": row.id,
                                      "quarantine": reason.value if reason else None})
            recorded.append(RecordedDelivery(row.id, duplicate, times_seen))
        return recorded


def _new_row(delivery: NewDelivery, envelope: DeliveryEnvelope, now: datetime) -> Message:
    reason = delivery.quarantine_reason
    return Message(
        sha256=delivery.sha256,
        size=delivery.size,
        source=envelope.source,
        mail_from=envelope.mail_from,
        rcpt_tos=list(envelope.rcpt_tos),
        peer=envelope.peer,
        helo=envelope.helo,
        tls=envelope.tls,
        received_at=now,
        last_seen_at=now,
        times_seen=1,
        message_id=delivery.headers.message_id,
        subject=delivery.headers.subject,
        state=MessageState.QUARANTINED if reason else MessageState.RECEIVED,
        quarantine_reason=reason,
        attempts=0,
    )


def claim_messages(
    database: Database,
    *,
    worker_id: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
) -> list[ClaimedMessage]:
    """Take up to `limit` messages waiting for processing (or whose lease ran out) for a worker."""
    now = now or utc_now()
    waiting = or_(
        and_(
            Message.state == MessageState.RECEIVED,
            or_(Message.not_before.is_(None), Message.not_before <= now),
        ),
        and_(Message.state == MessageState.PROCESSING, Message.claimed_until < now),
    )
    rows = claim_rows(
        database, Message, waiting=waiting, order_by=[Message.id], limit=limit,
        claimed_state=MessageState.PROCESSING, claimer=worker_id, lease=lease, now=now,
        returning=[Message.id, Message.sha256, Message.attempts],
    )
    claimed = [ClaimedMessage(row.id, row.sha256, row.attempts) for row in rows]
    return sorted(claimed, key=lambda message: message.message_pk)


class ClaimLost(ChikanemailError):
    """The message is no longer claimed by this worker: another one took it over."""


def mark_processed(
    database: Database, message_pk: int, worker_id: str, now: datetime | None = None
) -> bool:
    """Record that every step finished; False if the claim was lost to another worker."""
    with database.write() as session:
        return record_processed(session, message_pk, worker_id, now)


def record_processed(session: Session, message_pk: int, worker_id: str,
                     now: datetime | None = None) -> bool:
    """As `mark_processed`, in the caller's transaction: the message is processed (its claim
    cleared, the `processed` audit event added) if `worker_id` still holds its claim; False,
    and nothing written, if the claim was lost to another worker."""
    now = now or utc_now()
    result = session.execute(
        update(Message)
        .where(Message.id == message_pk, Message.claimed_by == worker_id,
               Message.state == MessageState.PROCESSING)
        .values(state=MessageState.PROCESSED, processed_at=now, claimed_by=None,
                claimed_until=None, last_error=None, not_before=None)
        .returning(Message.sha256, Message.case_id, Message.kind),
        execution_options={"synchronize_session": False},
    ).one_or_none()
    if result is None:
        return False
    audit.record(session, "processed", message_sha256=result.sha256, now=now,
                 case_number=audit.case_number_of(session, result.case_id),
                 details={"kind": result.kind})
    return True


def mark_failed(
    database: Database,
    message_pk: int,
    worker_id: str,
    *,
    error: str,
    max_attempts: int,
    retry_after: timedelta,
    now: datetime | None = None,
) -> str | None:
    """Record a failed attempt: back to the queue after a pause, or quarantined when out of tries.

    Returns the new state, or None if the claim was lost to another worker.
    """
    now = now or utc_now()
    with database.write() as session:
        row = session.get(Message, message_pk, with_for_update=True)
        if row is None or row.claimed_by != worker_id or row.state != MessageState.PROCESSING:
            return None
        row.last_error = error[:_MAX_ERROR_TEXT]
        row.claimed_by = None
        row.claimed_until = None
        if row.attempts >= max_attempts:
            row.state = MessageState.QUARANTINED
            row.quarantine_reason = QuarantineReason.PROCESSING_FAILED
            row.not_before = None
            audit.record(session, "quarantined", message_sha256=row.sha256, now=now,
                         details={"reason": row.quarantine_reason, "attempts": row.attempts})
        else:
            row.state = MessageState.RECEIVED
            row.not_before = now + retry_after
        return row.state


def release_claims(database: Database, message_pks: Sequence[int], worker_id: str) -> int:
    """Give back messages a worker claimed but did not start (it is stopping); no try is spent."""
    return release_rows(database, Message, message_pks, claimer=worker_id,
                        claimed_state=MessageState.PROCESSING,
                        waiting_state=MessageState.RECEIVED)


def mark_reprocessed(database: Database, message_pk: int, now: datetime | None = None, *,
                     defects_before: DefectsByPlace | None = None) -> None:
    """Record a successful re-run of extraction (`reprocess`). A message already filed (its
    kind decided) is processed; one not filed yet keeps its state: filing is the worker's
    (a quarantined one goes back to it with `quarantine retry`), and a foreign sender's
    stays kept out. Given the defects stored before the run (`defects_of_message`), the
    audit event lists each defect the run removed or added."""
    now = now or utc_now()
    with database.write() as session:
        row = session.get(Message, message_pk, with_for_update=True)
        if row is None:
            raise LookupError(f"message {message_pk} does not exist")
        details = (defect_changes(defects_before, defects_of_message(session, message_pk))
                   if defects_before is not None else None)
        audit.record(session, "reprocessed", message_sha256=row.sha256, now=now,
                     case_number=audit.case_number_of(session, row.case_id), details=details)
        if row.kind is None:
            return
        row.last_error = None
        row.processed_at = now
        row.state = MessageState.PROCESSED
        row.quarantine_reason = None
        row.claimed_by = None
        row.claimed_until = None
        row.not_before = None


# The largest id an INTEGER column holds (PostgreSQL's, and so the schema's).
_LARGEST_ID = 2**31 - 1


def find_message(database: Database, reference: str) -> Message | None:
    """A message by its id or by the SHA-256 (or a unique prefix of 8+ hex digits) of its bytes."""
    with database.read() as session:
        row = None
        # Digits name an id when the column can hold them and such a row exists; else (a
        # hash prefix may be all digits) they are read as a prefix.
        if reference.isdigit() and int(reference) <= _LARGEST_ID:
            row = session.get(Message, int(reference))
        if row is None:
            prefix = reference.lower()
            if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
                return None
            rows = list(session.execute(
                select(Message).where(Message.sha256.startswith(prefix)).limit(2)
            ).scalars())
            row = rows[0] if len(rows) == 1 else None
        if row is not None:
            session.expunge(row)
    return row


def release_abandoned_claims(
    database: Database,
    *,
    is_abandoned: Callable[[str], bool],
    max_attempts: int,
) -> int:
    """Hand back messages whose claiming worker is gone; quarantine those out of tries.

    A message that keeps killing its worker (a crash in a step) counts each crash as an
    attempt, so it ends in quarantine instead of crashing the daemon forever. A worker works
    through its claimed batch in id order, so of a dead worker's messages only the first was
    under way: the others were never started and get their attempt back, or a few kills
    during a busy hour would quarantine mails that never failed.
    """
    released = 0
    started_seen: set[str] = set()  # claimers whose message under way has been handled
    with database.write() as session:
        rows = session.execute(
            select(Message).where(Message.state == MessageState.PROCESSING)
            .order_by(Message.id).with_for_update()
        ).scalars()
        for row in rows:
            if row.claimed_by is None or not is_abandoned(row.claimed_by):
                continue
            if row.claimed_by in started_seen:
                row.attempts = max(0, row.attempts - 1)  # claimed but never started
            started_seen.add(row.claimed_by)
            row.claimed_by = None
            row.claimed_until = None
            if row.attempts >= max_attempts:
                row.state = MessageState.QUARANTINED
                row.quarantine_reason = QuarantineReason.PROCESSING_FAILED
                row.last_error = (row.last_error or "") + " (worker died while processing)"
                audit.record(session, "quarantined", message_sha256=row.sha256,
                             details={"reason": row.quarantine_reason,
                                      "attempts": row.attempts, "worker_died": True})
            else:
                row.state = MessageState.RECEIVED
            released += 1
    return released


def list_messages(database: Database, *, limit: int | None = None) -> list[Message]:
    """Every message row, newest first (detached, safe to read after the session)."""
    statement = select(Message).order_by(Message.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    with database.read() as session:
        rows = list(session.execute(statement).scalars())
        session.expunge_all()
    return rows


def get_message_by_sha256(database: Database, sha256: str) -> Message | None:
    """The message row for these raw bytes, if any (detached)."""
    with database.read() as session:
        row = session.execute(select(Message).where(Message.sha256 == sha256)).scalar_one_or_none()
        if row is not None:
            session.expunge(row)
    return row


def count_by_state(database: Database) -> dict[str, int]:
    """How many messages are in each state."""
    with database.read() as session:
        rows = session.execute(select(Message.state, func.count()).group_by(Message.state))
        return {state: count for state, count in rows}
