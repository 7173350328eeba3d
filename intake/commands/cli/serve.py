"""`chikanemail serve`, `ingest` and `reprocess`: the daemon and what feeds its pipeline."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from intake.commands.cli.context import CONFIG_ERROR_EXIT, CliContext, pass_context
from intake.commands.cli.display import reader_of
from intake.pipeline.reprocess import reprocess_messages
from intake.receive.ingest import ingest_files
from intake.service.config import AppConfig
from intake.service.daemon import Services, open_services, reprocess_steps, serve
from intake.service.logs import configure_logging
from storage.errors import SettingsError
from storage.messages import find_message, list_messages


@click.command("serve")
@pass_context
def serve_command(context: CliContext) -> None:
    """Run the daemon: SMTP/LMTP listener and worker, until SIGTERM or SIGINT."""
    config = context.config
    configure_logging(config.logging.level, log_format=config.logging.format)
    try:
        sys.exit(asyncio.run(serve(config)))
    except SettingsError as error:
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
    except SettingsError as error:
        click.echo(f"chikanemail: configuration error: {error}", err=True)
        sys.exit(CONFIG_ERROR_EXIT)


@click.command("ingest")
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
    reader = reader_of(config)
    for error in summary.errors:
        # The error is the program's own (English) text, as the log has it.
        click.echo(reader.gettext("failed: %(error)s") % {"error": error}, err=True)
    click.echo(summary.line(reader.language))
    if summary.failed_files:
        sys.exit(1)


@click.command("reprocess")
@click.argument("references", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every message, not only those named.")
@pass_context
def reprocess_command(context: CliContext, references: tuple[str, ...], every: bool) -> None:
    """Run extraction again from the raw blobs (REFERENCES: ids or SHA-256s): the evidence
    rows and defects are rebuilt; sender checks, kinds and cases stay as decided."""
    if every == bool(references):
        raise click.UsageError(reader_of(context.config).gettext(
            "give message ids or SHA-256s, or --all (not both)"))
    config = context.config
    reader = reader_of(config)
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
                    raise click.ClickException(reader.gettext(
                        "no message %(reference)s") % {"reference": repr(reference)})
                messages.append(found)
        summary = reprocess_messages(messages, services.store, services.database,
                                     reprocess_steps(config))
    finally:
        services.close()
    for error in summary.errors:
        click.echo(reader.gettext("failed: %(error)s") % {"error": error}, err=True)
    click.echo(reader.ngettext("Reprocessed {n} message", "Reprocessed {n} messages",
                               summary.done).format(n=summary.done)
               + "; " + reader.gettext("%(count)s failed") % {"count": summary.failed})
    if summary.failed:
        sys.exit(1)
