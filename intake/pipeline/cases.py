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

from intake.cases.patterns import PatternFinder, PatternMatch
from intake.cases.routing import Router
from intake.commands.reply.actions import IncomingMail, ReplyHandler
from intake.parse.automatic import automatic_reason
from intake.parse.case_tags import case_number_in
from intake.parse.headers import header_str, parse_header_block
from intake.pipeline.step import MessageContext, StepError
from intake.receive.addresses import RecipientPolicy, normalize_address
from intake.service.settings import TrustSettings
from intake.trust.reply_proof import ReceiptPolicy, reply_token_of
from intake.trust.sender import DnsTemporaryError, SenderCheck, check_sender
from notifier.case_view import case_mail_view
from notifier.clock import Clock
from notifier.mails import CaseMailView, EvidenceLine, MailComposer, RelatedLine
from notifier.outbox import enqueue
from notifier.outgoing import OutgoingMail
from notifier.plan.checklist import add_checklist
from notifier.plan.settings import PlanSettings
from notifier.reply_addresses import secret_reply_address
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
# Enough of a message for its From when no signature is checked (as the header parser reads).
HEADER_BYTES = 1024 * 1024


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
class SenderTrust:
    """What decides who a mail is from: the intake addresses (for reply tokens), the
    [trust] settings, who may get a receipt, and how many tries a DNS failure gets."""

    recipients: RecipientPolicy
    settings: TrustSettings
    receipts: ReceiptPolicy
    max_attempts: int


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
                 trust: SenderTrust, on_outbox: Callable[[], None] | None = None) -> None:
        self.store_of_evidence = store_of_evidence
        self.trust = trust
        self.plan = plan
        self.router = router
        self.composer = composer
        self.notify = notify
        self.derived = derived
        self._on_outbox = on_outbox

    def run(self, message: MessageContext) -> None:
        """Decide the message's case and queue the mails that go with it, in one transaction."""
        if self._already_filed(message):
            return  # decided before a crash: the sender is never checked again
        headers = parse_header_block(message.store, message.sha256)
        check = self._check_sender(message)
        queued = False
        with message.database.write() as session:
            row = session.get(Message, message.message_pk, with_for_update=True)
            if row is None or row.kind is not None:
                return  # already decided (a re-run after a crash, or `reprocess`)
            sender = _sender_of(header_str(headers, "From"), row.mail_from)
            row.from_address = sender.address
            row.sender_check = check.code
            row.sender_authenticated = check.authenticated
            row.in_reply_to = header_str(headers, "In-Reply-To")
            row.reference_ids = _message_ids(header_str(headers, "References"))
            token = reply_token_of(session, row, headers, self.trust.recipients)
            row.reply_token_id = token.token_id if token is not None else None
            reason = automatic_reason(headers, row.mail_from)
            thread_ids = _message_ids(row.in_reply_to) + row.reference_ids
            case = case_threaded_by(session, thread_ids)
            if case is None:
                case = self._case_by_tag(session, header_str(headers, "Subject"), sender.address)
            if case is None and token is not None and token.case_id is not None:
                case = session.get(Case, token.case_id)
            add_log_fields(case=case.number if case else None)
            if reason is not None:
                row.automatic = True
                row.kind = MessageKind.AUTOMATIC if case else MessageKind.NOT_A_REPORT
                row.case_id = case.id if case else None
                log.info("automatic mail (%s) sha256=%s case=%s", reason, message.sha256,
                         case.number if case else "none")
            elif case is not None:
                claimed = check.from_address or sender.address
                mail = IncomingMail(sender=normalize_address(claimed) if claimed else None,
                                    text=self._body_text(row), token=token, check=check)
                outcome = self.plan.replies.handle(session, row, case, mail,
                                                   self.plan.clock.now())
                queued = outcome.queued
            elif (token is not None and token.case_id is None) or replies_to_mail_without_case(
                    session, thread_ids):
                # A manager answering the weekly digest is not reporting harassment.
                row.kind = MessageKind.NOT_A_REPORT
                log.info("reply to a mail of no case (a digest) kept, no case opened "
                         "sha256=%s", message.sha256)
            else:
                queued = self._open(session, row, sender,
                                    self.trust.receipts.why_not(row, headers, check))
            audit.record(session, "filed", message_sha256=row.sha256,
                         case_number=audit.case_number_of(session, row.case_id),
                         details={"kind": row.kind, "automatic": row.automatic,
                                  "sender_check": check.code, "unverified": row.unverified})
        if queued and self._on_outbox is not None:
            self._on_outbox()

    @staticmethod
    def _already_filed(message: MessageContext) -> bool:
        """Whether the message's case was decided already (or its row is gone)."""
        with message.database.read() as session:
            row = session.get(Message, message.message_pk)
            return row is None or row.kind is not None

    def _check_sender(self, message: MessageContext) -> SenderCheck:
        """Whether the From is authenticated; a DNS failure is retried like a failing step
        and, on the last try, counts as unverified."""
        settings = self.trust.settings
        if settings.authenticates:
            raw = message.store.read_bytes(message.sha256)
        else:
            with message.store.open(message.sha256) as handle:
                raw = handle.read(HEADER_BYTES)
        try:
            return check_sender(raw, settings)
        except DnsTemporaryError:
            if message.attempt < self.trust.max_attempts:
                raise StepError("DNS failed for a DKIM key; tried again later") from None
            log.warning("DNS still failing for a DKIM key on the last try; the sender counts "
                        "as unverified sha256=%s", message.sha256)
            unchecked = check_sender(raw, TrustSettings())
            return SenderCheck(code="dns-temporary", authenticated=False,
                               from_address=unchecked.from_address, domain=None)

    def _case_by_tag(self, session: Session, subject: str | None,
                     sender: str | None) -> Case | None:
        """The case a typed case number names, when the sender is one of its people or an
        admin; anyone else's case number opens a new case and learns nothing."""
        number = case_number_in(subject)
        if number is None or sender is None:
            return None
        case = case_by_number(session, number)
        if case is None:
            return None
        return case if self.plan.replies.may_act_without_token(case, sender) else None

    def _open(self, session: Session, row: Message, sender: Sender,
              no_receipt_reason: str | None) -> bool:
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
        if no_receipt_reason is not None:
            # No mail to an address we cannot vouch for: the manager is told instead.
            case.sender_unverified = True
            audit.record(session, "sender-unverified", case=case, message_sha256=row.sha256,
                         now=now, details={"reason": no_receipt_reason})
            log.info("case %s: no receipt: the sender cannot be vouched for (%s)",
                     case.number, no_receipt_reason)
        matches = self.plan.patterns.find(session, case, now)
        self.plan.patterns.link(session, case, matches, now)
        view = self._view(session, row, case, steps, self._related(session, case, matches))
        receipt = (self._receipt(session, case, view, now)
                   if sender.address and no_receipt_reason is None else None)
        notification = self.composer.notification(
            view, self._evidence_bytes(view, row),
            reply_to=secret_reply_address(session, self.composer, case_id=case.id,
                                          recipient=case.manager, kind="notification",
                                          now=now))
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
            reply_to = secret_reply_address(session, self.composer, case_id=case.id,
                                            recipient=case.reporter, kind="receipt", now=now)
            return self.composer.receipt(view, reply_to=reply_to)
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
