"""`chikanemail messages …` and `chikanemail outbox …`: what came in and what goes out."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from intake.commands.cli.context import (
    CliContext,
    cli_actor,
    open_database,
    pass_context,
    require_current_schema,
)
from intake.commands.cli.reports.case import outbox_json, outbox_table
from intake.commands.cli.reports.message import message_report, render_message_report
from storage import audit
from storage.blobstore import BlobStore
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
@pass_context
def messages_list_command(context: CliContext, as_json: bool, limit: int | None) -> None:
    """List received messages, newest first."""
    database = Database(context.config.storage.effective_database_url)
    try:
        require_current_schema(database)
        rows = list_messages(database, limit=limit)
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps([_message_json(row) for row in rows], indent=2,
                              ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} messages")
    for column in ("id", "received (local time)", "source", "state", "kind", "size", "seen",
                   "sha256", "subject"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id), row.received_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
            row.source, row.state + (f" ({row.quarantine_reason})" if row.quarantine_reason
                                     else ""),
            (row.kind or "") + (" (UNVERIFIED sender)" if row.unverified else ""),
            str(row.size), str(row.times_seen), row.sha256[:16] + "…",
            row.subject or "",
        )
    Console().print(table)


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
        require_current_schema(database)
        message = find_message(database, reference)
        if message is None:
            click.echo(f"chikanemail: no message {reference!r} (give its id or SHA-256)",
                       err=True)
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
    Console().print(render_message_report(report))


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing mail: receipts and notifications."""


@outbox_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--state", type=click.Choice(["pending", "sending", "sent", "failed"]),
              default=None)
@pass_context
def outbox_list_command(context: CliContext, as_json: bool, state: str | None) -> None:
    """List outgoing mails and their state (never their content)."""
    database = open_database(context)
    try:
        rows = [outbox_json(mail) for mail in list_outbox_rows(database, state=state)]
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    Console().print(outbox_table(rows))
