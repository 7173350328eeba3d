"""`chikanemail messages …` and `chikanemail outbox …`: what came in and what goes out."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from intake.commands.cli.context import (
    CliContext,
    cli_actor,
    open_database,
    pass_context,
    require_current_schema,
)
from intake.commands.cli.display import (
    console,
    new_table,
    print_table,
    reader_of,
    wide_option,
)
from intake.commands.cli.reports.case import outbox_json, outbox_table
from intake.commands.cli.reports.message import message_report, render_message_report
from intake.commands.cli.words import MESSAGE_STATES, QUARANTINE_REASONS
from storage import audit
from storage.audit_words import MESSAGE_KINDS, SOURCES
from storage.blobstore import BlobStore
from storage.cases import case_numbers
from storage.database import Database
from storage.evidence import evidence_for_message
from storage.messages import find_message, list_messages
from storage.models import Message
from storage.outbox_rows import list_outbox_rows


@click.group("messages")
def messages_group() -> None:
    """Received messages."""


def _message_json(row: Message) -> dict[str, Any]:
    return {
        "id": row.id,
        "sha256": row.sha256,
        "size": row.size,
        "message_id": row.message_id,
        "subject": row.subject,
        "received_at": row.received_at.isoformat(),
        "last_seen_at": row.last_seen_at.isoformat(),
        "source": row.source,
        "state": row.state,
        "kind": row.kind,
        "case_id": row.case_id,
        "automatic": row.automatic,
        "unverified": bool(row.unverified),
        "sender_check": row.sender_check,
        "quarantine_reason": row.quarantine_reason,
        "times_seen": row.times_seen,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "mail_from": row.mail_from,
        "rcpt_tos": row.rcpt_tos,
        "peer": row.peer,
        "helo": row.helo,
        "tls": row.tls,
    }


@messages_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Newest N only.")
@wide_option
@pass_context
def messages_list_command(context: CliContext, as_json: bool, limit: int | None,
                          wide: bool) -> None:
    """List received messages, newest first."""
    database = Database(context.config.storage.effective_database_url)
    try:
        require_current_schema(database, context.config.ui.language)
        rows = list_messages(database, limit=limit)
        numbers = case_numbers(database, [row.case_id for row in rows])
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps([_message_json(row) for row in rows], indent=2,
                              ensure_ascii=False))
        return
    reader = reader_of(context.config)
    _ = reader.gettext
    columns = [(_("Id"), True), (_("Received"), True), (_("Case"), True), (_("State"), False),
               (_("Kind"), False), (_("Subject"), False)]
    if wide:
        columns += [(_("Came in by"), True), (_("Size"), True), (_("Seen"), True),
                    ("SHA-256", True)]
    title = reader.ngettext("{n} message", "{n} messages", len(rows)).format(n=len(rows))
    table = new_table(title, columns, wide=wide)
    for row in rows:
        state = reader.word(MESSAGE_STATES, row.state) + (
            f" ({reader.word(QUARANTINE_REASONS, row.quarantine_reason)})"
            if row.quarantine_reason else "")
        kind = reader.word(MESSAGE_KINDS, row.kind) + (
            " (" + _("UNVERIFIED sender") + ")" if row.unverified else "")
        case = numbers.get(row.case_id, "-") if row.case_id is not None else "-"
        cells = [str(row.id), reader.short(row.received_at), case, state, kind,
                 row.subject or ""]
        if wide:
            cells += [reader.word(SOURCES, row.source), str(row.size), str(row.times_seen),
                      row.sha256[:16] + "…"]
        table.add_row(*cells)
    print_table(table, wide=wide)


@messages_group.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a tree.")
@pass_context
def messages_show_command(context: CliContext, reference: str, as_json: bool) -> None:
    """One message: whether its sender was verified, its forwarded original, defects and
    evidence tree (REFERENCE: id or SHA-256)."""
    config = context.config
    database = Database(config.storage.effective_database_url)
    try:
        require_current_schema(database, context.config.ui.language)
        message = find_message(database, reference)
        if message is None:
            click.echo("chikanemail: " + reader_of(config).gettext(
                "no message %(reference)s (give its id or SHA-256)") % {
                    "reference": repr(reference)}, err=True)
            sys.exit(1)
        evidence = evidence_for_message(database, message.id)
        audit.record_committed(database, "viewed", actor=cli_actor(),
                               message_sha256=message.sha256, details={"what": "message"})
    finally:
        database.dispose()
    report = message_report(message, evidence, BlobStore(config.storage.derived_root))
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    console().print(render_message_report(report, reader_of(config)))


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing mail: receipts and notifications."""


@outbox_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--state", type=click.Choice(["pending", "sending", "sent", "failed"]),
              default=None)
@wide_option
@pass_context
def outbox_list_command(context: CliContext, as_json: bool, state: str | None,
                        wide: bool) -> None:
    """List outgoing mails and their state (never their content)."""
    database = open_database(context)
    try:
        mails = list_outbox_rows(database, state=state)
        numbers = case_numbers(database, [mail.case_id for mail in mails])
    finally:
        database.dispose()
    rows = [outbox_json(mail, numbers.get(mail.case_id) if mail.case_id else None)
            for mail in mails]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    print_table(outbox_table(rows, reader_of(context.config), wide=wide), wide=wide)


@outbox_group.command("retry")
@click.argument("mail_ids", metavar="[ID]...", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every failed mail, not only those named.")
@pass_context
def outbox_retry_command(context: CliContext, mail_ids: tuple[int, ...], every: bool) -> None:
    """Queue failed mails (ID from `outbox list --wide`) again: due at once, tries counted
    afresh. The running daemon sends them; the retry is an audit event by you."""
    from datetime import timedelta

    from storage.i18n.catalogs import translations
    from storage.outbox_retry import OutboxRetryRefused, retry_failed_outbox

    if every == bool(mail_ids):
        raise click.UsageError("give mail ids or --all (not both)")
    config = context.config
    database = open_database(context)
    try:
        retried = retry_failed_outbox(
            database, None if every else list(mail_ids), actor=cli_actor(),
            retry_for=timedelta(hours=config.notify.retry_deadline_hours))
    except OutboxRetryRefused as error:
        raise click.ClickException(str(error)) from error
    finally:
        database.dispose()
    queued = translations(config.ui.language).ngettext(
        "queued {n} failed mail again", "queued {n} failed mails again", len(retried))
    click.echo(queued.format(n=len(retried))
               + (f": {', '.join(map(str, retried))}" if retried else ""))
