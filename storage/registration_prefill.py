"""What a registration form starts from (issue 22): the newest saved version, or else what
the case already knows.

From the case: the reporter as the affected employee; the senders of the forwarded
originals as the harasser; the period from the originals' dates (else the day of intake);
the medium recorded or, with forwarded mails, mail; the relation and the first day of
absence if recorded; the manager as the handler; and the checklist's done steps as the
actions taken. Everything taken from a mail is the sender's word, and the form says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.i18n.catalogs import translations
from storage.models import Case, CaseStep, Medium, Message
from storage.registration_codes import DETAIL_OF_COARSE
from storage.registrations import RegistrationFields, latest_registration, stored_fields
from storage.time_text import long_date


def starting_fields(session: Session, case: Case, *, language: str,
                    zone: tzinfo) -> RegistrationFields:
    """The newest saved registration of the case, or the one prefilled from the case."""
    latest = latest_registration(session, case.id)
    if latest is not None:
        return stored_fields(latest)
    return prefilled_fields(session, case, language=language, zone=zone)


def prefilled_fields(session: Session, case: Case, *, language: str,
                     zone: tzinfo) -> RegistrationFields:
    """A registration filled in from what the case knows (the actions in `language`, days
    in the workplace's `zone`)."""
    messages = list(session.execute(
        select(Message).where(Message.case_id == case.id).order_by(Message.id)).scalars())
    originals = [message for message in messages if message.original_rule]
    days = sorted(message.original_date.astimezone(zone).date() for message in originals
                  if message.original_date is not None)
    opened = case.opened_at.astimezone(zone).date()
    absence = "sick-leave" if case.first_absence_day is not None else "unknown"
    return RegistrationFields(
        affected_employee=_person(case.reporter_name, case.reporter),
        harasser=", ".join(_unique(_person(message.original_from_name,
                                           message.original_from_address)
                                   for message in originals
                                   if message.original_from_address)),
        relation=case.relation_detail or DETAIL_OF_COARSE.get(case.relation, "unknown"),
        period_start=days[0] if days else opened,
        period_end=days[-1] if days and days[-1] != days[0] else None,
        medium=case.medium or _medium_of(originals),
        harassment_type=case.harassment_type or "",
        absence=case.absence or absence,
        first_absence_day=case.first_absence_day,
        handler=case.manager,
        actions_taken=_actions(session, case, language, zone),
    )


def _person(name: str | None, address: str) -> str:
    name = " ".join((name or "").split())
    return f"{name} <{address}>" if name and name != address else address


def _unique(items: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _medium_of(originals: list[Message]) -> str:
    """Mail when mails were forwarded; a screenshot alone does not say where it was taken,
    so the form asks."""
    return Medium.MAIL.value if originals else ""


def _actions(session: Session, case: Case, language: str, zone: tzinfo) -> str:
    _ = translations(language).gettext
    steps = session.execute(
        select(CaseStep).where(CaseStep.case_id == case.id, CaseStep.done_at.is_not(None))
        .order_by(CaseStep.position)).scalars()
    lines = []
    for step in steps:
        assert step.done_at is not None
        title = step.title_en if language == "en" else step.title_da
        lines.append(_("Step %(step)s (%(title)s) done %(day)s.") % {
            "step": step.position, "title": title,
            "day": long_date(step.done_at.astimezone(zone).date(), language)})
    return "\n".join(lines)
