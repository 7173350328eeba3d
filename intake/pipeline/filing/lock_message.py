"""Filing step: the first in the filing transaction, it locks the message's row."""

from __future__ import annotations

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts
from storage.models import Message


class LockMessage(NeedsNoParts):
    """Lock the message's row for the filing; end the filing if another run decided the
    message meanwhile (a re-run after a crash, or `reprocess`)."""

    name = "lock_message"
    in_transaction = True

    def file(self, filing: Filing) -> None:
        """Keep the locked row in the filing, or finish the filing."""
        row = filing.session.get(Message, filing.message.message_pk, with_for_update=True)
        if row is None or row.kind is not None:
            filing.finished = True
            return
        filing.row = row
