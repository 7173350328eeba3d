"""What every `chikanemail` subcommand shares: the configuration, the database, the actor."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from intake.config import AppConfig, ConfigError, load_config
from storage.database import Database
from storage.migrate import current_revision, head_revision

CONFIG_ERROR_EXIT = 2


class CliContext:
    """Lazily loaded configuration shared by the subcommands."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: AppConfig | None = None

    @property
    def config(self) -> AppConfig:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as error:
                click.echo(f"chikanemail: configuration error: {error}", err=True)
                sys.exit(CONFIG_ERROR_EXIT)
        return self._config


pass_context = click.make_pass_decorator(CliContext)


def require_current_schema(database: Database) -> None:
    """Stop with a clear message when the database is not at this version's schema."""
    revision, head = current_revision(database), head_revision()
    if revision != head:
        click.echo(f"chikanemail: the database is at schema {revision or '(empty)'}, this "
                   f"version needs {head}: run `chikanemail db upgrade` (or start the daemon)",
                   err=True)
        sys.exit(1)




def open_database(context: CliContext) -> Database:
    """The configured database, refused with a clear message when its schema is behind."""
    database = Database(context.config.storage.effective_database_url)
    require_current_schema(database)
    return database


def cli_actor() -> str:
    """Who acts through the CLI: the OS user running it."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "cli:unknown"
