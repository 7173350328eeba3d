"""What has expired at a moment: closed cases and mail without a case past their period,
each as an item to delete (with its row counts and its blobs, deleted or kept shared) or as
kept and why; and the dry-run plan of a whole run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from storage.database import Database
from storage.models import (
    BlobDeletion,
    Case,
    CaseLink,
    CaseNote,
    CaseRegistration,
    CaseStatus,
    CaseStep,
    Evidence,
    Message,
    MessageKind,
    MessageState,
    MessageTimestamp,
    OutboxMail,
    PlanNotice,
)
from storage.retention.blob_refs import blobs_of, still_referenced
from storage.retention.items import (
    CLOSED_CASE_RULE,
    KEPT_IN_PROGRESS,
    KEPT_LEGAL_HOLD,
    KEPT_NOTE_ELSEWHERE,
    KEPT_QUARANTINED,
    NOT_A_REPORT_RULE,
    Exclusions,
    ItemRows,
    KeptItem,
    RetentionItem,
    RetentionPlan,
)
from storage.settings import RetentionSettings


def plan_retention(database: Database, settings: RetentionSettings,
                   now: datetime) -> RetentionPlan:
    """What `apply_retention` at `now` would delete and keep; changes nothing."""
    items: list[RetentionItem] = []
    kept: list[KeptItem] = []
    gone = Exclusions()  # earlier items of the plan: their blobs no longer count as shared
    with database.read() as session:
        found = [case_item(session, case, settings, gone)
                 for case in expired_cases(session, settings, now)]
        found += [message_item(session, message, settings, gone)
                  for message in expired_messages(session, settings, now)]
        for one in found:
            if isinstance(one, RetentionItem):
                items.append(one)
            else:
                kept.append(one)
        pending = session.execute(select(func.count()).select_from(BlobDeletion)).scalar_one()
    return RetentionPlan(now, tuple(items), tuple(kept), pending)


def expired_cases(session: Session, settings: RetentionSettings, now: datetime) -> list[Case]:
    """Closed cases past their period, held ones included (the plan says they are kept)."""
    cutoff = now - timedelta(days=settings.closed_case_days)
    return list(session.execute(
        select(Case).where(Case.status == CaseStatus.CLOSED, Case.closed_at.is_not(None),
                           Case.closed_at <= cutoff)
        .order_by(Case.closed_at, Case.id)).scalars())


def expired_messages(session: Session, settings: RetentionSettings,
                      now: datetime) -> list[Message]:
    """Processed messages without a case, not-a-report or automatic, past their period."""
    cutoff = now - timedelta(days=settings.not_a_report_days)
    return list(session.execute(
        select(Message).where(message_expires(), Message.received_at <= cutoff)
        .order_by(Message.received_at, Message.id)).scalars())


def message_expires() -> Any:
    """Which messages `not_a_report_days` applies to (quarantined ones never)."""
    return (Message.case_id.is_(None) & (Message.state == MessageState.PROCESSED)
            & or_(Message.kind == MessageKind.NOT_A_REPORT, Message.automatic.is_(True)))


def case_item(session: Session, case: Case, settings: RetentionSettings,
               gone: Exclusions) -> RetentionItem | KeptItem:
    """The case as an item to delete, or why it is kept."""
    if case.legal_hold:
        return KeptItem(case.number, None, KEPT_LEGAL_HOLD, case.hold_reason)
    messages = list(session.execute(
        select(Message).where(Message.case_id == case.id).order_by(Message.id)).scalars())
    states = {message.state for message in messages}
    if MessageState.QUARANTINED in states:
        return KeptItem(case.number, None, KEPT_QUARANTINED)
    if states & {MessageState.RECEIVED, MessageState.PROCESSING}:
        return KeptItem(case.number, None, KEPT_IN_PROGRESS)
    rows = ItemRows(case.id, frozenset(m.id for m in messages), tuple(m.sha256 for m in messages))
    if _named_by_other_notes(session, rows):
        return KeptItem(case.number, None, KEPT_NOTE_ELSEWHERE)
    assert case.closed_at is not None  # expired_cases selects closed cases only
    return _describe(session, CLOSED_CASE_RULE, case.number, case.closed_at,
                     settings.closed_case_days, rows, gone)


def message_item(session: Session, message: Message, settings: RetentionSettings,
                  gone: Exclusions) -> RetentionItem | KeptItem:
    """The message without a case as an item to delete, or why it is kept."""
    rows = ItemRows(None, frozenset({message.id}), (message.sha256,))
    if _named_by_other_notes(session, rows):
        return KeptItem(None, message.sha256, KEPT_NOTE_ELSEWHERE)
    return _describe(session, NOT_A_REPORT_RULE, None, message.received_at,
                     settings.not_a_report_days, rows, gone)


def _named_by_other_notes(session: Session, rows: ItemRows) -> bool:
    """Whether a note of another case points at one of these messages (its row must stay)."""
    statement = select(CaseNote.id).where(CaseNote.message_pk.in_(rows.message_ids))
    if rows.case_id is not None:
        statement = statement.where(CaseNote.case_id != rows.case_id)
    return session.execute(statement.limit(1)).first() is not None


def _describe(session: Session, rule: str, number: str | None, counted_from: datetime,
              days: int, rows: ItemRows, gone: Exclusions) -> RetentionItem:
    """Count the item's rows and sort its blobs into deleted and kept-shared; the item's
    messages join `gone`, so a later item of the same plan may delete a blob kept here."""
    counts = _counts(session, rows, gone)
    gone.ids |= rows.message_ids
    gone.sha256s |= set(rows.message_sha256s)
    if rows.case_id is not None:
        gone.case_ids.add(rows.case_id)
    candidates = blobs_of(session, rows)
    shared = still_referenced(session, candidates, gone)
    return RetentionItem(
        rule=rule, case_number=number, message_sha256s=rows.message_sha256s,
        counted_from=counted_from, retention_days=days, counts=counts,
        blobs_to_delete=tuple(sorted(candidates - shared)),
        blobs_kept_shared=tuple(sorted(shared)))


def _counts(session: Session, rows: ItemRows, gone: Exclusions) -> dict[str, int]:
    """How many rows of each kind the item deletes (links to cases in `gone` are gone)."""
    ids = rows.message_ids

    def count(model: Any, *conditions: Any) -> int:
        return int(session.execute(
            select(func.count()).select_from(model).where(or_(*conditions))).scalar_one())

    counts = {"messages": len(ids),
              "evidence": count(Evidence, Evidence.message_pk.in_(ids)),
              "timestamps": count(MessageTimestamp,
                                  MessageTimestamp.message_sha256.in_(rows.message_sha256s))}
    case_id = rows.case_id
    if case_id is not None:
        counts.update(
            notes=count(CaseNote, CaseNote.case_id == case_id),
            steps=count(CaseStep, CaseStep.case_id == case_id),
            registrations=count(CaseRegistration, CaseRegistration.case_id == case_id),
            outbox=count(OutboxMail, OutboxMail.case_id == case_id),
            notices=count(PlanNotice, PlanNotice.case_id == case_id),
            links=sum(1 for one, other in session.execute(
                select(CaseLink.case_id, CaseLink.other_case_id).where(
                    or_(CaseLink.case_id == case_id, CaseLink.other_case_id == case_id)))
                if one not in gone.case_ids and other not in gone.case_ids))
    return counts
