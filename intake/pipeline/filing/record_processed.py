"""Filing step: the last in the filing transaction, the message is recorded processed."""

from __future__ import annotations

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts
from storage.messages import ClaimLost, record_processed


class RecordProcessed(NeedsNoParts):
    """Record the message processed (its claim cleared, the `processed` audit event) in the
    filing's own transaction, so that filing it costs no further write transaction.

    Only while this worker still holds the claim: if another worker took the message over
    (our lease ran out), `ClaimLost` rolls the whole filing back and that worker files it.
    The row is locked since `LockMessage`, so the claim cannot change between this check
    and the commit. Outside a worker (no claimer) the caller records the end itself.
    """

    name = "record_processed"
    in_transaction = True

    def file(self, filing: Filing) -> None:
        """Mark the message processed if the claim is still ours; raise ClaimLost if not."""
        claimer = filing.message.claimer
        if claimer is None:
            return
        if not record_processed(filing.session, filing.row.id, claimer):
            raise ClaimLost(f"message {filing.row.id} is no longer claimed by {claimer}")
        filing.processed = True
