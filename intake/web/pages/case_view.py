"""What the case page shows, read in one go: the case in the reader's words and zone, its
checklist and deadlines, forwarded originals, evidence, notes, timeline and related cases."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from intake.web.pages.registration_summary import (
    EasyStatus,
    RegistrationSummary,
    easy_status,
    registration_summary,
)
from notifier.durations import describe_due_rule, parse_duration
from storage.audit_words import LINK_REASONS, describe, label
from storage.case_links import related_cases
from storage.code_words import finder_words, flag_words, ocr_words
from storage.forwarded_original import original_of
from storage.i18n.catalogs import translations
from storage.models import AuditEvent, Case, CaseLink, CaseNote, CaseStep, Evidence, Message
from storage.note_words import render_note
from storage.routing_words import routing_words
from storage.time_text import long_datetime

# Audit actions that only read the case: the page lists them apart, newest first.
READS = ("viewed", "downloaded", "exported")
NEWEST_READS = 10


@dataclass(frozen=True)
class StepView:
    """One checklist step: its title, owner, deadline in words and whether it is done."""

    position: int
    key: str
    title: str
    description: str
    owner: str
    due: str | None
    overdue: bool
    done_at: str | None
    done_by: str | None


@dataclass(frozen=True)
class OriginalView:
    """A forwarded original: who sent it, when and with what subject, and how it was found."""

    from_name: str | None
    from_address: str | None
    date: str | None
    date_raw: str | None
    date_zone_assumed: bool
    subject: str | None
    found_by: str


@dataclass(frozen=True)
class EvidenceView:
    """One evidence item as the page lists it."""

    id: int
    part_path: str
    role: str
    filename: str | None
    media_type: str | None
    size: int
    sha256: str
    has_thumbnail: bool
    flags: tuple[str, ...]
    ocr: str | None


@dataclass(frozen=True)
class MessageView:
    """One mail of the case and its evidence."""

    id: int
    received_at: str
    kind: str | None
    from_address: str | None
    subject: str | None
    sha256: str
    unverified: bool
    evidence: tuple[EvidenceView, ...]


@dataclass(frozen=True)
class NoteView:
    """A note, in the reader's language."""

    written_at: str
    author: str
    text: str


@dataclass(frozen=True)
class EventView:
    """An audit event in words."""

    seq: int
    occurred_at: str
    actor: str
    action: str
    label: str
    sentence: str


@dataclass(frozen=True)
class RelatedView:
    """A related case the viewer may open, and why it looks related."""

    number: str
    status: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class CasePage:
    """Everything the case page shows."""

    case: Case
    opened_at: str
    closed_at: str | None
    acknowledged_at: str | None
    routing: str
    steps: tuple[StepView, ...]
    originals: tuple[OriginalView, ...]
    messages: tuple[MessageView, ...]
    notes: tuple[NoteView, ...]
    timeline: tuple[EventView, ...]
    # Views and downloads: how many in all, and the newest.
    reads_total: int
    reads: tuple[EventView, ...]
    related: tuple[RelatedView, ...]
    # Related cases the viewer may not open: only how many, nothing of their content.
    related_hidden: int
    # The newest registration (None: not registered yet) and, with a first day of absence,
    # the EASY report's deadline.
    registration: RegistrationSummary | None = None
    easy: EasyStatus | None = None

    @property
    def evidence_count(self) -> int:
        """How many evidence items the case holds."""
        return sum(len(message.evidence) for message in self.messages)


def case_by_number(session: Session, visible: ColumnElement[bool], number: str) -> Case | None:
    """The case with this number if the viewer may see it (else None: the page says 404)."""
    return session.execute(
        select(Case).where(Case.number == number, visible)).scalar_one_or_none()


def evidence_of_case(session: Session, case: Case, evidence_id: int) -> Evidence | None:
    """The evidence item with this id if it belongs to one of the case's mails."""
    return session.execute(
        select(Evidence).join(Message, Message.id == Evidence.message_pk)
        .where(Evidence.id == evidence_id, Message.case_id == case.id)).scalar_one_or_none()


def message_of_case(session: Session, case: Case, message_id: int) -> Message | None:
    """The mail with this id if it belongs to the case."""
    return session.execute(
        select(Message).where(Message.id == message_id, Message.case_id == case.id)
    ).scalar_one_or_none()


def read_case_page(session: Session, case: Case, *, may_open: Callable[[str], bool],
                   language: str, zone: tzinfo, now: datetime) -> CasePage:
    """The case page's content for a reader of `language` in `zone`; `may_open` says
    whether the viewer may open another case (by number)."""

    def when(moment: datetime | None) -> str | None:
        return long_datetime(moment, language, zone) if moment is not None else None

    steps = session.execute(select(CaseStep).where(CaseStep.case_id == case.id)
                            .order_by(CaseStep.position)).scalars().all()
    messages = session.execute(select(Message).where(Message.case_id == case.id)
                               .order_by(Message.id)).scalars().all()
    evidence = session.execute(
        select(Evidence).where(Evidence.message_pk.in_([m.id for m in messages]))
        .order_by(Evidence.message_pk, Evidence.position)).scalars().all() if messages else []
    notes = session.execute(select(CaseNote).where(CaseNote.case_id == case.id)
                            .order_by(CaseNote.id)).scalars().all()
    related = related_cases(session, case.id)
    reads_total, reads = _reads(session, case, language, zone)
    shown_related = tuple(
        RelatedView(other.number, other.status,
                    tuple(_link_reason(reason, detail, language)
                          for reason, detail in other.reasons))
        for other in related if may_open(other.number))
    return CasePage(
        case=case,
        opened_at=long_datetime(case.opened_at, language, zone),
        closed_at=when(case.closed_at),
        acknowledged_at=when(case.acknowledged_at),
        routing=routing_words(case.routing_source, case.routing_params, case.routing_reason,
                              language),
        steps=tuple(_step_view(step, language, zone, now) for step in steps),
        originals=tuple(_originals(messages, evidence, language, zone)),
        messages=tuple(_message_view(message, [row for row in evidence
                                               if row.message_pk == message.id],
                                     language, zone) for message in messages),
        notes=tuple(NoteView(long_datetime(note.created_at, language, zone), note.author,
                             render_note(note, language, zone)) for note in notes),
        timeline=tuple(_timeline(session, case, messages, language, zone)),
        reads_total=reads_total, reads=tuple(reads),
        related=shown_related,
        related_hidden=len(related) - len(shown_related),
        registration=registration_summary(session, case, language=language, zone=zone),
        easy=easy_status(session, case, language=language, zone=zone, now=now),
    )


def _step_view(step: CaseStep, language: str, zone: tzinfo, now: datetime) -> StepView:
    if step.due_at is not None:
        due: str | None = long_datetime(step.due_at, language, zone)
    elif step.due:
        # The event it counts from (the first day of absence) is not known yet.
        due = describe_due_rule(parse_duration(step.due, working=step.working_days),
                                step.due_after, language)
    else:
        due = None
    return StepView(
        position=step.position, key=step.key,
        title=step.title_en if language == "en" else step.title_da,
        description=step.description_en if language == "en" else step.description_da,
        owner=step.owner, due=due,
        overdue=step.done_at is None and step.due_at is not None and step.due_at < now,
        done_at=long_datetime(step.done_at, language, zone) if step.done_at else None,
        done_by=step.done_by)


def _original_view(values: dict[str, object] | object, language: str,
                   zone: tzinfo) -> OriginalView:
    get = values.get if isinstance(values, dict) else (lambda key: getattr(values, key, None))
    date = get("date")
    if isinstance(date, str):
        try:
            date = datetime.fromisoformat(date)
        except ValueError:
            date = None
    shown = (long_datetime(date, language, zone)
             if isinstance(date, datetime) and date.tzinfo is not None else None)
    rule = get("rule")
    return OriginalView(
        from_name=_text(get("from_name")), from_address=_text(get("from_address")),
        date=shown, date_raw=_text(get("date_raw")),
        date_zone_assumed=bool(get("date_zone_assumed")), subject=_text(get("subject")),
        found_by=finder_words(rule if isinstance(rule, str) else None, language))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _originals(messages: Sequence[Message], evidence: Sequence[Evidence], language: str,
               zone: tzinfo) -> list[OriginalView]:
    """The forwarded originals: the one each mail's body shows, and each attached mail's."""
    found = []
    for message in messages:
        original = original_of(message)
        if original is not None:
            found.append(_original_view(original, language, zone))
        for row in evidence:
            if row.message_pk == message.id and row.original:
                found.append(_original_view(row.original, language, zone))
    return found


def _message_view(message: Message, evidence: Sequence[Evidence], language: str,
                  zone: tzinfo) -> MessageView:
    return MessageView(
        id=message.id, received_at=long_datetime(message.received_at, language, zone),
        kind=message.kind, from_address=message.from_address, subject=message.subject,
        sha256=message.sha256, unverified=bool(message.unverified),
        evidence=tuple(EvidenceView(
            id=row.id, part_path=row.part_path, role=row.role, filename=row.filename,
            media_type=row.sniffed_type or row.declared_type, size=row.size,
            sha256=row.sha256, has_thumbnail=row.thumbnail_sha256 is not None,
            flags=tuple(flag_words(flag, language) for flag in row.flags or []),
            ocr=ocr_words(row.ocr_status, language) if row.ocr_status else None)
            for row in evidence))


def _timeline(session: Session, case: Case, messages: Sequence[Message], language: str,
              zone: tzinfo) -> list[EventView]:
    """The audit events of the case and of its mails, oldest first, in words; the reading
    of it (views, downloads) apart, in `_reads`, or every view would lengthen the page."""
    condition = AuditEvent.case_number == case.number
    if messages:
        condition = or_(condition,
                        AuditEvent.message_sha256.in_([message.sha256 for message in messages]))
    events = session.execute(select(AuditEvent).where(condition,
                                                      AuditEvent.action.not_in(READS))
                             .order_by(AuditEvent.seq)).scalars().all()
    return [_event_view(event, language, zone) for event in events]


def _reads(session: Session, case: Case, language: str,
           zone: tzinfo) -> tuple[int, list[EventView]]:
    """How often the case was looked at or downloaded, and the newest of those, newest
    first."""
    condition = (AuditEvent.case_number == case.number, AuditEvent.action.in_(READS))
    total = session.execute(select(func.count()).select_from(AuditEvent)
                            .where(*condition)).scalar_one()
    newest = session.execute(select(AuditEvent).where(*condition)
                             .order_by(AuditEvent.seq.desc()).limit(NEWEST_READS)).scalars()
    return int(total), [_event_view(event, language, zone) for event in newest]


def _event_view(event: AuditEvent, language: str, zone: tzinfo) -> EventView:
    words = describe(event.action, event.details, language)
    sentence = "; ".join(part for part in
                         (words.sentence, *(f"{key}: {value}" for key, value in words.rest))
                         if part)
    return EventView(seq=event.seq, occurred_at=long_datetime(event.occurred_at, language, zone),
                     actor=event.actor, action=event.action,
                     label=label(event.action, language), sentence=sentence)


def _link_reason(reason: str, detail: str, language: str) -> str:
    msgid = LINK_REASONS.get(reason)
    words = translations(language).gettext(msgid) if msgid else reason
    return f"{words} ({detail})" if detail else words


def openable_related(session: Session, case: Case, visible: ColumnElement[bool]) -> set[str]:
    """The numbers of the cases linked to this one that `visible` lets the viewer open."""
    linked = select(CaseLink.other_case_id).where(CaseLink.case_id == case.id)
    return set(session.execute(
        select(Case.number).where(Case.id.in_(linked), visible)).scalars())
