"""The `chikanemail` command line: the top-level group and `SUBCOMMANDS`, which names the
module of every command (serve, ingest, reprocess, messages, outbox, cases, patterns, audit,
verify, health, quarantine, demo, export, retention, imap, db, config, backup, restore, web,
stats).

Each subcommand lives in its own module and is imported only when it runs (or when `--help`
lists them): `chikanemail cases list` loads the configuration, the database and the case
query, not the daemon, the extraction pipeline or Pillow.
"""

from __future__ import annotations

from pathlib import Path

import click

from intake import __version__
from intake.commands.cli.context import CliContext, LazyGroup
from intake.service.config import CONFIG_ENV_VAR

SUBCOMMANDS = {
    "serve": "intake.commands.cli.serve:serve_command",
    "ingest": "intake.commands.cli.serve:ingest_command",
    "reprocess": "intake.commands.cli.serve:reprocess_command",
    "messages": "intake.commands.cli.messages:messages_group",
    "outbox": "intake.commands.cli.messages:outbox_group",
    "cases": "intake.commands.cli.cases:cases_group",
    "patterns": "intake.commands.cli.case_actions:patterns_command",
    "audit": "intake.commands.cli.audit:audit_group",
    "verify": "intake.commands.cli.verify:verify_command",
    "health": "intake.commands.cli.verify:health_command",
    "quarantine": "intake.commands.cli.quarantine:quarantine_group",
    "demo": "intake.commands.cli.demo:demo_command",
    "export": "intake.commands.cli.export:export_command",
    "retention": "intake.commands.cli.retention:retention_command",
    "imap": "intake.commands.cli.admin:imap_group",
    "db": "intake.commands.cli.admin:db_group",
    "config": "intake.commands.cli.admin:config_group",
    "backup": "intake.commands.cli.backup:backup_command",
    "restore": "intake.commands.cli.backup:restore_command",
    "web": "intake.commands.cli.web:web_group",
    "stats": "intake.commands.cli.stats:stats_command",
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
