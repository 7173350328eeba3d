"""`chikanemail audit show NUMBER`: a case's custody trail from the hash-chained audit log."""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import new_table, print_table, reader_of, wide_option
from intake.commands.cli.reports.message import SENDER_CHECK_TEXT
from storage import audit
from storage.local_time import local_time_with_zone
from storage.models import AuditEvent
from storage.plural import ngettext

# How much of an event's details the table shows (the JSON output has all of them).
_DETAILS_WIDTH = 80
# Why a mail's commands were not carried out (`command-refused`), in words; the sender
# check codes a refusal can name are said as `SENDER_CHECK_TEXT` says them.
REFUSAL_TEXT = {
    "no-token": "it did not come to a secret reply address",
    "token-retired": "its reply address is no longer valid",
    "token-for-another-case": "its reply address belongs to another case",
    "token-for-another-person": "its reply address was issued to someone else",
    "not-authenticated": "its sender is not authenticated",
}


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
            raise click.ClickException(f"no audit events for case {number}")
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
    counted = ngettext("{n} audit event", "{n} audit events", len(events)).format(n=len(events))
    title = f"case {number}: {counted}, times in {context.config.ui.timezone}"
    if not wide:
        title += " (--wide: messages and hashes; --json: every field)"
    columns = [("seq", True), ("time", True), ("actor", False), ("action", False),
               ("details", False)]
    if wide:
        columns += [("message", True), ("hash", True)]
    table = new_table(title, columns, wide=wide)
    for event in events:
        cells = [str(event.seq), reader.short(event.occurred_at), event.actor, event.action,
                 event_summary(event.action, event.details)]
        if wide:
            cells += [(event.message_sha256 or "")[:12], event.hash[:12]]
        table.add_row(*cells)
    print_table(table, wide=wide)


def refusal_text(reason: str | None) -> str:
    """Why a mail's commands were refused, in words (the code itself when it is unknown)."""
    if reason is None:
        return "no reason recorded"
    if reason in REFUSAL_TEXT:
        return REFUSAL_TEXT[reason]
    if reason in SENDER_CHECK_TEXT:
        return f"sender not proven: {SENDER_CHECK_TEXT[reason]}"
    return reason


def event_summary(action: str, details: dict[str, Any]) -> str:
    """The details column: a plain sentence first for the events a reader must not miss (a
    refused command, an unverified sender), then the remaining details as `key=value`."""
    rest = dict(details)
    lead = ""
    if action == "command-refused":
        reason = rest.pop("reason", None)
        commands = rest.pop("commands", None) or []
        named = ", ".join(str(command) for command in commands) or "(none named)"
        lead = f"REFUSED {named}: {refusal_text(reason)} ({reason or '-'})"
    elif action == "sender-unverified":
        reason = rest.pop("reason", None)
        lead = "UNVERIFIED reporter sender: no receipt sent" + (
            f" ({reason})" if reason else "")
    elif action == "unverified-mail":
        reason = rest.pop("reason", None)
        role = rest.pop("claimed_role", None)
        claimed = "the reporter" if role == "reporter" else "someone outside the case"
        lead = (f"UNVERIFIED mail claiming to be from {claimed}, kept as evidence, changed "
                f"nothing: {refusal_text(reason)} ({reason or '-'})")
    elif action == "filed" and rest.get("unverified"):
        rest.pop("unverified")
        check = rest.pop("sender_check", None)
        lead = ("UNVERIFIED sender, kept as evidence, changed nothing"
                + (f" ({check})" if check else ""))
    shown = _short_details(rest) if rest else ""
    return f"{lead}  {shown}".strip() if lead else shown


def _short_details(details: dict[str, Any]) -> str:
    """The details as `key=value` pairs, long values and the whole line cut short."""
    pairs = []
    for key, value in sorted(details.items()):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        pairs.append(f"{key}={text if len(text) <= 24 else text[:23] + '…'}")
    line = " ".join(pairs)
    return line if len(line) <= _DETAILS_WIDTH else line[:_DETAILS_WIDTH - 1] + "…"
