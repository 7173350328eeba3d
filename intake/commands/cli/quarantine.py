"""`chikanemail quarantine`: list, show and retry messages kept out of cases."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import new_table, print_table, reader_of, wide_option
from intake.commands.cli.words import MESSAGE_STATES, QUARANTINE_REASONS
from storage import audit
from storage.audit_words import SOURCES, label
from storage.models import AuditEvent, Message
from storage.quarantine import (
    QuarantinedMessage,
    RetryRefused,
    list_quarantined,
    quarantine_detail,
    retry_quarantined,
)


@click.group("quarantine")
def quarantine_group() -> None:
    """Messages kept out of cases: a foreign sender, or processing kept failing."""


def _entry_json(entry: QuarantinedMessage) -> dict[str, Any]:
    return {"id": entry.message_pk, "received_at": entry.received_at.isoformat(),
            "reason": entry.reason, "attempts": entry.attempts, "error": entry.error_line,
            "sha256": entry.sha256}


@quarantine_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@wide_option
@pass_context
def quarantine_list_command(context: CliContext, as_json: bool, wide: bool) -> None:
    """List quarantined messages, oldest first: reason, attempts and the error's first line."""
    database = open_database(context)
    try:
        entries = list_quarantined(database)
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps([_entry_json(entry) for entry in entries], indent=2,
                              ensure_ascii=False))
        return
    reader = reader_of(context.config)
    _ = reader.gettext
    title = reader.ngettext("{n} quarantined message", "{n} quarantined messages",
                            len(entries)).format(n=len(entries))
    columns = [(_("Id"), True), (_("Received"), True), (_("Reason"), False),
               (_("Tries"), True), (_("Error"), False)]
    if wide:
        columns += [("SHA-256", True)]
    table = new_table(title, columns, wide=wide)
    for entry in entries:
        # The error's text is the program's own (English), as the log has it.
        cells = [str(entry.message_pk), reader.short(entry.received_at),
                 reader.word(QUARANTINE_REASONS, entry.reason), str(entry.attempts),
                 entry.error_line]
        if wide:
            cells.append(entry.sha256[:16] + "…")
        table.add_row(*cells)
    print_table(table, wide=wide)


def _event_json(event: AuditEvent) -> dict[str, Any]:
    return {"seq": event.seq, "time": event.occurred_at.isoformat(), "actor": event.actor,
            "action": event.action, "case": event.case_number, "details": event.details}


def _message_json(row: Message) -> dict[str, Any]:
    return {"id": row.id, "sha256": row.sha256, "size": row.size, "source": row.source,
            "received_at": row.received_at.isoformat(), "state": row.state,
            "quarantine_reason": row.quarantine_reason, "attempts": row.attempts,
            "mail_from": row.mail_from, "rcpt_tos": row.rcpt_tos, "subject": row.subject,
            "message_id": row.message_id, "case_id": row.case_id, "last_error": row.last_error}


@quarantine_group.command("show")
@click.argument("message_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_context
def quarantine_show_command(context: CliContext, message_id: int, as_json: bool) -> None:
    """One message (ID from `quarantine list`): its row, the whole error and its audit events."""
    database = open_database(context)
    try:
        detail = quarantine_detail(database, message_id)
        if detail is not None:
            audit.record_committed(database, "viewed", actor=cli_actor(),
                                   message_sha256=detail.message.sha256,
                                   details={"what": "quarantine"})
    finally:
        database.dispose()
    reader = reader_of(context.config)
    _ = reader.gettext
    if detail is None:
        click.echo("chikanemail: " + _("no message %(id)s") % {"id": message_id}, err=True)
        sys.exit(1)
    message = _message_json(detail.message)
    if as_json:
        click.echo(json.dumps({"message": message,
                               "events": [_event_json(event) for event in detail.events]},
                              indent=2, ensure_ascii=False))
        return
    row = detail.message
    fields = [
        (_("Id"), str(row.id)), ("SHA-256", row.sha256), (_("Size"), f"{row.size} B"),
        (_("Came in by"), reader.word(SOURCES, row.source)),
        (_("Received"), reader.long(row.received_at)),
        (_("State"), reader.word(MESSAGE_STATES, row.state)),
        (_("Reason"), reader.word(QUARANTINE_REASONS, row.quarantine_reason)),
        (_("Tries"), str(row.attempts)), (_("Envelope sender"), row.mail_from or "-"),
        (_("Recipients"), ", ".join(row.rcpt_tos or []) or "-"),
        (_("Subject"), row.subject or "-"), ("Message-ID", row.message_id or "-"),
    ]
    width = max(len(name) for name, _value in fields) + 1
    for name, value in fields:
        click.echo(f"{name + ':':<{width}} {value}")
    # The error is the program's own text (English), as the log has it.
    click.echo(_("Error:"))
    click.echo("  " + (row.last_error or _("(none)")).replace("\n", "\n  "))
    click.echo(_("Audit events:"))
    for event in detail.events:
        click.echo(f"  {event.seq:>6} {reader.short(event.occurred_at)} "
                   f"{label(event.action, reader.language)}, {event.actor}")


@quarantine_group.command("retry")
@click.argument("message_ids", metavar="[ID]...", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True,
              help="Every message whose processing failed, not only those named.")
@click.option("--include-foreign", is_flag=True,
              help="Also let in messages quarantined because their sender's domain is not "
                   "allowed ([intake] allowed_sender_domains); they then open cases like any "
                   "other report. Without it they stay in quarantine.")
@pass_context
def quarantine_retry_command(context: CliContext, message_ids: tuple[int, ...], every: bool,
                             include_foreign: bool) -> None:
    """Hand quarantined messages back to the worker: received again, attempts reset.

    The running daemon's worker picks them up; the retry is an audit event by you.
    """
    if every == bool(message_ids):
        raise click.UsageError(reader_of(context.config).gettext(
            "give message ids or --all (not both)"))
    database = open_database(context)
    try:
        retried = retry_quarantined(database, None if every else list(message_ids),
                                    actor=cli_actor(), include_foreign=include_foreign)
    except RetryRefused as error:
        raise click.ClickException(str(error)) from error
    finally:
        database.dispose()
    handed = reader_of(context.config).ngettext("handed {n} message back to the worker",
                                                "handed {n} messages back to the worker",
                                                len(retried))
    click.echo(handed.format(n=len(retried))
               + (f": {', '.join(map(str, retried))}" if retried else ""))
