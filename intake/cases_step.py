"""Pipeline step: open a case for a report, or thread the message into its case.

Runs after extraction. Everything it decides is written in one transaction together with
the outgoing mails (receipt, notification), so a crash leaves either nothing or all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses

from sqlalchemy.orm import Session

from intake.automatic import automatic_reason
from intake.case_tags import case_number_in
from intake.headers import header_str, parse_header_block
from intake.patterns import PatternFinder, PatternMatch
from intake.reply_actions import ReplyHandler
from intake.routing import Router
from intake.step import MessageContext
from notifier.case_view import case_mail_view
from notifier.clock import Clock
from notifier.mails import CaseMailView, EvidenceLine, MailComposer, RelatedLine
from notifier.outbox import enqueue
from notifier.outgoing import OutgoingMail
from notifier.plan import add_checklist
from notifier.plan_settings import PlanSettings
from notifier.settings import NotifySettings
from notifier.working_days import WorkingCalendar
from storage import audit
from storage.blobstore import BlobStore, BlobStoreError
from storage.cases import (
    case_by_number,
    case_threaded_by,
    open_case,
    replies_to_mail_without_case,
)
from storage.log_context import add_log_fields
from storage.models import Case, CaseStep, Medium, Message, MessageKind

log = logging.getLogger("chikanemail.intake.cases")

TEXT_MAX_CHARS = 200_000


@dataclass(frozen=True)
class CasePlanParts:
    """What a case needs from the response plan: the plan, its calendar and clock, how
    replies act, and how related cases are found."""

    plan: PlanSettings
    calendar: WorkingCalendar
    clock: Clock
    replies: ReplyHandler
    patterns: PatternFinder


@dataclass(frozen=True)
class Sender:
    """Who a message is from, by its From header (the envelope may be a forwarder's)."""

    address: str | None
    name: str | None


def _sender_of(from_header: str | None, envelope_from: str | None) -> Sender:
    if from_header:
        for name, address in getaddresses([from_header]):
            if "@" in address:
                return Sender(address.strip().lower(), name.strip() or None)
    if envelope_from and "@" in envelope_from:
        return Sender(envelope_from.strip().strip("<>").lower(), None)
    return Sender(None, None)


def _message_ids(*values: str | None) -> list[str]:
    found: list[str] = []
    for value in values:
        if not value:
            continue
        for token in value.replace(",", " ").split():
            if token.startswith("<") and token.endswith(">"):
                found.append(token)
    return found


class OpenOrThreadCase:
    """Open a case for a person's report, or add the message to the case it belongs to."""

    name = "open_or_thread_case"

    def __init__(self, router: Router, composer: MailComposer, notify: NotifySettings,
                 derived: BlobStore, store_of_evidence: BlobStore, plan: CasePlanParts,
                 on_outbox: Callable[[], None] | None = None) -> None:
        self.store_of_evidence = store_of_evidence
        self.plan = plan
        self.router = router
        self.composer = composer
        self.notify = notify
        self.derived = derived
        self._on_outbox = on_outbox

    def run(self, message: MessageContext) -> None:
        """Decide the message's case and queue the mails that go with it, in one transaction."""
        headers = parse_header_block(message.store, message.sha256)
        queued = False
        with message.database.write() as session:
            row = session.get(Message, message.message_pk, with_for_update=True)
            if row is None or row.kind is not None:
                return  # already decided (a re-run after a crash, or `reprocess`)
            sender = _sender_of(header_str(headers, "From"), row.mail_from)
            row.from_address = sender.address
            row.in_reply_to = header_str(headers, "In-Reply-To")
            row.reference_ids = _message_ids(header_str(headers, "References"))
            reason = automatic_reason(headers, row.mail_from)
            thread_ids = _message_ids(row.in_reply_to) + row.reference_ids
            case = case_threaded_by(session, thread_ids)
            if case is None:
                case = self._case_by_tag(session, header_str(headers, "Subject"), sender.address)
            add_log_fields(case=case.number if case else None)
            if reason is not None:
                row.automatic = True
                row.kind = MessageKind.AUTOMATIC if case else MessageKind.NOT_A_REPORT
                row.case_id = case.id if case else None
                log.info("automatic mail (%s) sha256=%s case=%s", reason, message.sha256,
                         case.number if case else "none")
            elif case is not None:
                outcome = self.plan.replies.handle(session, row, case, sender.address,
                                                   self._body_text(row), self.plan.clock.now())
                queued = outcome.queued
            elif replies_to_mail_without_case(session, thread_ids):
                # A manager answering the weekly digest is not reporting harassment.
                row.kind = MessageKind.NOT_A_REPORT
                log.info("reply to a mail of no case (a digest) kept, no case opened "
                         "sha256=%s", message.sha256)
            else:
                queued = self._open(session, row, sender)
            audit.record(session, "filed", message_sha256=row.sha256,
                         case_number=audit.case_number_of(session, row.case_id),
                         details={"kind": row.kind, "automatic": row.automatic})
        if queued and self._on_outbox is not None:
            self._on_outbox()

    def _case_by_tag(self, session: Session, subject: str | None,
                     sender: str | None) -> Case | None:
        number = case_number_in(subject)
        if number is None or sender is None:
            return None
        case = case_by_number(session, number)
        if case is None:
            return None
        allowed = {case.reporter, case.manager, case.deputy}
        return case if sender in allowed else None  # a stranger's tag opens a new case

    def _open(self, session: Session, row: Message, sender: Sender) -> bool:
        reporter = sender.address or "unknown@invalid"
        decision = self.router.route(reporter)
        now = self.plan.clock.now()
        case = open_case(
            session, reporter=reporter, reporter_name=sender.name, manager=decision.manager,
            deputy=decision.deputy, language=self.notify.language,
            routing_source=decision.source, routing_reason=decision.reason, now=now,
        )
        add_log_fields(case=case.number)
        row.case_id = case.id
        row.kind = MessageKind.REPORT
        if row.original_rule:
            case.medium = Medium.MAIL
        steps = add_checklist(session, case, self.plan.plan, self.plan.calendar)
        session.flush()
        audit.record(session, "case-opened", case=case, message_sha256=row.sha256, now=now,
                     details={"steps": len(steps), "language": case.language})
        audit.record(session, "routed", case=case, now=now,
                     details={"manager": case.manager, "deputy": case.deputy,
                              "source": decision.source})
        matches = self.plan.patterns.find(session, case, now)
        self.plan.patterns.link(session, case, matches, now)
        view = self._view(session, row, case, steps, self._related(session, case, matches))
        receipt = self._receipt(session, case, view, now) if sender.address else None
        notification = self.composer.notification(view, self._evidence_bytes(view, row))
        if receipt is not None:
            enqueue(session, receipt, case_id=case.id, settings=self.notify)
        enqueue(session, notification, case_id=case.id, settings=self.notify)
        log.info("case %s opened sha256=%s routing=%s", case.number, row.sha256,
                 decision.source)
        return True

    def _receipt(self, session: Session, case: Case, view: CaseMailView,
                 now: datetime) -> OutgoingMail | None:
        """The reporter's receipt; None, recorded, when their address cannot be written in a
        mail header (a non-ASCII local part, RFC 6532, needs SMTPUTF8 all the way). The case
        opens and the manager is told all the same."""
        try:
            return self.composer.receipt(view)
        except ValueError as error:  # email's header defects are ValueErrors
            audit.record(session, "receipt-skipped", case=case, now=now,
                         details={"reason": type(error).__name__})
            log.warning("case %s: no receipt: the reporter's address cannot be written in a "
                        "mail header (%s)", case.number, type(error).__name__)
            return None

    @staticmethod
    def _related(session: Session, case: Case,
                 matches: list[PatternMatch]) -> tuple[RelatedLine, ...]:
        """What the new case's manager may know of related cases: the number only of
        their own cases; of another manager's case only that it exists and why."""
        reasons: dict[int, list[str]] = {}
        for match in matches:
            found = reasons.setdefault(match.other_case_id, [])
            if match.reason not in found:
                found.append(match.reason)
        lines = []
        for other_id, why in sorted(reasons.items()):
            other = session.get(Case, other_id)
            if other is None:
                continue
            same_manager = other.manager == case.manager
            lines.append(RelatedLine(other.number if same_manager else None, tuple(why)))
        return tuple(lines)

    def _view(self, session: Session, row: Message, case: Case, steps: list[CaseStep],
              related: tuple[RelatedLine, ...]) -> CaseMailView:
        return case_mail_view(session, row, case, steps, self.plan.plan, related)

    def _evidence_bytes(self, view: CaseMailView,
                        row: Message) -> list[tuple[EvidenceLine, bytes]]:
        """The items' bytes, only when the config says evidence may leave by mail."""
        if not self.notify.include_evidence:
            return []
        attached = []
        for item in view.items:
            if item.role == "body":
                continue
            try:
                attached.append((item, self.store_of_evidence.read_bytes(item.sha256)))
            except BlobStoreError:
                log.warning("evidence blob missing, not attached sha256=%s", item.sha256)
        return attached

    def _body_text(self, row: Message) -> str:
        if not row.body_text_sha256:
            return "(no text)"
        try:
            text = self.derived.read_bytes(row.body_text_sha256).decode("utf-8", "replace")
        except BlobStoreError:
            return "(text unavailable)"
        return text[:TEXT_MAX_CHARS]
