"""The audit log: every event on a message or case, append-only and hash-chained.

Code records an event with `record(session, …)` inside the transaction that does the thing.
The event is only queued there; just before that transaction commits, the queued events are
chained onto the log's head: the single `audit_head` row is locked (so writers take turns,
on SQLite and PostgreSQL alike), each event gets the next sequence number and

    hash = SHA-256( previous hash as 64 ASCII hex digits  ‖  canonical JSON of the event )

with the first event chained onto `GENESIS_HASH`. A rolled-back transaction leaves no event.
Taking the head lock last, at commit, means no transaction holds it while waiting for
another lock, so appending cannot deadlock with the rest of the work.

The canonical JSON is `json.dumps(payload, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` of {seq, time, actor, action, case, message, details}, encoded as
UTF-8, with `time` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC). Anyone can recompute a hash with
`printf '%s%s' "$prev_hash" "$canonical_json" | sha256sum`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from storage.models import AuditEvent, AuditHead, Case, Message, utc_now

if TYPE_CHECKING:  # storage.database installs this module's hook, so no import at run time
    from storage.database import Database

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "system"
_HEAD_ID = 1
_PENDING_KEY = "chikanemail_audit_pending"
_SAVEPOINTS_KEY = "chikanemail_audit_savepoints"  # open savepoint -> events queued before it
_READ_BATCH = 2000


@dataclass(frozen=True)
class _PendingEvent:
    occurred_at: datetime
    actor: str
    action: str
    case_number: str | None
    message_sha256: str | None
    details: dict[str, Any]


def record(
    session: Session,
    action: str,
    *,
    actor: str = SYSTEM_ACTOR,
    case: Case | None = None,
    case_number: str | None = None,
    message_sha256: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Queue an audit event in the caller's transaction; it is chained in when that commits.

    `details` holds ids, hashes, counts and short codes, never message or note content.
    """
    clean = json.loads(_dumps(details or {}))  # what is stored is exactly what is hashed
    pending: list[_PendingEvent] = session.info.setdefault(_PENDING_KEY, [])
    pending.append(_PendingEvent(
        occurred_at=(now or utc_now()).astimezone(UTC),
        actor=actor,
        action=action,
        case_number=case.number if case is not None else case_number,
        message_sha256=message_sha256,
        details=clean,
    ))


def case_number_of(session: Session, case_id: int | None) -> str | None:
    """The number of the case with this id, for events recorded where only the id is at hand."""
    if case_id is None:
        return None
    case = session.get(Case, case_id)
    return case.number if case is not None else None


def install(sessions: sessionmaker[Session]) -> None:
    """Make sessions from this factory chain their queued events in just before commit."""
    event.listen(sessions, "before_commit", _append_pending)
    event.listen(sessions, "after_transaction_create", _mark_savepoint)
    event.listen(sessions, "after_soft_rollback", _drop_rolled_back)


def _append_pending(session: Session) -> None:
    # SQLAlchemy fires before_commit for a savepoint's release too. Chaining there would lock
    # the head row in the middle of the transaction (the head lock must be its last lock) and
    # tie the events to the savepoint; they are chained when the whole transaction commits.
    if session.in_nested_transaction():
        return
    session.info.pop(_SAVEPOINTS_KEY, None)
    pending: list[_PendingEvent] = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return
    head = session.execute(
        select(AuditHead).where(AuditHead.id == _HEAD_ID).with_for_update()
    ).scalar_one()
    for item in pending:
        seq = head.seq + 1
        canonical = canonical_json(seq=seq, occurred_at=item.occurred_at, actor=item.actor,
                                   action=item.action, case_number=item.case_number,
                                   message_sha256=item.message_sha256, details=item.details)
        digest = chain_hash(head.hash, canonical)
        session.add(AuditEvent(seq=seq, occurred_at=item.occurred_at, actor=item.actor,
                               action=item.action, case_number=item.case_number,
                               message_sha256=item.message_sha256, details=item.details,
                               prev_hash=head.hash, hash=digest))
        head.seq = seq
        head.hash = digest
    session.flush()


def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    """Note how many events were queued when a savepoint began."""
    if transaction.nested:
        marks = session.info.setdefault(_SAVEPOINTS_KEY, {})
        marks[transaction] = len(session.info.get(_PENDING_KEY, ()))


def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back savepoint drops the events queued inside it; a rolled-back transaction
    drops them all."""
    if not previous_transaction.nested:
        session.info.pop(_PENDING_KEY, None)
        session.info.pop(_SAVEPOINTS_KEY, None)
        return
    mark = session.info.get(_SAVEPOINTS_KEY, {}).pop(previous_transaction, None)
    pending = session.info.get(_PENDING_KEY)
    if mark is not None and pending is not None:
        del pending[mark:]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def format_utc(moment: datetime) -> str:
    """The event time as the canonical JSON writes it: UTC with microseconds and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(
    *,
    seq: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    case_number: str | None,
    message_sha256: str | None,
    details: dict[str, Any],
) -> str:
    """The exact text an event's hash covers."""
    return _dumps({
        "seq": seq,
        "time": format_utc(occurred_at),
        "actor": actor,
        "action": action,
        "case": case_number,
        "message": message_sha256,
        "details": details,
    })


def event_json(row: AuditEvent) -> str:
    """The canonical JSON of a stored event, from its columns as they are now."""
    return canonical_json(seq=row.seq, occurred_at=row.occurred_at, actor=row.actor,
                          action=row.action, case_number=row.case_number,
                          message_sha256=row.message_sha256, details=row.details)


def chain_hash(prev_hash: str, canonical: str) -> str:
    """SHA-256 of the previous hash's hex digits followed by the canonical JSON, as hex."""
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    """Where the chain first stops holding, and why."""

    seq: int
    action: str | None
    reason: str


@dataclass(frozen=True)
class ChainCheck:
    """The result of walking the whole chain."""

    events: int
    head_seq: int
    head_hash: str
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        """Whether every link holds and the head row agrees with the last event."""
        return self.broken is None


def iter_events(database: Database, *, batch: int = _READ_BATCH) -> Iterator[AuditEvent]:
    """Every event in sequence order, read in batches (detached)."""
    last = 0
    while True:
        with database.read() as session:
            rows = list(session.execute(
                select(AuditEvent).where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq).limit(batch)
            ).scalars())
            session.expunge_all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def check_chain(database: Database) -> ChainCheck:
    """Walk the chain from the first event: sequence without gaps, each event's stored
    previous hash equal to the hash before it, each hash recomputed from the columns, and
    the head row naming the last event (so a removed tail is found too). A running daemon
    may add events during the walk: a head behind the walked chain is read again, and only
    a head that stays wrong is reported."""
    for _ in range(_WALKS_WHILE_WRITTEN):
        check, appended = _walk_chain(database)
        if not appended:
            return check
    return check


# How often the chain is walked again when events were added while it was walked.
_WALKS_WHILE_WRITTEN = 3


def _walk_chain(database: Database) -> tuple[ChainCheck, bool]:
    """One walk of the chain; True beside it when the head was behind the walked events and
    the head has moved since (events were written during the walk)."""
    head_seq, head_hash = _head(database)
    expected_seq, previous = 1, GENESIS_HASH
    count = 0
    for row in iter_events(database):
        count += 1
        broken = _check_link(row, expected_seq, previous)
        if broken is not None:
            return ChainCheck(count, head_seq, head_hash, broken), False
        expected_seq, previous = row.seq + 1, row.hash
    if head_seq != expected_seq - 1 or head_hash != previous:
        reason = (f"the head names event {head_seq} ({head_hash[:16]}…) but the last event "
                  f"is {expected_seq - 1} ({previous[:16]}…): events were removed or added")
        appended = head_seq < expected_seq - 1 and _head(database) != (head_seq, head_hash)
        return ChainCheck(count, head_seq, head_hash,
                          BrokenLink(min(head_seq, expected_seq), None, reason)), appended
    return ChainCheck(count, head_seq, head_hash, None), False


def _head(database: Database) -> tuple[int, str]:
    """The sequence number and hash the head row names."""
    with database.read() as session:
        head = session.execute(select(AuditHead).where(AuditHead.id == _HEAD_ID)).scalar_one()
        return head.seq, head.hash


def _check_link(row: AuditEvent, expected_seq: int, previous: str) -> BrokenLink | None:
    if row.seq != expected_seq:
        return BrokenLink(expected_seq, None,
                          f"event {expected_seq} is missing (next is {row.seq})")
    if row.prev_hash != previous:
        return BrokenLink(row.seq, row.action,
                          "its previous hash is not the hash of the event before it")
    try:
        recomputed = chain_hash(previous, event_json(row))
    except (TypeError, ValueError) as error:
        return BrokenLink(row.seq, row.action, f"its columns cannot be read: {error}")
    if recomputed != row.hash:
        return BrokenLink(row.seq, row.action,
                          "its content does not match its hash (the row was changed)")
    return None


def events_for_case(database: Database, number: str,
                    message_sha256s: Sequence[str] = ()) -> list[AuditEvent]:
    """The events of a case: those naming it, and those of its messages (also from before
    the case existed). `message_sha256s` adds messages no longer in the database (after
    retention, from the tombstone)."""
    with database.read() as session:
        hashes = set(message_sha256s)
        case = session.execute(select(Case).where(Case.number == number)).scalar_one_or_none()
        if case is not None:
            hashes.update(session.execute(
                select(Message.sha256).where(Message.case_id == case.id)).scalars())
        condition = AuditEvent.case_number == number
        if hashes:
            condition = or_(condition, AuditEvent.message_sha256.in_(sorted(hashes)))
        rows = list(session.execute(
            select(AuditEvent).where(condition).order_by(AuditEvent.seq)).scalars())
        session.expunge_all()
    return rows


def last_event(database: Database) -> AuditEvent | None:
    """The newest event, if any (detached)."""
    with database.read() as session:
        row = session.execute(
            select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one_or_none()
        if row is not None:
            session.expunge(row)
    return row


def record_committed(database: Database, action: str, **fields: Any) -> None:
    """Record one event in a transaction of its own (a CLI view or export, a verify run)."""
    with database.write() as session:
        record(session, action, **fields)
