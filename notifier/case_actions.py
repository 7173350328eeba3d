"""What a manager can do to a case, by replying to its mails or with the CLI.

Each action runs in the caller's transaction, records a note saying who did what and when,
and says how it went: `done`, `already` (nothing to change), `no-such-step`, or
`case-closed` (a closed case changes no more; notes are still kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from notifier.plan.checklist import case_steps, find_step, recompute_event_deadlines
from notifier.working_days import WorkingCalendar
from storage.cases import add_system_note
from storage.models import Case, CaseStatus, CaseStep, HarasserRelation, Medium
from storage.note_words import (
    ABSENCE,
    ACKNOWLEDGED,
    CLOSED,
    MEDIUM,
    RELATION,
    STEP_DONE,
    WITNESS,
    step_param,
)
from storage.reply_tokens import retire_tokens

DONE = "done"
ALREADY = "already"
NO_SUCH_STEP = "no-such-step"
CASE_CLOSED = "case-closed"


@dataclass(frozen=True)
class ActionResult:
    """How one action on a case went.

    `value` is what the action was about, in a plain form the mails format themselves: the
    step's position, the day as ISO date, the relation or medium code, the witness, the
    closing reason.
    """

    action: str  # ack, step, absence, relation, medium, witness, close
    value: str | None
    outcome: str
    step_key: str | None = None


class CaseActions:
    """The actions on a case; deadlines counted with the plan's working calendar."""

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.calendar = calendar

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


def _step(step: CaseStep) -> dict[str, object]:
    """A step as a note's parameters name it (number, key, title per language)."""
    return step_param(step.position, step.key, {"da": step.title_da, "en": step.title_en})
