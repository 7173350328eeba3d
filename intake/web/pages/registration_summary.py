"""What the case page says about the registration and the EASY report (issue 22): whether the
case is registered, and, once a first day of absence is recorded, the deadline for
reporting the work injury to Arbejdstilsynet through EASY and whether it was reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.case_actions import REGISTRATION_STEP
from notifier.plan.checklist import end_of_day
from storage.models import Case, CaseRegistration, CaseStep
from storage.registration_words import easy_deadline as registration_easy_deadline
from storage.registration_words import value_words
from storage.registrations import latest_registration, stored_fields
from storage.time_text import long_date, long_datetime


@dataclass(frozen=True)
class RegistrationSummary:
    """The newest saved registration in a few words."""

    version: int
    saved_at: str
    author: str
    relation: str
    harassment_type: str
    medium: str
    absence: str


@dataclass(frozen=True)
class EasyStatus:
    """The EASY report of a case with a first day of absence: its deadline and whether it
    was reported."""

    first_absence_day: str
    deadline: str
    passed: bool
    reported_on: str | None
    easy_number: str | None


def registration_summary(session: Session, case: Case, *, language: str,
                         zone: tzinfo) -> RegistrationSummary | None:
    """The case's newest registration in words, or None when it is not registered."""
    row: CaseRegistration | None = latest_registration(session, case.id)
    if row is None:
        return None
    fields = stored_fields(row)
    return RegistrationSummary(
        version=row.version, saved_at=long_datetime(row.created_at, language, zone),
        author=row.author,
        relation=value_words("relation", fields.relation, language),
        harassment_type=value_words("harassment_type", fields.harassment_type, language),
        medium=value_words("medium", fields.medium, language),
        absence=value_words("absence", fields.absence, language))


def easy_deadline(session: Session, case: Case, zone: tzinfo) -> datetime | None:
    """When the EASY report is due: the `registration` step's deadline when it has one,
    else the end of the 14th calendar day after the first day of absence; None without a
    first day of absence."""
    if case.first_absence_day is None:
        return None
    step_due = session.execute(
        select(CaseStep.due_at).where(CaseStep.case_id == case.id,
                                      CaseStep.key == REGISTRATION_STEP)
        .order_by(CaseStep.position).limit(1)).scalar_one_or_none()
    if step_due is not None:
        return step_due if step_due.tzinfo is not None else step_due.replace(tzinfo=UTC)
    last_day = registration_easy_deadline(case.first_absence_day)
    return end_of_day(last_day, zone) if last_day is not None else None


def easy_status(session: Session, case: Case, *, language: str, zone: tzinfo,
                now: datetime) -> EasyStatus | None:
    """The EASY deadline and report of the case, or None without a first day of absence."""
    deadline = easy_deadline(session, case, zone)
    if deadline is None or case.first_absence_day is None:
        return None
    reported = case.easy_reported_on
    return EasyStatus(
        first_absence_day=long_date(case.first_absence_day, language),
        deadline=long_datetime(deadline, language, zone),
        passed=reported is None and deadline < now,
        reported_on=long_date(reported, language) if reported is not None else None,
        easy_number=case.easy_case_number)
