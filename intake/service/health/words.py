"""The health checks' statuses and names in words (msgids), for the CLI's text and the admin
page; the codes themselves stay in `--json` and beside the words."""

from __future__ import annotations

from collections.abc import Mapping

from storage.i18n.catalogs import N_

HEALTH_STATUSES: Mapping[str, str] = {
    "ok": N_("OK"), "warn": N_("Warning"), "fail": N_("Not OK"), "skipped": N_("Not checked"),
}

# The checks of HEALTH_CHECKS, by name.
HEALTH_CHECK_NAMES: Mapping[str, str] = {
    "data-dir": N_("Data directory"),
    "free-space": N_("Free disk space"),
    "database": N_("Database"),
    "listeners": N_("SMTP/LMTP listener"),
    "smtp-answers": N_("Mail refused for our own faults (451)"),
    "web": N_("Web view"),
    "imap": N_("IMAP mailboxes"),
    "imap-left": N_("Mail left on IMAP servers"),
    "backlog": N_("Mail waiting to be processed"),
    "verify": N_("Last verify"),
    "outbox": N_("Outgoing mail"),
    "quarantine": N_("Kept-out mail"),
    "backup": N_("Last backup"),
}
