"""Apply the Alembic migrations that ship with this package.

Alembic (about a third of a second to import) is loaded only to upgrade. Checking whether a
database is at this code's schema, which every command does, reads the `alembic_version`
row and compares it with SCHEMA_HEAD instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from storage.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
# The newest migration in migrations/versions/: raise it with each new migration
# (tests/commands/test_cases_list.py fails until it matches Alembic's own head).
SCHEMA_HEAD = "0015"


def alembic_config(database: Database) -> Config:
    """An Alembic configuration for this database, with no alembic.ini needed."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", database.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade_database(database: Database, revision: str = "head") -> None:
    """Bring the database schema up to the given revision (the newest by default)."""
    from alembic import command

    config = alembic_config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    """The schema revision the database is at, or None for an empty database (what Alembic's
    `MigrationContext.get_current_revision` answers, without loading Alembic)."""
    with database.engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        revisions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(revisions) > 1:
        raise RuntimeError(f"the database has {len(revisions)} schema heads, not one")
    return str(revisions[0][0]) if revisions else None


def head_revision() -> str:
    """The newest schema revision this code ships (tests check that Alembic agrees)."""
    return SCHEMA_HEAD
