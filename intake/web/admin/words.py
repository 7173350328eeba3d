"""The admin pages' codes in the reader's words (health's own are in
intake.service.health.words): why a mail was kept out, why an outgoing mail failed, and
times in the workplace's zone.

The codes stay in the database, the log and the CLI's `--json`; the pages show the words,
with the program's own (English) text beside them where an admin may need it for the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from storage.i18n.catalogs import N_, translations
from storage.time_text import long_datetime, short_datetime

# Why a message was kept out of the cases (`message.quarantine_reason`).
QUARANTINE_REASONS: Mapping[str, str] = {
    "foreign-sender": N_("the sender's domain is not allowed"),
    "processing-failed": N_("processing it failed again and again"),
}

# The states of an outgoing mail (`outbox_mail.state`).
OUTBOX_STATES: Mapping[str, str] = {
    "pending": N_("waiting"), "sending": N_("being sent"), "sent": N_("sent"),
    "failed": N_("failed"),
}

# Why an outgoing mail was not sent, recognised by the words notifier.transport and
# notifier.outbox write into `last_error`; the first that matches wins.
SEND_ERRORS: tuple[tuple[str, str], ...] = (
    ("retry deadline", N_("Given up: it could not be sent before its deadline")),
    ("refused every recipient", N_("The mail server refused the recipient's address")),
    ("refused some recipients", N_("The mail server refused some of the recipients")),
    ("answered MAIL FROM", N_("The mail server refused our sender address")),
    ("answered DATA", N_("The mail server refused the mail")),
    ("refused the connection", N_("The mail server refused the connection")),
    ("cannot connect to relay", N_("The mail server could not be reached")),
    ("connection to relay failed", N_("The connection to the mail server failed")),
    ("closed the connection", N_("The mail server closed the connection")),
    ("refused the session", N_("The mail server refused our login or connection settings")),
    ("password_file", N_("The password for the mail server could not be read")),
    ("Maildir", N_("The mail could not be written to the outgoing folder")),
    ("not ASCII", N_("An address has letters the mail server does not accept")),
    ("no recipients", N_("The mail has no recipients")),
)
OTHER_SEND_ERROR = N_("Another error (see the program's text)")


@dataclass(frozen=True)
class AdminWords:
    """The reader's language and the workplace's zone, for one page."""

    language: str
    zone: tzinfo
    now: datetime

    def gettext(self, message: str) -> str:
        """The text in the reader's language."""
        return translations(self.language).gettext(message)

    def word(self, words: Mapping[str, str], code: str | None) -> str:
        """A code read through a table of msgids; an unknown code as it is, none as "—"."""
        if not code:
            return "—"
        msgid = words.get(code)
        return self.gettext(msgid) if msgid is not None else code

    def send_error(self, error: str | None) -> str:
        """Why an outgoing mail was not sent, in words ("" when there is no error)."""
        if not error:
            return ""
        for clue, msgid in SEND_ERRORS:
            if clue in error:
                return self.gettext(msgid)
        return self.gettext(OTHER_SEND_ERROR)

    def short(self, moment: datetime | None) -> str:
        """A moment for a table cell: "06.12 19:24" ("—" for none)."""
        if moment is None:
            return "—"
        return short_datetime(moment, self.language, self.zone, now=self.now)

    def long(self, moment: datetime | None) -> str:
        """A moment in full: "tirsdag 8. december 2026 kl. 08.00 (CET)" ("—" for none)."""
        if moment is None:
            return "—"
        return long_datetime(moment, self.language, self.zone)

    def short_iso(self, text: str | None) -> str:
        """`short` of an ISO 8601 text (as `imap_status` gives them)."""
        return self.short(datetime.fromisoformat(text)) if text else "—"


def words_for(language: str, zone: tzinfo, now: datetime) -> AdminWords:
    """The words of a page for a reader of `language` in the workplace's `zone`."""
    return AdminWords(language=language, zone=zone, now=now)
