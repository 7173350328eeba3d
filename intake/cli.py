"""The `chikanemail` command line: serve, ingest, messages, cases, outbox, imap, db, config."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from intake import __version__
from intake.case_report import (
    outbox_json,
    outbox_table,
)
from intake.cli_audit import audit_group
from intake.cli_cases import cases_group, patterns_command
from intake.cli_context import (
    CONFIG_ERROR_EXIT,
    CliContext,
    cli_actor,
    open_database,
    pass_context,
    require_current_schema,
)
from intake.cli_export import export_command
from intake.cli_quarantine import quarantine_group
from intake.cli_retention import hold_command, retention_command, unhold_command
from intake.cli_verify import health_command, verify_command
from intake.config import CONFIG_ENV_VAR, AppConfig, ConfigError
from intake.daemon import Services, open_services, pipeline_for, serve
from intake.demo import demo_command
from intake.imap_check import check_mailbox
from intake.imap_report import imap_status, imap_status_table
from intake.ingest import ingest_files
from intake.logging_setup import configure_logging
from intake.message_report import message_report, render_message_report
from intake.reprocess import reprocess_messages
from notifier.outbox import list_outbox
from storage import audit
from storage.blobstore import BlobStore
from storage.database import Database
from storage.evidence import evidence_for_message
from storage.messages import find_message, list_messages
from storage.migrate import current_revision, upgrade_database
from storage.models import Message


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    envvar=CONFIG_ENV_VAR, show_envvar=True,
    help="TOML configuration file; without one the built-in defaults run.",
)
@click.version_option(__version__, prog_name="chikanemail")
@click.pass_context
def main(click_context: click.Context, config_path: Path | None) -> None:
    """Chikanemail: evidence intake for digital harassment at work."""
    click_context.obj = CliContext(config_path)


main.add_command(cases_group)
main.add_command(patterns_command)
main.add_command(audit_group)
main.add_command(verify_command)
main.add_command(health_command)
main.add_command(quarantine_group)
main.add_command(demo_command)
main.add_command(export_command)
main.add_command(retention_command)
cases_group.add_command(hold_command)
cases_group.add_command(unhold_command)


@main.command("serve")
@pass_context
def serve_command(context: CliContext) -> None:
    """Run the daemon: SMTP/LMTP listener and worker, until SIGTERM or SIGINT."""
    config = context.config
    configure_logging(config.logging.level, log_format=config.logging.format)
    try:
        sys.exit(asyncio.run(serve(config)))
    except ConfigError as error:
        click.echo(f"chikanemail: configuration error: {error}", err=True)
        sys.exit(CONFIG_ERROR_EXIT)
    except OperationalError as error:
        url = make_url(config.storage.effective_database_url)
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        click.echo(f"chikanemail: cannot use the database "
                   f"{url.render_as_string(hide_password=True)}: {reason}", err=True)
        sys.exit(1)
    except OSError as error:
        click.echo(f"chikanemail: cannot start: {error}", err=True)
        sys.exit(1)


def _open_services(config: AppConfig) -> Services:
    """The store, database and accept path; a refused data directory stops the command."""
    try:
        return open_services(config)
    except ConfigError as error:
        click.echo(f"chikanemail: configuration error: {error}", err=True)
        sys.exit(CONFIG_ERROR_EXIT)


@main.command("ingest")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--mbox", "force_mbox", is_flag=True,
              help="Read every file as an mbox (files ending .mbox/.mbx always are).")
@pass_context
def ingest_command(context: CliContext, files: tuple[Path, ...], force_mbox: bool) -> None:
    """Store .eml and mbox files as received messages, exactly as SMTP would."""
    config = context.config
    configure_logging("WARNING", sys.stderr)  # stdout carries the summary
    services = _open_services(config)
    console = Console(stderr=True)
    try:
        with Progress(
            TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, disable=len(files) < 2 or not console.is_terminal,
        ) as progress:
            task = progress.add_task("ingest", total=len(files))
            summary = ingest_files(
                services.intake, list(files), force_mbox=force_mbox,
                on_file_done=lambda _path: progress.advance(task),
            )
    finally:
        services.close()
    for error in summary.errors:
        click.echo(f"failed: {error}", err=True)
    click.echo(summary.line())
    if summary.failed_files:
        sys.exit(1)


@main.group("messages")
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
            row.kind or "", str(row.size), str(row.times_seen), row.sha256[:16] + "…",
            row.subject or "",
        )
    Console().print(table)


@messages_group.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a tree.")
@pass_context
def messages_show_command(context: CliContext, reference: str, as_json: bool) -> None:
    """One message: its forwarded original, defects and evidence tree (REFERENCE: id or SHA-256)."""
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


@main.command("reprocess")
@click.argument("references", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every message, not only those named.")
@pass_context
def reprocess_command(context: CliContext, references: tuple[str, ...], every: bool) -> None:
    """Run extraction again from the raw blobs (REFERENCES: ids or SHA-256s)."""
    if every == bool(references):
        raise click.UsageError("give message ids or SHA-256s, or --all (not both)")
    config = context.config
    configure_logging("WARNING", sys.stderr)
    services = _open_services(config)
    try:
        if every:
            messages = list(reversed(list_messages(services.database)))
        else:
            messages = []
            for reference in references:
                found = find_message(services.database, reference)
                if found is None:
                    raise click.ClickException(f"no message {reference!r}")
                messages.append(found)
        summary = reprocess_messages(messages, services.store, services.database,
                                     pipeline_for(config))
    finally:
        services.close()
    for error in summary.errors:
        click.echo(f"failed: {error}", err=True)
    click.echo(f"reprocessed {summary.done} messages; {summary.failed} failed")
    if summary.failed:
        sys.exit(1)


@main.group("outbox")
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
        rows = [outbox_json(mail) for mail in list_outbox(database, state=state)]
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    Console().print(outbox_table(rows))


@main.group("imap")
def imap_group() -> None:
    """Mailboxes mail is taken from: the [[imap]] tables of the config."""


@imap_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def imap_status_command(context: CliContext, as_json: bool) -> None:
    """Each mailbox: connected, UIDVALIDITY, last UID, last success and last error."""
    mailboxes = context.config.imap
    database = open_database(context)
    try:
        entries = imap_status(database, mailboxes)
    finally:
        database.dispose()
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
    elif not entries:
        click.echo("no [[imap]] mailboxes in the configuration")
    else:
        Console().print(imap_status_table(entries))


@imap_group.command("test")
@click.argument("name")
@pass_context
def imap_test_command(context: CliContext, name: str) -> None:
    """Connect to mailbox NAME, sign in and list its folders; exit 0 only if that worked."""
    mailboxes = context.config.imap
    mailbox = next((mailbox for mailbox in mailboxes if mailbox.name == name), None)
    if mailbox is None:
        known = ", ".join(mailbox.name for mailbox in mailboxes) or "none configured"
        raise click.BadParameter(f"no [[imap]] mailbox named {name!r} (known: {known})",
                                 param_hint="NAME")
    result = check_mailbox(mailbox)
    for line in result.lines():
        click.echo(line, err=not result.ok)
    if not result.ok:
        sys.exit(1)


@main.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
@pass_context
def db_upgrade_command(context: CliContext) -> None:
    """Apply every pending migration (the daemon also does this at start)."""
    database = Database(context.config.storage.effective_database_url)
    try:
        upgrade_database(database)
        revision = current_revision(database)
    finally:
        database.dispose()
    click.echo(f"database at revision {revision}")


@main.group("config")
def config_group() -> None:
    """The configuration file."""


@config_group.command("check")
@pass_context
def config_check_command(context: CliContext) -> None:
    """Validate the configuration and show the settings that will be used."""
    config = context.config
    click.echo(f"configuration OK: {config.source}")
    click.echo(f"  data_dir  {config.storage.data_path}")
    database_url = make_url(config.storage.effective_database_url)
    click.echo(f"  database  {database_url.render_as_string(hide_password=True)}")
    if config.smtp.enabled:
        kind = "LMTP" if config.smtp.lmtp else "SMTP"
        click.echo(f"  {kind:<9} {config.smtp.host}:{config.smtp.port}")
    click.echo(f"  addresses {', '.join(config.intake.addresses)}")
    for mailbox in config.imap:
        click.echo(f"  IMAP      {mailbox.name}: {mailbox.username} at {mailbox.host}:"
                   f"{mailbox.port} ({mailbox.security}, {mailbox.auth}), {mailbox.folder!r} "
                   f"-> {mailbox.processed_folder!r}, {mailbox.mode}")
    plan = config.plan
    steps = ", ".join(f"{number}. {step.key} ({step.due or 'no deadline'}"
                      f"{' working days' if step.working_days and step.due else ''}"
                      f"{' after absence' if step.due_after != 'intake' else ''})"
                      for number, step in enumerate(plan.steps, start=1))
    click.echo(f"  plan      {steps}")
    click.echo(f"  escalate  after {plan.acknowledge_within}"
               f"{' working days' if plan.acknowledge_in_working_days else ''} without "
               f"acknowledgement; digest {plan.digest_weekday if plan.digest else 'off'}")
