"""What a manager can do to a case, by replying to its mails or with the CLI.

Each action runs in the caller's transaction, records a note saying who did what and when,
and says how it went: `done`, `already` (nothing to change), `no-such-step`, or
`case-closed` (a closed case changes no more; notes are still kept), and for the step
that needs it, `needs-registration` (the plan's `registration` step is done only once the
case is registered, unless `[plan] registration_before_step` is false).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy.orm import Session

from notifier.plan.checklist import (
    calendar_for,
    case_steps,
    find_step,
    recompute_event_deadlines,
)
from notifier.plan.settings import PlanSettings
from notifier.working_days import WorkingCalendar
from storage.cases import add_system_note
from storage.models import Case, CaseStatus, CaseStep, HarasserRelation, Medium
from storage.note_words import (
    ABSENCE,
    ACKNOWLEDGED,
    CLOSED,
    EASY_REPORTED,
    MEDIUM,
    RELATION,
    STEP_DONE,
    WITNESS,
    step_param,
)
from storage.registrations import (
    RegistrationFields,
    latest_registration,
    save_registration,
    stored_fields,
)
from storage.reply_tokens import retire_tokens

DONE = "done"
ALREADY = "already"
NO_SUCH_STEP = "no-such-step"
CASE_CLOSED = "case-closed"
NEEDS_REGISTRATION = "needs-registration"

# The plan step that registers the incident (issue 22): done only once it is registered.
REGISTRATION_STEP = "registration"
# How long an EASY case number may be.
EASY_NUMBER_MAX_CHARS = 64


@dataclass(frozen=True)
class ActionResult:
    """How one action on a case went.

    `value` is what the action was about, in a plain form the mails format themselves: the
    step's position, the day as ISO date, the relation or medium code, the witness, the
    closing reason.
    """

    action: str  # ack, step, absence, relation, medium, witness, close, register, easy
    value: str | None
    outcome: str
    step_key: str | None = None


class CaseActions:
    """The actions on a case; deadlines counted with the plan's working calendar."""

    def __init__(self, calendar: WorkingCalendar, *,
                 registration_before_step: bool = True) -> None:
        self.calendar = calendar
        # Whether the `registration` step waits for a saved registration.
        self.registration_before_step = registration_before_step

    @classmethod
    def for_plan(cls, plan: PlanSettings, zone: tzinfo) -> CaseActions:
        """The case actions of the configured plan: its working calendar in the workplace's
        zone ([ui] timezone) and its rule for the registration step."""
        return cls(calendar_for(plan, zone),
                   registration_before_step=plan.registration_before_step)

    def acknowledge(self, session: Session, case: Case, *, actor: str,
                    now: datetime) -> ActionResult:
        """Record that someone responsible has seen the case and takes it (stops escalation)."""
        if case.status == CaseStatus.CLOSED:
            return ActionResult("ack", None, CASE_CLOSED)
        if case.acknowledged_at is not None:
            return ActionResult("ack", None, ALREADY)
        case.acknowledged_at = now
        case.acknowledged_by = actor
        add_system_note(session, case, ACKNOWLEDGED, {}, author=actor, now=now,
                        action="acknowledged")
        return ActionResult("ack", None, DONE)

    def step_done(self, session: Session, case: Case, token: str, *, actor: str,
                  now: datetime) -> ActionResult:
        """Mark a step of the checklist done, named by its number or key."""
        step = find_step(case_steps(session, case.id), token)
        if step is None:
            return ActionResult("step", token, NO_SUCH_STEP)
        value = str(step.position)
        if case.status == CaseStatus.CLOSED:
            return ActionResult("step", value, CASE_CLOSED, step.key)
        if step.done_at is not None:
            return ActionResult("step", value, ALREADY, step.key)
        if (step.key == REGISTRATION_STEP and self.registration_before_step
                and case.registration_version is None):
            return ActionResult("step", value, NEEDS_REGISTRATION, step.key)
        step.done_at = now
        step.done_by = actor
        add_system_note(session, case, STEP_DONE, _step(step), author=actor, now=now,
                        action="step-done", details={"step": step.position, "key": step.key})
        return ActionResult("step", value, DONE, step.key)

    def absence(self, session: Session, case: Case, day: date, *, actor: str,
                now: datetime) -> ActionResult:
        """Record the employee's first day of absence; it starts the EASY deadline."""
        if case.status == CaseStatus.CLOSED:
            return ActionResult("absence", day.isoformat(), CASE_CLOSED)
        if case.first_absence_day == day:
            return ActionResult("absence", day.isoformat(), ALREADY)
        previous = case.first_absence_day
        case.first_absence_day = day
        session.flush()
        changed = recompute_event_deadlines(session, case, self.calendar)
        deadlines = [{**_step(step), "due": step.due_at.isoformat()}
                     for step in changed if step.due_at is not None]
        details = {"day": day.isoformat(),
                   "previous": previous.isoformat() if previous else None}
        add_system_note(session, case, ABSENCE, {**details, "deadlines": deadlines},
                        author=actor, now=now, action="absence-recorded", details=details,
                        zone=self.calendar.zone)
        return ActionResult("absence", day.isoformat(), DONE)

    def relation(self, session: Session, case: Case, relation: str, *, actor: str,
                 now: datetime) -> ActionResult:
        """Record who the harasser is to the workplace: external, colleague or unknown."""
        return self._set_code(session, case, "relation", HarasserRelation(relation).value,
                              RELATION, actor=actor, now=now)

    def medium(self, session: Session, case: Case, medium: str, *, actor: str,
               now: datetime) -> ActionResult:
        """Record where the harassment happened: mail, sms, social-media or other."""
        return self._set_code(session, case, "medium", Medium(medium).value, MEDIUM,
                              actor=actor, now=now)

    @staticmethod
    def _set_code(session: Session, case: Case, field: str, value: str, note_code: str, *,
                  actor: str, now: datetime) -> ActionResult:
        """Set one coded field of the case (`relation`, `medium`), with its note."""
        if case.status == CaseStatus.CLOSED:
            return ActionResult(field, value, CASE_CLOSED)
        if getattr(case, field) == value:
            return ActionResult(field, value, ALREADY)
        setattr(case, field, value)
        add_system_note(session, case, note_code, {field: value}, author=actor, now=now,
                        action=f"{field}-set", details={field: value})
        return ActionResult(field, value, DONE)

    def witness(self, session: Session, case: Case, witness: str, *, actor: str,
                now: datetime) -> ActionResult:
        """Add a witness (a name, a role, how to reach them)."""
        witness = " ".join(witness.split())
        if case.status == CaseStatus.CLOSED:
            return ActionResult("witness", witness, CASE_CLOSED)
        if witness in (case.witnesses or []):
            return ActionResult("witness", witness, ALREADY)
        case.witnesses = [*(case.witnesses or []), witness]
        add_system_note(session, case, WITNESS, {"witness": witness}, author=actor, now=now,
                        action="witness-added")
        return ActionResult("witness", witness, DONE)

    def close(self, session: Session, case: Case, reason: str | None, *, actor: str,
              now: datetime) -> ActionResult:
        """Close the case, with a reason; steps not done are named in the note."""
        if case.status == CaseStatus.CLOSED:
            return ActionResult("close", reason, ALREADY)
        open_steps = [step for step in case_steps(session, case.id) if step.done_at is None]
        case.status = CaseStatus.CLOSED
        case.closed_at = now
        case.close_reason = reason or "closed by reply"
        retired = retire_tokens(session, case_id=case.id, reason="closed", now=now)
        add_system_note(session, case, CLOSED,
                        {"reason": reason, "open_steps": [_step(step) for step in open_steps]},
                        author=actor, now=now, action="closed",
                        details={"open_steps": [step.position for step in open_steps],
                                 "tokens_retired": retired})
        return ActionResult("close", reason, DONE)


    def register(self, session: Session, case: Case, registration: RegistrationFields, *,
                 actor: str, now: datetime) -> ActionResult:
        """Save the registration as the case's next version (the caller has checked it),
        and set what the case keeps of it: the coarse relation, the medium, and the first
        day of absence with its deadlines."""
        if case.status == CaseStatus.CLOSED:
            return ActionResult("register", None, CASE_CLOSED)
        latest = latest_registration(session, case.id)
        if latest is not None and stored_fields(latest) == registration:
            return ActionResult("register", str(latest.version), ALREADY)
        row = save_registration(session, case, registration, author=actor, now=now)
        case.relation = registration.coarse_relation
        if registration.medium:
            case.medium = registration.medium
        day = registration.first_absence_day
        if day is not None and day != case.first_absence_day:
            self.absence(session, case, day, actor=actor, now=now)
        return ActionResult("register", str(row.version), DONE)

    def easy_reported(self, session: Session, case: Case, easy_number: str, day: date, *,
                      actor: str, now: datetime) -> ActionResult:
        """Record that the work accident was reported to Arbejdstilsynet through EASY: the
        EASY case number and the day it was reported."""
        easy_number = " ".join(easy_number.split())
        if case.status == CaseStatus.CLOSED:
            return ActionResult("easy", easy_number, CASE_CLOSED)
        if not easy_number or len(easy_number) > EASY_NUMBER_MAX_CHARS:
            raise ValueError("an EASY case number is 1 to 64 characters")
        if case.easy_case_number == easy_number and case.easy_reported_on == day:
            return ActionResult("easy", easy_number, ALREADY)
        params: dict[str, Any] = {"number": easy_number, "day": day.isoformat(),
                                  "previous": case.easy_case_number}
        case.easy_case_number = easy_number
        case.easy_reported_on = day
        case.easy_recorded_at = now
        case.easy_recorded_by = actor
        add_system_note(session, case, EASY_REPORTED, params, author=actor, now=now,
                        action=EASY_REPORTED, details={"day": day.isoformat()})
        return ActionResult("easy", easy_number, DONE)


def _step(step: CaseStep) -> dict[str, object]:
    """A step as a note's parameters name it (number, key, title per language)."""
    return step_param(step.position, step.key, {"da": step.title_da, "en": step.title_en})
