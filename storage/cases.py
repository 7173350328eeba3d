"""Cases: gap-free numbers, opening, threading look-ups, notes, assignment, closing."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from storage import audit
from storage.blobstore import sha256_hex
from storage.database import Database
from storage.errors import ChikanemailError
from storage.models import (
    Case,
    CaseCounter,
    CaseNote,
    CaseStatus,
    Message,
    OutboxMail,
    utc_now,
)
from storage.note_words import ASSIGNED, TEXT_LANGUAGE, note_text

CASE_NUMBER = re.compile(r"(?<!\d)(\d{4})-(\d{4,})(?!\d)")


class CaseError(ChikanemailError):
    """A case operation that cannot be done (no such case, already closed, …)."""


def format_case_number(year: int, sequence: int) -> str:
    """The human case number: `YYYY-NNNN`."""
    return f"{year:04d}-{sequence:04d}"


def allocate_case_number(session: Session, year: int) -> tuple[int, str]:
    """The next number of the year, taken inside the caller's transaction (gap-free: a
    rolled-back transaction gives its number back)."""
    # Imported here: a listing on SQLite need not load the PostgreSQL dialect.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        session.execute(postgresql_insert(CaseCounter).values(year=year, last_sequence=0)
                        .on_conflict_do_nothing(index_elements=["year"]))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(CaseCounter).values(year=year, last_sequence=0)
                        .on_conflict_do_nothing(index_elements=["year"]))
    counter = session.execute(
        select(CaseCounter).where(CaseCounter.year == year).with_for_update()
    ).scalar_one()
    counter.last_sequence += 1
    session.flush()
    return counter.last_sequence, format_case_number(year, counter.last_sequence)


def open_case(
    session: Session,
    *,
    reporter: str,
    reporter_name: str | None,
    manager: str,
    deputy: str | None,
    language: str,
    routing_source: str,
    routing_reason: str,
    routing_params: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Case:
    """Open a case with the next number, in the caller's transaction (`routing_params`: the
    line or rule that decided, for storage.routing_words)."""
    now = now or utc_now()
    sequence, number = allocate_case_number(session, now.year)
    case = Case(
        number=number, year=now.year, sequence=sequence, status=CaseStatus.OPEN,
        reporter=reporter, reporter_name=reporter_name, manager=manager, deputy=deputy,
        language=language, routing_source=routing_source, routing_reason=routing_reason,
        routing_params=routing_params, opened_at=now,
    )
    session.add(case)
    session.flush()
    return case


def case_by_number(session: Session, number: str) -> Case | None:
    """The case with this number, if any."""
    return session.execute(select(Case).where(Case.number == number)).scalar_one_or_none()


def case_threaded_by(session: Session, message_ids: Sequence[str]) -> Case | None:
    """The case a message threads into through In-Reply-To/References: one of the case's
    received messages or one of our own outgoing mails."""
    wanted = [mid.strip() for mid in message_ids if mid and mid.strip()]
    if not wanted:
        return None
    case_id = session.execute(
        select(Message.case_id).where(Message.message_id.in_(wanted),
                                      Message.case_id.is_not(None)).limit(1)
    ).scalar_one_or_none()
    if case_id is None:
        case_id = session.execute(
            select(OutboxMail.case_id).where(OutboxMail.message_id.in_(wanted),
                                             OutboxMail.case_id.is_not(None)).limit(1)
        ).scalar_one_or_none()
    return session.get(Case, case_id) if case_id is not None else None


def replies_to_mail_without_case(session: Session, message_ids: Sequence[str]) -> bool:
    """Whether the message answers one of our mails that belongs to no case (a digest)."""
    wanted = [mid.strip() for mid in message_ids if mid and mid.strip()]
    if not wanted:
        return False
    return session.execute(
        select(OutboxMail.id).where(OutboxMail.message_id.in_(wanted),
                                    OutboxMail.case_id.is_(None)).limit(1)
    ).first() is not None


def add_note(session: Session, case: Case, *, author: str, text: str,
             message_pk: int | None = None, now: datetime | None = None,
             action: str = "note", details: dict[str, Any] | None = None,
             code: str | None = None, params: dict[str, Any] | None = None) -> CaseNote:
    """Record a note on the case, in the caller's transaction, with its audit event
    (`action`, e.g. `step-done` when the note records an action; the text only by hash).
    A note the system writes gives its `code` and `params` (see add_system_note)."""
    note = CaseNote(case_id=case.id, author=author, text=text, message_pk=message_pk,
                    created_at=now or utc_now(), code=code, params=params)
    session.add(note)
    session.flush()
    audit.record(session, action, actor=author, case=case, now=note.created_at,
                 details={"note": note.id, "text_sha256": sha256_hex(text.encode("utf-8")),
                          **(details or {})})
    return note


def add_system_note(session: Session, case: Case, code: str, params: dict[str, Any], *,
                    author: str, now: datetime | None = None, action: str = "note",
                    details: dict[str, Any] | None = None,
                    message_pk: int | None = None, zone: tzinfo | None = None) -> CaseNote:
    """Record a note in the system's words: stored as its code and parameters (read in the
    reader's language by storage.note_words), its text the English words (times in
    `zone`, [ui] timezone)."""
    text = note_text(code, params, TEXT_LANGUAGE, zone=zone)
    return add_note(session, case, author=author, text=text, message_pk=message_pk, now=now,
                    action=action, details=details, code=code, params=params)


def add_note_by_number(database: Database, number: str, *, author: str, text: str) -> CaseNote:
    """Record a note on the case with this number (committed)."""
    with database.write() as session:
        case = lock_case(session, number)
        note = add_note(session, case, author=author, text=text)
        session.expunge(note)
        return note


def assign_case(session: Session, case: Case, *, manager: str, deputy: str | None,
                actor: str, now: datetime) -> CaseNote:
    """Set the case's responsible manager and deputy in the caller's transaction, with a
    note and its `assigned` audit event naming who it was before."""
    previous, previous_deputy = case.manager, case.deputy
    case.manager = manager
    case.deputy = deputy
    params = {"manager": manager, "previous": previous, "deputy": deputy,
              "previous_deputy": previous_deputy}
    return add_system_note(session, case, ASSIGNED, params, author=actor, now=now,
                           action="assigned", details=dict(params))


def lock_case(session: Session, number: str) -> Case:
    """The case with this number, locked for the caller's transaction; CaseError if none."""
    case = session.execute(
        select(Case).where(Case.number == number).with_for_update()
    ).scalar_one_or_none()
    if case is None:
        raise CaseError(f"no case {number}")
    return case


def list_cases(database: Database, *, status: str | None = None) -> list[Case]:
    """Cases, newest first (detached)."""
    statement = select(Case).order_by(Case.year.desc(), Case.sequence.desc())
    if status:
        statement = statement.where(Case.status == status)
    with database.read() as session:
        rows = list(session.execute(statement).scalars())
        session.expunge_all()
    return rows


# What a case listing shows of each case, in this order: `case_summary` names its keys after
# these columns.
CASE_SUMMARY_COLUMNS = (
    Case.number, Case.status, Case.reporter, Case.reporter_name, Case.manager, Case.deputy,
    Case.opened_at, Case.closed_at, Case.close_reason, Case.routing_source,
    Case.routing_reason, Case.relation, Case.medium, Case.first_absence_day, Case.witnesses,
    Case.acknowledged_at, Case.acknowledged_by, Case.escalation_level, Case.legal_hold,
    Case.hold_reason,
)
CASE_SUMMARY_KEYS = tuple(column.key for column in CASE_SUMMARY_COLUMNS)
_SUMMARY_TIMES = ("opened_at", "closed_at", "first_absence_day", "acknowledged_at")
# Rows fetched at a time when a listing streams (a server-side cursor on PostgreSQL).
LISTING_BATCH_ROWS = 1000


def case_summary(case: Case) -> dict[str, Any]:
    """The case's own fields as JSON-ready values (stable keys for scripts)."""
    return case_summary_of_values([getattr(case, key) for key in CASE_SUMMARY_KEYS])


def case_summary_of_values(values: Sequence[Any]) -> dict[str, Any]:
    """`case_summary` of a row of CASE_SUMMARY_COLUMNS (what a listing fetches, without
    loading the `Case`)."""
    summary = dict(zip(CASE_SUMMARY_KEYS, values, strict=True))
    for key in _SUMMARY_TIMES:
        if summary[key] is not None:
            summary[key] = summary[key].isoformat()
    summary["witnesses"] = list(summary["witnesses"] or [])
    summary["legal_hold"] = bool(summary["legal_hold"])
    return summary


def count_cases(database: Database, *, status: str | None = None) -> int:
    """How many cases there are (with this status)."""
    statement = select(func.count()).select_from(Case)
    if status:
        statement = statement.where(Case.status == status)
    with database.read() as session:
        return int(session.execute(statement).scalar_one())


def case_summary_rows(database: Database, *, status: str | None = None,
                      limit: int | None = None) -> Iterator[Sequence[Any]]:
    """Cases newest first as tuples of CASE_SUMMARY_COLUMNS, streamed: rows come
    LISTING_BATCH_ROWS at a time while the caller iterates (a server-side cursor on
    PostgreSQL), so listing every case never holds them all.

    The order walks an index backwards: the unique (year, sequence), or (status, year,
    sequence) with a status (revision 0007). The read transaction stays open until the
    iteration ends or the generator is closed.
    """
    statement = select(*CASE_SUMMARY_COLUMNS).order_by(Case.year.desc(), Case.sequence.desc())
    if status:
        statement = statement.where(Case.status == status)
    if limit is not None:
        statement = statement.limit(limit)
    with database.read_connection() as connection:
        yield from connection.execution_options(yield_per=LISTING_BATCH_ROWS).execute(statement)


def get_case(database: Database, number: str) -> Case | None:
    """The case with this number (detached)."""
    with database.read() as session:
        case = case_by_number(session, number)
        if case is not None:
            session.expunge(case)
    return case


def case_numbers(database: Database, case_ids: Iterator[int | None] | Sequence[int | None]
                 ) -> dict[int, str]:
    """The case number (`2026-0001`) of each of these internal case ids."""
    wanted = {case_id for case_id in case_ids if case_id is not None}
    if not wanted:
        return {}
    with database.read() as session:
        rows = session.execute(select(Case.id, Case.number).where(Case.id.in_(wanted)))
        return {case_id: number for case_id, number in rows}


def case_messages(database: Database, case_id: int) -> list[Message]:
    """The case's messages in the order they arrived (detached)."""
    with database.read() as session:
        rows = list(session.execute(
            select(Message).where(Message.case_id == case_id).order_by(Message.id)
        ).scalars())
        session.expunge_all()
    return rows


def case_notes(database: Database, case_id: int) -> list[CaseNote]:
    """The case's notes, oldest first (detached)."""
    with database.read() as session:
        rows = list(session.execute(
            select(CaseNote).where(CaseNote.case_id == case_id).order_by(CaseNote.id)
        ).scalars())
        session.expunge_all()
    return rows


def messages_without_case(database: Database, *, kind: str | None = None) -> list[Message]:
    """Processed messages kept out of cases (e.g. `not-a-report`), newest first (detached)."""
    statement = select(Message).where(Message.case_id.is_(None),
                                      or_(Message.kind.is_not(None), Message.automatic))
    if kind:
        statement = statement.where(Message.kind == kind)
    with database.read() as session:
        rows = list(session.execute(statement.order_by(Message.id.desc())).scalars())
        session.expunge_all()
    return rows
