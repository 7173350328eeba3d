"""Filing step: a mail sent by a machine (out-of-office, bounce) is kept and opens nothing."""

from __future__ import annotations

import logging

from intake.parse.automatic import automatic_reason
from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts
from storage.models import MessageKind

log = logging.getLogger("chikanemail.intake.cases")


class DetectAutomaticMail(NeedsNoParts):
    """File a machine's mail as automatic on the case it threads into, or on no case."""

    name = "detect_automatic_mail"
    in_transaction = True

    def file(self, filing: Filing) -> None:
        """Decide the message's kind if a machine sent it."""
        row, case = filing.row, filing.case
        reason = automatic_reason(filing.headers, row.mail_from)
        if reason is None:
            return
        row.automatic = True
        row.kind = MessageKind.AUTOMATIC if case else MessageKind.NOT_A_REPORT
        row.case_id = case.id if case else None
        filing.decided = True
        log.info("automatic mail (%s) sha256=%s case=%s", reason, filing.message.sha256,
                 case.number if case else "none")
