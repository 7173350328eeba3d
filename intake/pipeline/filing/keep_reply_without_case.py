"""Filing step: an answer to one of our mails of no case (a weekly digest) is no report."""

from __future__ import annotations

import logging

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts
from storage.cases import replies_to_mail_without_case
from storage.models import MessageKind

log = logging.getLogger("chikanemail.intake.cases")


class KeepReplyWithoutCase(NeedsNoParts):
    """Keep a reply to a mail of no case, by its token or its thread, opening no case:
    a manager answering the weekly digest is not reporting harassment."""

    name = "keep_reply_without_case"
    in_transaction = True

    def file(self, filing: Filing) -> None:
        """Decide the message is no report if it answers a mail of no case."""
        if filing.decided:
            return
        token = filing.token
        if not ((token is not None and token.case_id is None)
                or replies_to_mail_without_case(filing.session, filing.thread_ids)):
            return
        filing.row.kind = MessageKind.NOT_A_REPORT
        filing.decided = True
        log.info("reply to a mail of no case (a digest) kept, no case opened sha256=%s",
                 filing.message.sha256)
