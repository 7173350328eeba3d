"""The mails of a case just opened: the reporter's receipt and the manager's notification,
queued in the caller's transaction so they go out only if the case is committed."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from notifier.case_view import RelatedMatch, case_mail_view, related_lines
from notifier.mails import CaseContexts, CaseMailView, EvidenceLine, MailComposer
from notifier.outbox import enqueue
from notifier.outgoing import OutgoingMail
from notifier.plan.settings import PlanSettings
from notifier.reply_addresses import secret_reply_address
from notifier.settings import NotifySettings
from storage import audit
from storage.blobstore import BlobStore, BlobStoreError
from storage.models import Case, CaseStep, Message
from storage.status_links import issue_status_link, new_secret, status_url

log = logging.getLogger("chikanemail.notifier.new_case")


class NewCaseMails:
    """Queues the receipt and the notification of a new case."""

    def __init__(self, composer: MailComposer, notify: NotifySettings, plan: PlanSettings,
                 evidence: BlobStore, *, status_base_url: str | None = None) -> None:
        self.composer = composer
        self.notify = notify
        self.plan = plan
        self.evidence = evidence
        # Where the web view is reached, when it is on: the receipt links the status page.
        self.status_base_url = status_base_url

    def queue(self, session: Session, row: Message, case: Case, checklist: list[CaseStep],
              related: Iterable[RelatedMatch], *, receipt: bool, now: datetime) -> None:
        """Queue the manager's notification of the case `row` opened and, when `receipt`
        says the reporter may get one, the reporter's receipt."""
        view = case_mail_view(session, row, case, checklist, self.plan,
                              related_lines(session, case, related))
        # Both mails show the same facts: composed once (per language) for the two.
        contexts = self.composer.contexts(view)
        receipt_mail = self._receipt(session, case, view, contexts, now) if receipt else None
        notification = self.composer.notification(
            view, self._evidence_bytes(view),
            reply_to=secret_reply_address(session, self.composer, case_id=case.id,
                                          recipient=case.manager, kind="notification",
                                          now=now),
            contexts=contexts)
        if receipt_mail is not None:
            enqueue(session, receipt_mail, case_id=case.id, settings=self.notify)
        enqueue(session, notification, case_id=case.id, settings=self.notify)

    def _receipt(self, session: Session, case: Case, view: CaseMailView,
                 contexts: CaseContexts, now: datetime) -> OutgoingMail | None:
        """The reporter's receipt; None, recorded, when their address cannot be written in a
        mail header (a non-ASCII local part, RFC 6532, needs SMTPUTF8 all the way). The case
        opens and the manager is told all the same."""
        try:
            reply_to = secret_reply_address(session, self.composer, case_id=case.id,
                                            recipient=case.reporter, kind="receipt", now=now)
            base = self.status_base_url
            secret = new_secret() if base else None
            link = status_url(base, secret) if base and secret else None
            mail = self.composer.receipt(view, reply_to=reply_to, status_url=link,
                                         contexts=contexts)
            # Stored only once the receipt carrying it is written: no link nobody got.
            if secret is not None:
                issue_status_link(session, case, secret, now=now)
            return mail
        except ValueError as error:  # email's header defects are ValueErrors
            audit.record(session, "receipt-skipped", case=case, now=now,
                         details={"reason": type(error).__name__})
            log.warning("case %s: no receipt: the reporter's address cannot be written in a "
                        "mail header (%s)", case.number, type(error).__name__)
            return None

    def _evidence_bytes(self, view: CaseMailView) -> list[tuple[EvidenceLine, bytes]]:
        """The items' bytes, only when the config says evidence may leave by mail."""
        if not self.notify.include_evidence:
            return []
        attached = []
        for item in view.items:
            if item.role == "body":
                continue
            try:
                attached.append((item, self.evidence.read_bytes(item.sha256)))
            except BlobStoreError:
                log.warning("evidence blob missing, not attached sha256=%s", item.sha256)
        return attached
