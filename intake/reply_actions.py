"""A reply on a case: who may act, the command lines run, the rest kept as a note, and a
short confirmation back.

The case's manager and deputy, the configured admins, and (once the case has been escalated
to them) the default manager may act. The first reply from the manager, the deputy or the
escalated default manager acknowledges the case. Anyone else's reply on the case is kept as
a note with no effect; the reporter's own mail is a follow-up, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.reply_commands import (
    Absence,
    Acknowledge,
    Close,
    Command,
    Help,
    Medium,
    Relation,
    StepDone,
    Witness,
    parse_reply,
)
from intake.reply_text import new_text_of_reply
from notifier.case_actions import ActionResult, CaseActions
from notifier.outbox import enqueue
from notifier.plan import case_steps
from notifier.plan_mails import PlanMails, UnknownLine
from notifier.settings import NotifySettings
from storage.cases import add_note
from storage.local_time import workplace_zone
from storage.models import Case, CaseStatus, Evidence, EvidenceRole, Message, MessageKind

log = logging.getLogger("chikanemail.intake.replies")

NOTE_MAX_CHARS = 20_000


@dataclass(frozen=True)
class ReplyOutcome:
    """What a reply did: whether it acted, and whether a mail was queued."""

    acted: bool
    queued: bool


class ReplyHandler:
    """Handles a message that threads into an existing case."""

    def __init__(self, actions: CaseActions, mails: PlanMails, notify: NotifySettings, *,
                 admins: tuple[str, ...], default_manager: str) -> None:
        self.actions = actions
        self.mails = mails
        self.notify = notify
        self.admins = frozenset(address.strip().lower() for address in admins)
        self.default_manager = default_manager.strip().lower()

    def responsible(self, case: Case) -> set[str]:
        """Who answers for the case: their first reply acknowledges it."""
        people = {case.manager}
        if case.deputy:
            people.add(case.deputy)
        if case.escalation_level >= 2 and self.default_manager:
            people.add(self.default_manager)
        return people

    def may_act(self, case: Case, sender: str | None) -> bool:
        """Whether this sender's command lines act on the case."""
        return sender is not None and (sender in self.responsible(case) or sender in self.admins)

    def handle(self, session: Session, row: Message, case: Case, sender: str | None,
               text: str, now: datetime) -> ReplyOutcome:
        """Record the message on its case; act on its commands if the sender may."""
        row.case_id = case.id
        if sender is not None and sender == case.reporter and not self.may_act(case, sender):
            row.kind = MessageKind.FOLLOW_UP
            log.info("message joined case %s as follow-up sha256=%s", case.number, row.sha256)
            return ReplyOutcome(acted=False, queued=False)
        row.kind = MessageKind.NOTE
        if not self.may_act(case, sender):
            note = new_text_of_reply(text)[:NOTE_MAX_CHARS] or "(no text)"
            add_note(session, case, author=sender or "unknown", text=note, message_pk=row.id,
                     now=now)
            log.info("reply from someone not responsible kept as a note, no effect case=%s "
                     "sha256=%s", case.number, row.sha256)
            return ReplyOutcome(acted=False, queued=False)
        assert sender is not None  # may_act said so
        return self._act(session, row, case, sender, text, now)

    def _act(self, session: Session, row: Message, case: Case, actor: str, text: str,
             now: datetime) -> ReplyOutcome:
        parsed = parse_reply(text, today=now.astimezone(workplace_zone()).date())
        # The first reply of someone responsible acknowledges the case, before its commands
        # run (a reply that closes the case acknowledged it too); an explicit `kvitter`
        # line does it itself.
        implicit_ack = (case.acknowledged_at is None and case.status == CaseStatus.OPEN
                        and actor in self.responsible(case)
                        and not any(isinstance(command, Acknowledge)
                                    for command in parsed.commands))
        if implicit_ack:
            self.actions.acknowledge(session, case, actor=actor, now=now)
        results: list[ActionResult] = []
        show_help = False
        for command in parsed.commands:
            if isinstance(command, Help):
                show_help = True
                continue
            results.append(self._run(session, case, command, actor, now))
        note = parsed.note.strip()[:NOTE_MAX_CHARS]
        if note:
            add_note(session, case, author=actor, text=note, message_pk=row.id, now=now)
        attachments = self._attachment_count(session, row.id)
        unknown = [UnknownLine(line.line, line.code) for line in parsed.unknown]
        log.info("reply acted on case %s: %d commands, %d not understood, note=%s sha256=%s",
                 case.number, len(results), len(unknown), bool(note), row.sha256)
        if not (results or unknown or implicit_ack or show_help):
            return ReplyOutcome(acted=False, queued=False)
        language = parsed.language or self.mails.composer.language_for(actor)
        mail = self.mails.confirmation(
            case, actor=actor, language=language, results=results,
            steps=case_steps(session, case.id), implicit_ack=implicit_ack, unknown=unknown,
            show_help=show_help, note_saved=bool(note), attachment_count=attachments,
            in_reply_to=row.message_id)
        enqueue(session, mail, case_id=case.id, settings=self.notify)
        return ReplyOutcome(acted=bool(results) or implicit_ack, queued=True)

    def _run(self, session: Session, case: Case, command: Command, actor: str,
             now: datetime) -> ActionResult:
        actions = self.actions
        if isinstance(command, Acknowledge):
            return actions.acknowledge(session, case, actor=actor, now=now)
        if isinstance(command, StepDone):
            return actions.step_done(session, case, command.step, actor=actor, now=now)
        if isinstance(command, Absence):
            return actions.absence(session, case, command.day, actor=actor, now=now)
        if isinstance(command, Relation):
            return actions.relation(session, case, command.kind, actor=actor, now=now)
        if isinstance(command, Medium):
            return actions.medium(session, case, command.kind, actor=actor, now=now)
        if isinstance(command, Witness):
            return actions.witness(session, case, command.text, actor=actor, now=now)
        if isinstance(command, Close):
            return actions.close(session, case, command.reason, actor=actor, now=now)
        raise TypeError(f"unhandled command {command!r}")

    @staticmethod
    def _attachment_count(session: Session, message_pk: int) -> int:
        return int(session.execute(
            select(func.count(Evidence.id)).where(
                Evidence.message_pk == message_pk, Evidence.parent_id.is_(None),
                Evidence.role != EvidenceRole.BODY)
        ).scalar_one())
