"""Filing step: the last in the filing transaction, the `filed` audit event."""

from __future__ import annotations

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import NeedsNoParts
from storage import audit


class RecordFiled(NeedsNoParts):
    """Record how the message was filed: its kind, case and sender check."""

    name = "record_filed"
    in_transaction = True

    def file(self, filing: Filing) -> None:
        """Add the `filed` event to the audit chain."""
        session, row = filing.session, filing.row
        audit.record(session, "filed", message_sha256=row.sha256,
                     case_number=audit.case_number_of(session, row.case_id),
                     details={"kind": row.kind, "automatic": row.automatic,
                              "sender_check": filing.check.code,
                              "unverified": row.unverified})
