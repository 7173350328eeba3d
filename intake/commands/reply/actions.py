"""A mail on an existing case: who it proves to be from, the command lines run, the rest
kept as a note, and a short confirmation back.

A mail acts only when it proves its sender (`intake.trust.reply_proof`): it came to a live reply
token of this case and of this person, and, where the admin configured it, its From is
authenticated. The case's manager and deputy, the configured admins, and (once the case has
been escalated to them) the default manager may act; the first proven reply of the
manager, the deputy or the escalated default manager acknowledges the case. A mail that
claims one of them but proves nothing is kept as an unverified note, changes nothing, and
the person it names is told (at most once an hour per case). The reporter's own mail is a
follow-up; unproven, it is marked unverified and the manager is told. Anyone else's mail is
a note with no effect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.commands.reply import declaration
from intake.commands.reply.parser import command_name, parse_reply
from intake.parse.reply_text import new_text_of_reply
from intake.receive.addresses import normalize_address
from intake.trust.reply_proof import follow_up_refusal, refusal
from intake.trust.sender import SenderCheck
from notifier.case_actions import ActionResult, CaseActions
from notifier.outbox import enqueue
from notifier.plan.checklist import case_steps
from notifier.plan.mails import PlanMails, UnknownLine
from notifier.reply_addresses import secret_reply_address
from notifier.settings import NotifySettings
from storage import audit
from storage.cases import add_note, add_system_note
from storage.models import (
    Case,
    CaseStatus,
    Evidence,
    EvidenceRole,
    Message,
    MessageKind,
    PlanNotice,
)
from storage.note_words import NO_TEXT
from storage.plan_notices import record_notice
from storage.reply_tokens import TokenState

log = logging.getLogger("chikanemail.intake.replies")

NOTE_MAX_CHARS = 20_000
# At most one warning about unproven mail per case and person in this time.
WARNING_INTERVAL = timedelta(hours=1)
WARNING_NOTICE = "sender-warning"


@dataclass(frozen=True)
class ReplyOutcome:
    """What a reply did: whether it acted, and whether a mail was queued."""

    acted: bool
    queued: bool


@dataclass(frozen=True)
class IncomingMail:
    """What is known of a mail on a case: its From (one address, case-folded, or None),
    its text, the reply token it came to, and the sender check of its From."""

    sender: str | None
    text: str
    token: TokenState | None
    check: SenderCheck


class ReplyHandler:
    """Handles a message that belongs to an existing case."""

    def __init__(self, actions: CaseActions, mails: PlanMails, notify: NotifySettings, *,
                 admins: tuple[str, ...], default_manager: str,
                 command_mode: str = "token") -> None:
        self.actions = actions
        self.mails = mails
        self.notify = notify
        self.admins = frozenset(normalize_address(address) for address in admins)
        self.default_manager = normalize_address(default_manager)
        self.command_mode = command_mode

    def responsible(self, case: Case) -> set[str]:
        """Who answers for the case: their first reply acknowledges it."""
        people = {normalize_address(case.manager)}
        if case.deputy:
            people.add(normalize_address(case.deputy))
        if case.escalation_level >= 2 and self.default_manager:
            people.add(self.default_manager)
        return people

    def may_act(self, case: Case, sender: str | None) -> bool:
        """Whether this person may act on the case (once the mail proves it is them)."""
        return sender is not None and (sender in self.responsible(case) or sender in self.admins)

    def may_act_without_token(self, case: Case, sender: str | None) -> bool:
        """Whether a case number typed by this person leads to the case (to be told how to
        act) rather than to a new case: the case's people and the admins."""
        return self.may_act(case, sender) or (
            sender is not None and sender == normalize_address(case.reporter))

    def handle(self, session: Session, row: Message, case: Case, mail: IncomingMail,
               now: datetime) -> ReplyOutcome:
        """Record the message on its case; act on its commands if it proves its sender."""
        row.case_id = case.id
        sender = mail.sender
        if self.may_act(case, sender):
            assert sender is not None  # may_act said so
            reason = refusal(case.id, sender, mail.token, mail.check, self.command_mode)
            if reason is not None:
                return self._refuse(session, row, case, sender, mail.text, reason, now)
            row.kind = MessageKind.NOTE
            return self._act(session, row, case, sender, mail.text, now)
        if sender is not None and sender == normalize_address(case.reporter):
            row.kind = MessageKind.FOLLOW_UP
            reason = follow_up_refusal(case.id, sender, mail.token, mail.check,
                                       self.command_mode)
            if reason is None:
                log.info("message joined case %s as follow-up sha256=%s", case.number,
                         row.sha256)
                return ReplyOutcome(acted=False, queued=False)
            return self._unverified(session, row, case, "reporter", reason, now)
        row.kind = MessageKind.NOTE
        _add_reply_note(session, case, author=sender or "unknown",
                        text=new_text_of_reply(mail.text)[:NOTE_MAX_CHARS], message_pk=row.id,
                        now=now)
        reason = refusal(case.id, sender or "", mail.token, mail.check, self.command_mode)
        if reason is None:
            log.info("reply from someone not responsible kept as a note, no effect case=%s "
                     "sha256=%s", case.number, row.sha256)
            return ReplyOutcome(acted=False, queued=False)
        return self._unverified(session, row, case, "other", reason, now)

    def _refuse(self, session: Session, row: Message, case: Case, claimed: str, text: str,
                reason: str, now: datetime) -> ReplyOutcome:
        """A mail naming someone who may act, unproven: an unverified note, the refusal
        recorded, and that person told (at the address the case holds)."""
        row.kind = MessageKind.NOTE
        row.unverified = True
        _add_reply_note(session, case, author=claimed,
                        text=new_text_of_reply(text)[:NOTE_MAX_CHARS], message_pk=row.id,
                        now=now, details={"unverified": True})
        language = self.mails.composer.language_for(claimed)
        parsed = parse_reply(text, today=now.astimezone(self.actions.calendar.zone).date())
        commands = [command_name(command, language) for command in parsed.commands]
        audit.record(session, "command-refused", case=case, message_sha256=row.sha256,
                     now=now, details={"reason": reason, "claimed": claimed,
                                       "commands": commands})
        log.warning("command refused case=%s reason=%s commands=%d sha256=%s", case.number,
                    reason, len(commands), row.sha256)
        queued = self._warn(session, case, recipient=claimed, claimed_role="self",
                            commands=commands, reason=reason, now=now)
        return ReplyOutcome(acted=False, queued=queued)

    def _unverified(self, session: Session, row: Message, case: Case, claimed_role: str,
                    reason: str, now: datetime) -> ReplyOutcome:
        """A follow-up or note that proves nothing: marked, recorded, the manager told."""
        row.unverified = True
        audit.record(session, "unverified-mail", case=case, message_sha256=row.sha256,
                     now=now, details={"reason": reason, "claimed_role": claimed_role})
        log.info("unverified mail on case %s (%s, %s) sha256=%s", case.number, claimed_role,
                 reason, row.sha256)
        queued = self._warn(session, case, recipient=case.manager, claimed_role=claimed_role,
                            commands=[], reason=reason, now=now)
        return ReplyOutcome(acted=False, queued=queued)

    def _warn(self, session: Session, case: Case, *, recipient: str, claimed_role: str,
              commands: list[str], reason: str, now: datetime) -> bool:
        """Queue one warning to `recipient`, unless one about this case went to them within
        the hour; whether one was queued."""
        recent = session.execute(
            select(PlanNotice.id).where(
                PlanNotice.kind == WARNING_NOTICE, PlanNotice.case_id == case.id,
                PlanNotice.recipient == recipient, PlanNotice.created_at > now - WARNING_INTERVAL)
            .limit(1)
        ).first()
        if recent is not None:
            log.info("warning about unproven mail not repeated within the hour case=%s",
                     case.number)
            return False
        reply_to = (secret_reply_address(session, self.mails.composer, case_id=case.id,
                                         recipient=recipient, kind="sender_warning", now=now)
                    if case.status == CaseStatus.OPEN else None)
        mail = self.mails.sender_warning(case, recipient=recipient, claimed_role=claimed_role,
                                         commands=commands, reason=reason, reply_to=reply_to)
        outbox = enqueue(session, mail, case_id=case.id, settings=self.notify)
        record_notice(session, kind=WARNING_NOTICE, key=f"{case.number}:{outbox.message_id}",
                      case_id=case.id, recipient=recipient, due_at=now, now=now,
                      outbox_id=outbox.id)
        return True

    def _act(self, session: Session, row: Message, case: Case, actor: str, text: str,
             now: datetime) -> ReplyOutcome:
        parsed = parse_reply(text, today=now.astimezone(self.actions.calendar.zone).date())
        # The first reply of someone responsible acknowledges the case, before its commands
        # run (a reply that closes the case acknowledged it too); an explicit `kvitter`
        # line does it itself.
        implicit_ack = (case.acknowledged_at is None and case.status == CaseStatus.OPEN
                        and actor in self.responsible(case)
                        and not any(declaration(command).acknowledges
                                    for command in parsed.commands))
        if implicit_ack:
            self.actions.acknowledge(session, case, actor=actor, now=now)
        results: list[ActionResult] = []
        show_help = False
        for command in parsed.commands:
            declared = declaration(command)
            show_help = show_help or declared.shows_help
            if declared.act is not None:
                results.append(declared.act(self.actions, session, case, command, actor=actor,
                                            now=now))
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
        # A closed case's tokens are retired, and it gets no new ones.
        reply_to = (secret_reply_address(session, self.mails.composer, case_id=case.id,
                                         recipient=actor, kind="confirmation", now=now)
                    if case.status == CaseStatus.OPEN else None)
        mail = self.mails.confirmation(
            case, actor=actor, language=language, results=results,
            steps=case_steps(session, case.id), implicit_ack=implicit_ack, unknown=unknown,
            show_help=show_help, note_saved=bool(note), attachment_count=attachments,
            in_reply_to=row.message_id, reply_to=reply_to)
        enqueue(session, mail, case_id=case.id, settings=self.notify)
        return ReplyOutcome(acted=bool(results) or implicit_ack, queued=True)

    @staticmethod
    def _attachment_count(session: Session, message_pk: int) -> int:
        return int(session.execute(
            select(func.count(Evidence.id)).where(
                Evidence.message_pk == message_pk, Evidence.parent_id.is_(None),
                Evidence.role != EvidenceRole.BODY)
        ).scalar_one())


def _add_reply_note(session: Session, case: Case, *, author: str, text: str, message_pk: int,
                    now: datetime, details: dict[str, Any] | None = None) -> None:
    """A reply kept as a note: its words, or the system's "(no text)" when it had none."""
    if text:
        add_note(session, case, author=author, text=text, message_pk=message_pk, now=now,
                 details=details)
    else:
        add_system_note(session, case, NO_TEXT, {}, author=author, message_pk=message_pk,
                        now=now, details=details)
