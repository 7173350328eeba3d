"""`chikanemail audit show NUMBER`: a case's custody trail from the hash-chained audit log."""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import (
    Reader,
    new_table,
    print_table,
    reader_of,
    wide_option,
)
from intake.commands.cli.reports.message import SENDER_CHECK_TEXT, sender_check_text
from storage import audit
from storage.audit_words import describe, label
from storage.code_words import REFUSAL_REASONS
from storage.local_time import local_time_with_zone
from storage.models import AuditEvent

# How much of an event's other details the table shows (the JSON output has all of them).
_DETAILS_WIDTH = 80
# Why a mail's commands were not carried out (`command-refused`), in words (msgids); the
# sender check codes a refusal can name are said as `SENDER_CHECK_TEXT` says them.
REFUSAL_TEXT = REFUSAL_REASONS  # storage's words, as the report says them


@click.group("audit")
def audit_group() -> None:
    """The audit log: who did what to which message or case, and when (hash-chained)."""


def event_json(event: AuditEvent, zone: tzinfo) -> dict[str, Any]:
    """One event as JSON: its columns, its time in the workplace's `zone`, and the canonical
    text it hashes."""
    return {
        "seq": event.seq,
        "time_utc": audit.format_utc(event.occurred_at),
        "time_local": local_time_with_zone(event.occurred_at, zone),
        "actor": event.actor,
        "action": event.action,
        "case": event.case_number,
        "message": event.message_sha256,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "canonical_json": audit.event_json(event),
    }


@audit_group.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@wide_option
@pass_context
def audit_show_command(context: CliContext, number: str, as_json: bool, wide: bool) -> None:
    """The audit events of case NUMBER and of its messages, oldest first. Looking is itself
    recorded (action `viewed`)."""
    database = open_database(context)
    try:
        events = audit.events_for_case(database, number)
        if not events:
            raise click.ClickException(reader_of(context.config).gettext(
                "No audit events for case %(number)s") % {"number": number})
        audit.record_committed(database, "viewed", actor=cli_actor(), case_number=number,
                               details={"what": "audit"})
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps([event_json(event, context.config.ui.zone) for event in events],
                              indent=2,
                              ensure_ascii=False))
        return
    reader = reader_of(context.config)
    _ = reader.gettext
    counted = reader.ngettext("{n} audit event", "{n} audit events",
                              len(events)).format(n=len(events))
    title = _("Case %(number)s: %(events)s, times in %(zone)s") % {
        "number": number, "events": counted, "zone": context.config.ui.timezone}
    if not wide:
        title += " " + _("(--wide: codes, messages and hashes; --json: every field)")
    columns = [("#", True), (_("Time"), True), (_("Actor"), False), (_("Action"), False),
               (_("Details"), False)]
    if wide:
        columns += [(_("Code"), True), (_("Message"), True), (_("Hash"), True)]
    table = new_table(title, columns, wide=wide)
    for event in events:
        cells = [str(event.seq), reader.short(event.occurred_at), event.actor,
                 label(event.action, reader.language),
                 event_summary(event.action, event.details, reader)]
        if wide:
            cells += [event.action, (event.message_sha256 or "")[:12], event.hash[:12]]
        table.add_row(*cells)
    print_table(table, wide=wide)


def refusal_text(reason: str | None, reader: Reader) -> str:
    """Why a mail's commands were refused, in words (the code itself when it is unknown)."""
    if reason is None:
        return reader.gettext("no reason recorded")
    if reason in REFUSAL_TEXT:
        return reader.gettext(REFUSAL_TEXT[reason])
    if reason in SENDER_CHECK_TEXT:
        return reader.gettext("sender not proven: %(check)s") % {
            "check": reader.gettext(SENDER_CHECK_TEXT[reason])}
    return reason


def _lead(action: str, rest: dict[str, Any], reader: Reader) -> str:
    """A plain sentence for the events a reader must not miss (a refused command, an
    unverified sender), taking the details it says out of `rest`."""
    _ = reader.gettext
    if action == "command-refused":
        reason = rest.pop("reason", None)
        commands = rest.pop("commands", None) or []
        named = ", ".join(str(command) for command in commands) or _("(none named)")
        return _("REFUSED %(commands)s: %(why)s (%(code)s)") % {
            "commands": named, "why": refusal_text(reason, reader), "code": reason or "-"}
    if action == "sender-unverified":
        reason = rest.pop("reason", None)
        return _("UNVERIFIED reporter sender: no receipt sent") + (
            f" ({reason})" if reason else "")
    if action == "unverified-mail":
        reason = rest.pop("reason", None)
        role = rest.pop("claimed_role", None)
        text = (_("UNVERIFIED mail claiming to be from the reporter, kept as evidence, "
                  "changed nothing: %(why)s (%(code)s)") if role == "reporter" else
                _("UNVERIFIED mail claiming to be from someone outside the case, kept as "
                  "evidence, changed nothing: %(why)s (%(code)s)"))
        return text % {"why": refusal_text(reason, reader), "code": reason or "-"}
    if action == "filed" and rest.get("unverified"):
        rest.pop("unverified")
        check = rest.pop("sender_check", None)
        return _("UNVERIFIED sender, kept as evidence, changed nothing") + (
            f" ({check})" if check else "")
    return ""


def event_summary(action: str, details: dict[str, Any], reader: Reader) -> str:
    """The details column: a plain sentence first for the events a reader must not miss,
    then the event's details in words, then any details without words as `key: value`."""
    rest = dict(details)
    lead = _lead(action, rest, reader)
    if isinstance(rest.get("sender_check"), str):
        # The sender check in words, its code after it (describe() shows what it is given).
        rest["sender_check"] = sender_check_text(rest["sender_check"], reader)
    words = describe(action, rest, reader.language)
    # "—" is describe()'s word for a detail that is not there (or that the lead has said).
    parts = [part for part in (lead, words.sentence) if part and not part.endswith("—")]
    if words.rest:
        parts.append(_short_details(words.rest))
    return "; ".join(parts)


def _short_details(rest: tuple[tuple[str, str], ...]) -> str:
    """Details without words as `key: value`, long values and the whole line cut short."""
    line = ", ".join(f"{key}: {value if len(value) <= 24 else value[:23] + '…'}"
                     for key, value in rest)
    return line if len(line) <= _DETAILS_WIDTH else line[:_DETAILS_WIDTH - 1] + "…"
