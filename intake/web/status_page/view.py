"""What the status page may show the reporter, read from the database: the case number, what
they sent (names, sizes, SHA-256), whether the manager has acknowledged, and the plan's next
step in general words. Never notes, other people's names or addresses, related cases, or
any evidence content; mails the case got from anyone but the reporter are left out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Case, CaseStatus, CaseStep, Evidence, Message, MessageKind
from storage.time_text import long_datetime

# The reporter's own mails: the report that opened the case and their follow-ups.
_REPORTER_KINDS = (MessageKind.REPORT, MessageKind.FOLLOW_UP)


@dataclass(frozen=True)
class ReceivedItem:
    """One part of a mail, as the receipt lists it."""

    name: str | None
    role: str  # an EvidenceRole: the body is named by its role, not a file name
    size: int
    sha256: str


@dataclass(frozen=True)
class ReceivedMail:
    """One mail the reporter sent to the case."""

    received_at: str  # in words
    size: int
    sha256: str
    items: tuple[ReceivedItem, ...]


@dataclass(frozen=True)
class NextStep:
    """The plan's first step not yet done, in the reporter's language: its title only (the
    description speaks to the manager)."""

    title: str


@dataclass(frozen=True)
class StatusView:
    """Everything the status page shows."""

    language: str  # the case's: the reporter's
    case_number: str
    closed: bool
    acknowledged_at: str | None  # in words; None while nobody has acknowledged
    mails: tuple[ReceivedMail, ...]
    next_step: NextStep | None


def read_status(session: Session, case: Case, *, language: str, zone: tzinfo) -> StatusView:
    """The status page of `case` in `language`, times in `zone`."""
    return StatusView(
        language=language,
        case_number=case.number,
        closed=case.status == CaseStatus.CLOSED,
        acknowledged_at=long_datetime(case.acknowledged_at, language, zone)
        if case.acknowledged_at else None,
        mails=_reporter_mails(session, case, language, zone),
        next_step=None if case.status == CaseStatus.CLOSED
        else _next_step(session, case, language),
    )


def _reporter_mails(session: Session, case: Case, language: str,
                    zone: tzinfo) -> tuple[ReceivedMail, ...]:
    """The case's mails that are proven to be the reporter's, oldest first."""
    rows = list(session.execute(
        select(Message).where(Message.case_id == case.id, Message.kind.in_(_REPORTER_KINDS),
                              Message.unverified.is_(False),
                              func.lower(Message.from_address) == case.reporter.lower())
        .order_by(Message.received_at, Message.id)
    ).scalars())
    items: dict[int, list[ReceivedItem]] = {row.id: [] for row in rows}
    if rows:
        for item in session.execute(
            select(Evidence).where(Evidence.message_pk.in_(items))
            .order_by(Evidence.message_pk, Evidence.position)
        ).scalars():
            items[item.message_pk].append(ReceivedItem(item.filename, item.role, item.size,
                                                       item.sha256))
    return tuple(ReceivedMail(long_datetime(row.received_at, language, zone), row.size,
                              row.sha256, tuple(items[row.id])) for row in rows)


def _next_step(session: Session, case: Case, language: str) -> NextStep | None:
    """The first step of the case's checklist that is not done."""
    step = session.execute(
        select(CaseStep).where(CaseStep.case_id == case.id, CaseStep.done_at.is_(None))
        .order_by(CaseStep.position).limit(1)
    ).scalar_one_or_none()
    if step is None:
        return None
    return NextStep(step.title_en if language == "en" else step.title_da)
