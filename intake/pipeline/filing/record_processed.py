"""Filing step: the last in the filing transaction, the message is recorded processed."""

from __future__ import annotations

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts
from storage.evidence import awaiting_ocr
from storage.messages import ClaimLost, record_processed
from storage.models import MessageState


class RecordProcessed(NeedsNoParts):
    """Record the message processed (its claim cleared, the `processed` audit event) in the
    filing's own transaction, so that filing it costs no further write transaction.

    Only while this worker still holds the claim: if another worker took the message over
    (our lease ran out), `ClaimLost` rolls the whole filing back and that worker files it.
    The row is locked since `LockMessage`, so the claim cannot change between this check
    and the commit. Outside a worker (no claimer) the caller records the end itself, and so
    does the worker when screenshots wait to be read after the commit (ReadScreenshots).
    """

    name = "record_processed"
    in_transaction = True

    def file(self, filing: Filing) -> None:
        """Mark the message processed if the claim is still ours and no screenshot waits to
    be read; raise ClaimLost if the claim is not ours."""
        claimer = filing.message.claimer
        if claimer is None:
            return
        row = filing.row
        if awaiting_ocr(filing.session, row.id):
            if row.claimed_by != claimer or row.state != MessageState.PROCESSING:
                raise ClaimLost(f"message {row.id} is no longer claimed by {claimer}")
            return
        if not record_processed(filing.session, row.id, claimer):
            raise ClaimLost(f"message {filing.row.id} is no longer claimed by {claimer}")
        filing.processed = True
