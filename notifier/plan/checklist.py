"""The response plan on a case: its checklist, and the deadlines of its steps.

A case copies the configured steps when it opens (so a later change of the plan affects new
cases only). A step's deadline counts from the case's intake, or from the first day of
absence once one is recorded: the EASY report to Arbejdstilsynet is due 14 days after it
(BEK nr. 941 of 2022, § 9), counted in whole days and due at the end of the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.durations import PlanDuration, add_duration, parse_duration
from notifier.plan.settings import PlanSettings
from notifier.working_days import WorkingCalendar
from storage.models import Case, CaseStep

AFTER_INTAKE = "intake"
AFTER_FIRST_ABSENCE_DAY = "first_absence_day"
_END_OF_DAY = time(23, 59, 59)


def calendar_for(plan: PlanSettings, zone: tzinfo) -> WorkingCalendar:
    """The working calendar of the plan in the workplace's zone ([ui] timezone): weekends,
    Danish holidays, the extra closed days."""
    return WorkingCalendar(extra_closed_days=plan.extra_closed_days, zone=zone)


def acknowledge_duration(plan: PlanSettings) -> PlanDuration:
    """How long a manager has to acknowledge a case before it is escalated."""
    return parse_duration(plan.acknowledge_within, working=plan.acknowledge_in_working_days)


def step_due_at(step: CaseStep, *, opened_at: datetime, first_absence_day: date | None,
                calendar: WorkingCalendar) -> datetime | None:
    """When the step is due, or None if it has no deadline or its event is not known yet."""
    if not step.due:
        return None
    duration = parse_duration(step.due, working=step.working_days)
    if step.due_after == AFTER_INTAKE:
        return add_duration(calendar, opened_at, duration)
    if step.due_after == AFTER_FIRST_ABSENCE_DAY:
        if first_absence_day is None:
            return None
        return end_of_day(_add_days(calendar, first_absence_day, duration), calendar.zone)
    raise ValueError(f"step {step.key}: unknown due_after {step.due_after!r}")


def end_of_day(day: date, zone: tzinfo) -> datetime:
    """The last second of a local day in the workplace's zone, in UTC."""
    return datetime.combine(day, _END_OF_DAY, tzinfo=zone).astimezone(UTC)


def _add_days(calendar: WorkingCalendar, day: date, duration: PlanDuration) -> date:
    noon = datetime.combine(day, time(12, 0), tzinfo=calendar.zone)
    return add_duration(calendar, noon, duration).astimezone(calendar.zone).date()


def add_checklist(session: Session, case: Case, plan: PlanSettings,
                  calendar: WorkingCalendar) -> list[CaseStep]:
    """Give a newly opened case its copy of the plan's steps, with their deadlines."""
    steps = []
    for position, configured in enumerate(plan.steps, start=1):
        step = CaseStep(
            case_id=case.id, position=position, key=configured.key,
            title_da=configured.title.da, title_en=configured.title.en,
            description_da=configured.description.da, description_en=configured.description.en,
            owner=configured.owner, due=configured.due or None,
            working_days=configured.working_days, due_after=configured.due_after,
        )
        step.due_at = step_due_at(step, opened_at=case.opened_at,
                                  first_absence_day=case.first_absence_day, calendar=calendar)
        session.add(step)
        steps.append(step)
    session.flush()
    return steps


def case_steps(session: Session, case_id: int) -> list[CaseStep]:
    """The case's checklist in plan order."""
    return list(session.execute(
        select(CaseStep).where(CaseStep.case_id == case_id).order_by(CaseStep.position)
    ).scalars())


def recompute_event_deadlines(session: Session, case: Case,
                              calendar: WorkingCalendar) -> list[CaseStep]:
    """Set the deadlines that count from an event (the first absence day); the changed steps."""
    changed = []
    for step in case_steps(session, case.id):
        if step.due_after == AFTER_INTAKE:
            continue
        due_at = step_due_at(step, opened_at=case.opened_at,
                             first_absence_day=case.first_absence_day, calendar=calendar)
        if due_at != step.due_at:
            step.due_at = due_at
            changed.append(step)
    session.flush()
    return changed


def find_step(steps: Sequence[CaseStep], token: str) -> CaseStep | None:
    """The step named by its number in the checklist ("2") or its key ("documentation")."""
    token = token.strip().lower()
    if token.isdigit():
        position = int(token)
        return next((step for step in steps if step.position == position), None)
    return next((step for step in steps if step.key == token), None)


def step_title(step: CaseStep, language: str) -> str:
    """The step's title in `da` or `en`."""
    return step.title_en if language == "en" else step.title_da


def step_description(step: CaseStep, language: str) -> str:
    """The step's description in `da` or `en`."""
    return step.description_en if language == "en" else step.description_da
