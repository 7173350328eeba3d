"""`chikanemail imap …`, `db …` and `config …`: what an admin checks while setting up."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table
from sqlalchemy.engine import make_url

from intake.commands.cli.context import CliContext, open_database, pass_context
from intake.commands.cli.display import Reader, new_table, print_table, reader_of, wide_option
from intake.receive.imap.check import check_mailbox
from intake.receive.imap.status import imap_status
from storage.database import Database
from storage.migrate import current_revision, upgrade_database


@click.group("imap")
def imap_group() -> None:
    """Mailboxes mail is taken from: the [[imap]] tables of the config."""


@imap_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@wide_option
@pass_context
def imap_status_command(context: CliContext, as_json: bool, wide: bool) -> None:
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
        click.echo(reader_of(context.config).gettext(
            "No [[imap]] mailboxes in the configuration"))
    else:
        print_table(imap_status_table(entries, reader_of(context.config), wide=wide), wide=wide)


def imap_status_table(entries: Sequence[dict[str, Any]], reader: Reader, *,
                      wide: bool = False) -> Table:
    """The status entries as a table for people, times in the reader's zone; `wide` adds
    UIDVALIDITY, the last UID and the mails left on the server for their size."""
    _ = reader.gettext
    columns = [(_("Name"), False), (_("Folder"), False), (_("Connected"), True),
               (_("Last success"), True), (_("Last error"), False)]
    if wide:
        columns += [("UIDVALIDITY", True), (_("Last UID"), True), (_("Too large"), True)]
    count = len(entries)
    table = new_table(reader.ngettext("{n} IMAP mailbox", "{n} IMAP mailboxes",
                                      count).format(n=count), columns, wide=wide)
    for entry in entries:
        # The error is the server's or the program's own text, as the log has it.
        error = entry["last_error"] or ""
        if error and entry["last_error_at"]:
            error = f"{reader.short_iso(entry['last_error_at'])}: {error}"
        cells = [entry["name"], entry["folder"], _("yes") if entry["connected"] else _("no"),
                 reader.short_iso(entry["last_success_at"]) if entry["last_success_at"]
                 else _("never"), error]
        if wide:
            cells += [str(entry["uidvalidity"] or "-"),
                      "-" if entry["last_uid"] is None else str(entry["last_uid"]),
                      str(entry["oversized_left_on_server"])]
        table.add_row(*cells)
    return table


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


@click.group("db")
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
    click.echo(reader_of(context.config).gettext("Database at revision %(revision)s") % {
        "revision": revision})


@click.group("config")
def config_group() -> None:
    """The configuration file."""


@config_group.command("check")
@pass_context
def config_check_command(context: CliContext) -> None:
    """Validate the configuration and show the settings that will be used."""
    # Stays English, as configuration errors do: it names the file's keys and values as the
    # file writes them.
    config = context.config
    click.echo(f"configuration OK: {config.source}")
    click.echo(f"  data_dir  {config.storage.data_path}")
    database_url = make_url(config.storage.effective_database_url)
    click.echo(f"  database  {database_url.render_as_string(hide_password=True)}")
    if config.smtp.enabled:
        kind = "LMTP" if config.smtp.lmtp else "SMTP"
        click.echo(f"  {kind:<9} {config.smtp.host}:{config.smtp.port}")
    click.echo(f"  addresses {', '.join(config.intake.addresses)}")
    click.echo(f"  timezone  {config.ui.timezone}")
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
