"""An outgoing mail as the outbox keeps it: rendered once, sent as often as needed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutgoingMail:
    """One fully rendered mail (headers and body, Message-ID included) and its envelope."""

    kind: str  # "receipt", "notification", …
    mail_from: str  # envelope sender
    rcpt_tos: tuple[str, ...]
    message_id: str  # with angle brackets, as in the header
    subject: str
    raw: bytes  # the whole mail, CRLF line endings
