"""The scheduler's memory: which reminders, escalations and digests have been dealt with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import audit
from storage.models import PlanNotice


def notice_keys(session: Session, kind: str, *, case_id: int | None = None) -> set[str]:
    """The keys of the notices of this kind already recorded (for one case, if given)."""
    statement = select(PlanNotice.key).where(PlanNotice.kind == kind)
    if case_id is not None:
        statement = statement.where(PlanNotice.case_id == case_id)
    return set(session.execute(statement).scalars())


def notice_exists(session: Session, kind: str, key: str) -> bool:
    """Whether this notice has been recorded."""
    return session.execute(
        select(PlanNotice.id).where(PlanNotice.kind == kind, PlanNotice.key == key)
    ).first() is not None


def record_notice(session: Session, *, kind: str, key: str, case_id: int | None,
                  recipient: str | None, due_at: datetime, now: datetime,
                  outbox_id: int | None, skipped: bool = False) -> PlanNotice:
    """Record a notice in the caller's transaction; (kind, key) is unique, so a second
    daemon recording the same one fails its transaction instead of sending twice."""
    notice = PlanNotice(kind=kind, key=key, case_id=case_id, recipient=recipient,
                        due_at=due_at, created_at=now, outbox_id=outbox_id, skipped=skipped)
    session.add(notice)
    session.flush()
    audit.record(session, f"{kind}-skipped" if skipped else f"{kind}-queued", now=now,
                 case_number=audit.case_number_of(session, case_id),
                 details={"key": key, "to": recipient})
    return notice


def notices_for_case(session: Session, case_id: int) -> list[PlanNotice]:
    """The case's notices, oldest first."""
    return list(session.execute(
        select(PlanNotice).where(PlanNotice.case_id == case_id).order_by(PlanNotice.id)
    ).scalars())
