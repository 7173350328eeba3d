"""What every `chikanemail` subcommand shares: the configuration, the database, the actor.

Imported by every command, so it imports only click: the configuration loader and the
database come in when a command first asks for them.
"""

from __future__ import annotations

import getpass
import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from intake.service.config import AppConfig
    from storage.database import Database

CONFIG_ERROR_EXIT = 2


class CliContext:
    """Lazily loaded configuration shared by the subcommands."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: AppConfig | None = None

    @property
    def config(self) -> AppConfig:
        if self._config is None:
            from intake.service.config import load_config
            from storage.errors import SettingsError

            try:
                self._config = load_config(self.config_path)
            except SettingsError as error:
                click.echo(f"chikanemail: configuration error: {error}", err=True)
                sys.exit(CONFIG_ERROR_EXIT)
            for notice in self._config.deprecations:
                click.echo(f"chikanemail: warning: {notice}", err=True)
        return self._config


    @property
    def loaded_config(self) -> AppConfig | None:
        """The configuration if a command has read it already (never reads it)."""
        return self._config


pass_context = click.make_pass_decorator(CliContext)


def require_current_schema(database: Database, language: str) -> None:
    """Stop with a clear message in `language` when the database is not at this version's
    schema."""
    from storage.i18n.catalogs import translations
    from storage.migrate import current_revision, head_revision

    revision, head = current_revision(database), head_revision()
    if revision != head:
        _ = translations(language).gettext
        click.echo("chikanemail: " + _(
            "the database is at schema %(revision)s, this version needs %(head)s: run "
            "`chikanemail db upgrade` (or start the daemon)") % {
                "revision": revision or _("(empty)"), "head": head}, err=True)
        sys.exit(1)


def open_database(context: CliContext) -> Database:
    """The configured database, refused with a clear message when its schema is behind."""
    from storage.database import Database

    database = Database(context.config.storage.effective_database_url)
    require_current_schema(database, context.config.ui.language)
    return database


def cli_actor() -> str:
    """Who acts through the CLI: the OS user running it."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "cli:unknown"


class LazyGroup(click.Group):
    """A command group whose subcommands are imported when one is run (or `--help` lists
    them), not when the group is: `cases list` then loads neither the daemon nor Pillow.

    `lazy_subcommands` maps a command's name to "module:attribute" (click's "lazily loading
    subcommands" pattern).
    """

    def __init__(self, *args: Any, lazy_subcommands: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_subcommands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"{target} is not the click command {cmd_name!r}")
        return command
