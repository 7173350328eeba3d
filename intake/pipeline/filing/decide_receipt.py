"""Filing step: whether the reporter of a new case gets a receipt.

We send mail only to addresses we can vouch for: a reporter we cannot gets none, the case is
marked, and its manager is told instead.
"""

from __future__ import annotations

import logging
from typing import Self

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts
from intake.trust.reply_proof import ReceiptPolicy
from storage import audit

log = logging.getLogger("chikanemail.intake.cases")


class DecideReceipt:
    """Allow the new case's receipt, or mark the case's sender unverified and record why."""

    name = "decide_receipt"
    in_transaction = True

    def __init__(self, receipts: ReceiptPolicy) -> None:
        self.receipts = receipts

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: who may get a receipt."""
        return cls(parts.receipts)

    def file(self, filing: Filing) -> None:
        """Set whether the receipt goes out, if the message opened a case."""
        new = filing.new_case
        if new is None:
            return
        row, case = filing.row, new.case
        reason = self.receipts.why_not(row, filing.headers, filing.check)
        if reason is None:
            filing.receipt = filing.sender.address is not None
            return
        case.sender_unverified = True
        audit.record(filing.session, "sender-unverified", case=case, message_sha256=row.sha256,
                     now=new.opened_at, details={"reason": reason})
        log.info("case %s: no receipt: the sender cannot be vouched for (%s)",
                 case.number, reason)
