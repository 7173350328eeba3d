"""The forwarded original of a report: who sent the harassing mail, when, with what subject,
and which rule found it.

One record for every layer: `intake.parse` finds it (in an attached message, an Outlook
container or an inline forward's header block), storage keeps it on the message row, and
the notifier shows it in the manager's notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from storage.local_time import read_in_workplace_zone

if TYPE_CHECKING:
    from storage.models import Message

_TEXT_FIELDS = ("from_name", "from_address", "date_raw", "subject", "to", "message_id")


def has_surrogates(text: str) -> bool:
    """Whether the text holds lone surrogates: raw 8-bit bytes the parser kept."""
    return any("\ud800" <= char <= "\udfff" for char in text)


def recover_8bit(text: str) -> str:
    """Text for a header whose raw bytes were kept as surrogates by the parser."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


@dataclass(frozen=True)
class ForwardedOriginal:
    """Who sent the harassing original, when, and with what subject; and how we know.

    `rule` names what found it: "attached-message" (a message/rfc822 part),
    "attached-outlook-msg" or "attached-tnef" (an Outlook container's header facts), or
    "<format>-<language>" (an inline forward's header block, see
    `intake.parse.forwarded.original`); empty when nothing was read. As found, `date` is as
    written (naive when the date line named no zone); as stored (`original_of`),
    `date_zone_assumed` says such a date was read in the workplace's zone (`stored_date`).
    """

    rule: str = ""
    from_name: str | None = None
    from_address: str | None = None
    date: datetime | None = None
    date_raw: str | None = None
    subject: str | None = None
    to: str | None = None
    message_id: str | None = None
    date_zone_assumed: bool = False

    def __post_init__(self) -> None:
        # Undecodable bytes reach header values as lone surrogates, which no database or
        # JSON encoder in UTF-8 accepts; every text field leaves here as valid Unicode.
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and has_surrogates(value):
                object.__setattr__(self, name, recover_8bit(value))

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the fields found; the date as ISO 8601 text."""
        return {
            "rule": self.rule,
            "from_name": self.from_name,
            "from_address": self.from_address,
            "date": self.date.isoformat() if self.date else None,
            "date_raw": self.date_raw,
            "subject": self.subject,
            "to": self.to,
            "message_id": self.message_id,
        }

    def stored_date(self, zone: tzinfo) -> tuple[datetime | None, bool]:
        """The date to store, and whether its zone was assumed.

        A date with a zone is stored as it is. One without a zone from an inline forward is
        the time the employee's program showed, so it is read in the workplace's `zone` and
        flagged; unless a daylight-saving change makes that hour ambiguous or impossible,
        when only the raw text is kept. A header's date without a zone (an attached
        original) was written in the sender's zone, which nothing tells: raw text only.
        """
        if self.date is None:
            return None, False
        if self.date.tzinfo is not None:
            return self.date, False
        if self.rule.startswith("attached-"):
            return None, False
        assumed = read_in_workplace_zone(self.date, zone)
        return assumed, assumed is not None


def store_original(message: Message, original: ForwardedOriginal | None,
                   zone: tzinfo) -> None:
    """Write the original (or that there is none) onto the message row; a date written
    without a zone is read in the workplace's `zone`."""
    message.original_rule = original.rule if original else None
    message.original_from_name = original.from_name if original else None
    message.original_from_address = original.from_address if original else None
    message.original_date, message.original_date_zone_assumed = (
        original.stored_date(zone) if original else (None, False))
    message.original_date_raw = original.date_raw if original else None
    message.original_subject = original.subject if original else None
    message.original_to = original.to if original else None
    message.original_message_id = original.message_id if original else None


def original_of(message: Message) -> ForwardedOriginal | None:
    """The original as the message row keeps it (date as stored), or None if none was found."""
    if not message.original_rule:
        return None
    return ForwardedOriginal(
        rule=message.original_rule, from_name=message.original_from_name,
        from_address=message.original_from_address, date=message.original_date,
        date_raw=message.original_date_raw, subject=message.original_subject,
        to=message.original_to, message_id=message.original_message_id,
        date_zone_assumed=bool(message.original_date_zone_assumed),
    )
