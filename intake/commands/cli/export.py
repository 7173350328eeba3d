"""`chikanemail export NUMBER --out DIR|FILE.zip`: a case's evidence bundle."""

from __future__ import annotations

from pathlib import Path

import click

from intake import __version__
from intake.commands.cli.context import CliContext, cli_actor, open_database, pass_context
from intake.commands.cli.display import reader_of
from storage.export import ExportError, ExportOptions, export_case


@click.command("export")
@click.argument("number")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="A new or empty folder, or a new FILE.zip holding the same tree.")
@pass_context
def export_command(context: CliContext, number: str, out: Path) -> None:
    """Write case NUMBER's evidence bundle: raw mails, extracted items, time-stamps, the
    custody trail, a report and SHA256SUMS, checkable with standard tools. The export is
    recorded in the audit log (action `exported`)."""
    config = context.config
    options = ExportOptions(
        blob_root=config.storage.blob_root,
        derived_root=config.storage.derived_root,
        language=config.ui.language,
        exporter=cli_actor(),
        tool_version=__version__,
        tsa_ca_file=Path(config.timestamp.ca_file) if config.timestamp.ca_file else None,
        zone=config.ui.zone,
    )
    database = open_database(context)
    try:
        result = export_case(database, number, out, options)
    except ExportError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    files = reader_of(config).ngettext("{n} file", "{n} files", result.files)
    click.echo(f"{result.path}  (" + files.format(n=result.files) + ")")
