"""The mails of the response plan: reminders, escalations, the weekly digest, and the short
confirmation of a manager's reply. Each is rendered in full here, ready for the outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from notifier.case_actions import NEEDS_REGISTRATION, REGISTRATION_STEP, ActionResult
from notifier.durations import describe_duration
from notifier.mails import MailComposer, case_tag
from notifier.outgoing import OutgoingMail
from notifier.plan.checklist import acknowledge_duration, step_description, step_title
from notifier.plan.settings import PlanSettings
from notifier.templating import local_date, local_time
from storage.i18n.catalogs import translations
from storage.models import Case, CaseStep
from storage.routing_words import routing_words

# Reminders are about a case the manager is already handling: they are sent as
# auto-generated mail like the notification, so vacation responders stay quiet.
_AUTO_GENERATED = "auto-generated"


@dataclass(frozen=True)
class DigestCase:
    """One open case as the weekly digest lists it."""

    case: Case
    next_step: CaseStep | None
    overdue_count: int
    related_count: int


@dataclass(frozen=True)
class UnknownLine:
    """A line of a reply that looked like a command and was not understood."""

    line: str
    code: str  # unknown-word, bad-date, missing-argument, bad-value


def reporter_display(case: Case) -> str:
    """The employee as the mails name them."""
    return f"{case.reporter_name} <{case.reporter}>" if case.reporter_name else case.reporter


@dataclass(frozen=True)
class ReplyLines:
    """The reply lines the plan's mails suggest, as the reply commands
    (`intake.commands.reply`) read them in each language; handed in by the daemon, since the
    notifier does not know the commands."""

    acknowledge: Callable[[str], str]  # language -> "kvitter"
    step_done: Callable[[int, str], str]  # step number, language -> "trin 2 udført"


class PlanMails:
    """Renders the plan's mails through the same composer (and templates) as the
    notification."""

    def __init__(self, composer: MailComposer, plan: PlanSettings,
                 command_help: dict[str, Sequence[tuple[str, str]]],
                 reply_lines: ReplyLines) -> None:
        self.composer = composer
        self.plan = plan
        self._command_help = command_help
        self.reply_lines = reply_lines

    def reminder(self, case: Case, step: CaseStep, *, recipient: str, role: str,
                 now: datetime, reply_to: str | None = None) -> OutgoingMail:
        """A reminder to the owner of a step that its deadline is near (or past)."""
        language = self.composer.language_for(recipient)
        due_at = step.due_at
        if due_at is None:
            raise ValueError(f"step {step.key} of case {case.number} has no deadline")
        zone = self.composer.zone
        if now >= due_at:
            timing = "overdue"
        elif now.astimezone(zone).date() == due_at.astimezone(zone).date():
            timing = "today"
        else:
            timing = "ahead"
        can_act = role != "reporter"
        # The form that completes the registration step, for the manager or deputy only.
        registration_url = (self.composer.registration_url(case.number)
                            if step.key == REGISTRATION_STEP and role in ("manager", "deputy")
                            else "")
        context: dict[str, object] = {
            "case_number": case.number,
            "step": {"number": step.position, "key": step.key,
                     "title": step_title(step, language),
                     "description": step_description(step, language), "owner": step.owner,
                     "due": local_time(due_at, language, self.composer.zone)},
            "timing": timing, "recipient_role": role,
            "done_command": (self.reply_lines.step_done(step.position, language) if can_act
                             else None),
            "opened": local_time(case.opened_at, language, self.composer.zone),
            "reporter_display": reporter_display(case),
            "registration_url": registration_url,
        }
        return self.composer.compose("reminder", recipient=recipient, recipient_name=None,
                                     context=context, language=language, reply_to=reply_to)

    def escalation(self, case: Case, *, level: int, recipient: str, previous: Sequence[str],
                   item_count: int, reply_to: str | None = None) -> OutgoingMail:
        """The case has not been acknowledged in time: ask the deputy (level 1) or the
        default manager (level 2) to make sure someone takes it."""
        language = self.composer.language_for(recipient)
        context: dict[str, object] = {
            "case_number": case.number, "level": level, "manager_display": case.manager,
            "previous": list(previous), "reporter_display": reporter_display(case),
            "opened": local_time(case.opened_at, language, self.composer.zone),
            "acknowledge_within": describe_duration(acknowledge_duration(self.plan), language),
            "routing_reason": routing_words(case.routing_source, case.routing_params,
                                            case.routing_reason, language),
            "ack_command": self.reply_lines.acknowledge(language),
            "item_count": item_count,
        }
        return self.composer.compose("escalation", recipient=recipient, recipient_name=None,
                                     context=context, language=language, reply_to=reply_to)

    def digest(self, manager: str, cases: Sequence[DigestCase], *, week: int, year: int,
               now: datetime, reply_to: str | None = None) -> OutgoingMail:
        """The weekly overview of a manager's open cases."""
        language = self.composer.language_for(manager)
        listed = []
        for entry in cases:
            case = entry.case
            next_step = None
            if entry.next_step is not None:
                step = entry.next_step
                next_step = {
                    "number": step.position, "title": step_title(step, language),
                    "due": (local_time(step.due_at, language, self.composer.zone)
                            if step.due_at else None),
                    "overdue": step.due_at is not None and step.due_at < now,
                }
            listed.append({
                "number": case.number,
                "case_tag": case_tag(case.number, language),
                "opened": local_time(case.opened_at, language, self.composer.zone),
                "reporter_display": reporter_display(case),
                "acknowledged": case.acknowledged_at is not None,
                "relation": case.relation if case.relation != "unknown" else None,
                "first_absence_day": (local_date(case.first_absence_day, language)
                                      if case.first_absence_day else None),
                "next_step": next_step, "overdue_count": entry.overdue_count,
                "related_count": entry.related_count,
            })
        context: dict[str, object] = {
            "week": week, "year": year, "case_count": len(listed), "cases": listed,
            "overdue_total": sum(entry.overdue_count for entry in cases),
        }
        return self.composer.compose("digest", recipient=manager, recipient_name=None,
                                     context=context, language=language, reply_to=reply_to)

    def sender_warning(self, case: Case, *, recipient: str, claimed_role: str,
                       commands: Sequence[str], reason: str,
                       reply_to: str | None) -> OutgoingMail:
        """A short warning that a mail on the case could not be proven to come from who it
        names: to that person ("self": their command was refused, give it again in a reply
        to this mail) or to the manager ("reporter", "other": an unverified mail is on the
        case). Quotes nothing of that mail; `commands` are our own command words."""
        language = self.composer.language_for(recipient)
        context: dict[str, object] = {
            "case_number": case.number, "claimed_role": claimed_role,
            "commands": list(commands), "reason": reason,
        }
        return self.composer.compose("sender_warning", recipient=recipient,
                                     recipient_name=None, context=context, language=language,
                                     reply_to=reply_to)

    def confirmation(self, case: Case, *, actor: str, language: str,
                     results: Sequence[ActionResult], steps: Sequence[CaseStep],
                     implicit_ack: bool, unknown: Sequence[UnknownLine], show_help: bool,
                     note_saved: bool, attachment_count: int,
                     in_reply_to: str | None, reply_to: str | None = None) -> OutgoingMail:
        """The short answer to a manager's reply: what was done, what was not understood."""
        by_position = {str(step.position): step for step in steps}
        shown = []
        for result in results:
            value = result.value
            if result.action == "step" and value in by_position:
                value = f"{value} {step_title(by_position[value], language)}"
            elif result.action == "absence" and value:
                value = local_date(date.fromisoformat(value), language)
            shown.append({"action": result.action, "value": value, "outcome": result.outcome})
        easy_due = None
        easy_step = None
        absence_recorded = any(result.action == "absence" and result.outcome == "done"
                               for result in results)
        if absence_recorded and case.first_absence_day is not None:
            event_steps = [step for step in steps
                           if step.due_after == "first_absence_day" and step.due_at]
            if event_steps and event_steps[0].due_at is not None:
                day = local_date(event_steps[0].due_at.astimezone(self.composer.zone).date(),
                                 language)
                easy_due = translations(language).gettext("by %(day)s") % {"day": day}
                easy_step = event_steps[0].position
        context: dict[str, object] = {
            "case_number": case.number, "actor_display": actor, "results": shown,
            "implicit_ack": implicit_ack, "easy_due": easy_due, "easy_step": easy_step,
            "unknown": [{"line": line.line, "code": line.code} for line in unknown],
            "show_help": show_help or bool(unknown),
            "commands": [{"syntax": syntax, "explanation": explanation}
                         for syntax, explanation in self._command_help.get(language, ())],
            "note_saved": note_saved, "attachment_count": attachment_count,
            # A step refused for want of a registration: the form's link (web view on).
            "registration_url": (self.composer.registration_url(case.number)
                                 if any(result.outcome == NEEDS_REGISTRATION
                                        for result in results) else ""),
        }
        return self.composer.compose("confirmation", recipient=actor, recipient_name=None,
                                     context=context, language=language,
                                     auto_submitted="auto-replied", in_reply_to=in_reply_to,
                                     reply_to=reply_to)
