"""Filing step: a message filed already (before a crash) is left as it is."""

from __future__ import annotations

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts
from storage.models import Message


class SkipFiledMessage(NeedsNoParts):
    """End the filing of a message whose kind was decided before (or whose row is gone):
    its sender is never checked again."""

    name = "skip_filed_message"
    in_transaction = False

    def file(self, filing: Filing) -> None:
        """Finish the filing if the message's row says it was filed."""
        with filing.message.database.read() as session:
            row = session.get(Message, filing.message.message_pk)
            filing.finished = row is None or row.kind is not None
