"""The `chikanemail` command line: serve, ingest, messages, cases, outbox, imap, db, config.

Each subcommand lives in its own module and is imported only when it runs (or when `--help`
lists them): `chikanemail cases list` loads the configuration, the database and the case
query, not the daemon, the extraction pipeline or Pillow.
"""

from __future__ import annotations

from pathlib import Path

import click

from intake import __version__
from intake.cli_context import CliContext, LazyGroup
from intake.config import CONFIG_ENV_VAR

SUBCOMMANDS = {
    "serve": "intake.cli_serve:serve_command",
    "ingest": "intake.cli_serve:ingest_command",
    "reprocess": "intake.cli_serve:reprocess_command",
    "messages": "intake.cli_messages:messages_group",
    "outbox": "intake.cli_messages:outbox_group",
    "cases": "intake.cli_cases:cases_group",
    "patterns": "intake.cli_case_actions:patterns_command",
    "audit": "intake.cli_audit:audit_group",
    "verify": "intake.cli_verify:verify_command",
    "health": "intake.cli_verify:health_command",
    "quarantine": "intake.cli_quarantine:quarantine_group",
    "demo": "intake.demo:demo_command",
    "export": "intake.cli_export:export_command",
    "retention": "intake.cli_retention:retention_command",
    "imap": "intake.cli_admin:imap_group",
    "db": "intake.cli_admin:db_group",
    "config": "intake.cli_admin:config_group",
}


@click.group(cls=LazyGroup, lazy_subcommands=SUBCOMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
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
