"""The CLI's codes as a person reads them: states and statuses (msgids, translated by
`Reader.word`). The codes themselves stay in the database and in `--json`.

Kinds of mail, relations, media and how a related case was found have their words in
`storage.audit_words` already; the CLI reads those tables too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from storage.i18n.catalogs import N_

if TYPE_CHECKING:
    from intake.commands.cli.display import Reader

# A case's status.
CASE_STATUSES: Mapping[str, str] = {"open": N_("open"), "closed": N_("closed")}

# Where a received mail is in its life (storage.models.MessageState).
MESSAGE_STATES: Mapping[str, str] = {
    "received": N_("waiting"), "processing": N_("being processed"),
    "processed": N_("processed"), "quarantined": N_("kept out"),
}

# Why a mail was kept out of cases (storage.models.QuarantineReason).
QUARANTINE_REASONS: Mapping[str, str] = {
    "foreign-sender": N_("sender not allowed"),
    "processing-failed": N_("processing failed"),
}

# An outgoing mail's state.
OUTBOX_STATES: Mapping[str, str] = {
    "pending": N_("waiting"), "sending": N_("sending"), "sent": N_("sent"),
    "failed": N_("failed"),
}

# Who owns a step of the plan.
STEP_OWNERS: Mapping[str, str] = {
    "manager": N_("the manager"), "reporter": N_("the employee"),
    "safety_rep": N_("the safety representative"), "hr": N_("HR"),
}

# What an evidence item is in its mail (the same words as the mails use).
EVIDENCE_ROLES: Mapping[str, str] = {
    "body": N_("text of the mail"), "attachment": N_("attached file"),
    "inline": N_("image in the text of the mail"), "nested-message": N_("forwarded mail"),
    "container-part": N_("file from an attached archive"),
}


def case_error(error: Exception, number: str, reader: Reader) -> click.ClickException:
    """The error of an action on case NUMBER for the person who asked: a case that does not
    exist in their words; any other reason as the program states it (English, as the log
    has it)."""
    # storage.cases words it "no case <number>"; matching the whole text keeps any other
    # message whole, and a changed wording only falls back to English.
    if str(error) == f"no case {number}":
        return click.ClickException(reader.gettext("no case %(number)s") % {"number": number})
    return click.ClickException(str(error))
