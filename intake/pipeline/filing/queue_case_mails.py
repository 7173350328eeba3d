"""Filing step: a new case's receipt and notification are queued with it."""

from __future__ import annotations

import logging
from typing import Self

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts
from notifier.new_case_mails import NewCaseMails

log = logging.getLogger("chikanemail.intake.cases")


class QueueCaseMails:
    """Queue the manager's notification of a new case and, if allowed, the receipt."""

    name = "queue_case_mails"
    in_transaction = True

    def __init__(self, mails: NewCaseMails) -> None:
        self.mails = mails

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: how a new case's mails are written."""
        return cls(parts.new_case_mails)

    def file(self, filing: Filing) -> None:
        """Queue the mails, if the message opened a case."""
        new = filing.new_case
        if new is None:
            return
        row, case = filing.row, new.case
        self.mails.queue(filing.session, row, case, new.checklist, filing.matches,
                         receipt=filing.receipt, now=new.opened_at)
        filing.queued = True
        log.info("case %s opened sha256=%s routing=%s", case.number, row.sha256,
                 case.routing_source)
