"""Filing step: record who the message is from, and what the sender check said."""

from __future__ import annotations

from email.utils import getaddresses

from intake.parse.headers import header_str
from intake.pipeline.filing.step import Filing, Sender
from intake.pipeline.parts import NeedsNoParts


def sender_of(from_header: str | None, envelope_from: str | None) -> Sender:
    """The first address of the From header, else the envelope sender, else nobody."""
    if from_header:
        for name, address in getaddresses([from_header]):
            if "@" in address:
                return Sender(address.strip().lower(), name.strip() or None)
    if envelope_from and "@" in envelope_from:
        return Sender(envelope_from.strip().strip("<>").lower(), None)
    return Sender(None, None)


class RecordSender(NeedsNoParts):
    """Record the message's sender and the sender check on its row."""

    name = "record_sender"
    in_transaction = True

    def file(self, filing: Filing) -> None:
        """Keep the sender in the filing and write it, with the check, on the row."""
        row, check = filing.row, filing.check
        filing.sender = sender_of(header_str(filing.headers, "From"), row.mail_from)
        row.from_address = filing.sender.address
        row.sender_check = check.code
        row.sender_authenticated = check.authenticated
