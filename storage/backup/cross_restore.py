"""A snapshot's SQLite database restored into PostgreSQL: the way from the embedded
database to a server, without an export of its own.

The snapshot's file is brought to this version's schema in a temporary copy (the snapshot
is never written), the target schema is made by the same migrations, and every table's rows
are copied over in one transaction, parents first, through the models' column types (so a
time is the same instant on both sides and the audit chain hashes to the same values). Each
id sequence is then moved past the highest id copied. A table in the snapshot that this
version does not know refuses the restore rather than leaving rows behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from sqlalchemy import Connection, Integer, Table, delete, insert, inspect, select, text

from storage.backup.manifest import BackupError
from storage.database import Database
from storage.migrate import VERSION_TABLE, upgrade_database
from storage.models import Base

_BATCH = 1000


def restore_sqlite_into_postgresql(snapshot_file: Path, target: Database) -> int:
    """Load the rows of a snapshot's SQLite database into the empty PostgreSQL schema of
    `target`; return how many rows were copied."""
    with tempfile.TemporaryDirectory(prefix="chikanemail-restore-") as work:
        copy = Path(work) / "snapshot.sqlite3"
        shutil.copyfile(snapshot_file, copy)
        source = Database(f"sqlite:///{copy}")
        try:
            upgrade_database(source)
            _refuse_unknown_tables(source)
            upgrade_database(target)
            with source.engine.connect() as reading, target.engine.begin() as writing:
                copied = _copy_rows(reading, writing)
                _move_sequences(writing)
        finally:
            source.dispose()
            target.dispose()
    return copied


def _refuse_unknown_tables(source: Database) -> None:
    known = set(Base.metadata.tables) | {VERSION_TABLE}
    unknown = sorted(set(inspect(source.engine).get_table_names()) - known)
    if unknown:
        raise BackupError(f"the snapshot's database has tables this version does not know "
                          f"({', '.join(unknown)}): restore it with the version that wrote it")


def _copy_rows(reading: Connection, writing: Connection) -> int:
    """Every table's rows, parents first; what the migrations seeded is replaced."""
    tables: list[Table] = list(Base.metadata.sorted_tables)
    for table in reversed(tables):
        writing.execute(delete(table))
    copied = 0
    for table in tables:
        result = reading.execute(select(table)).mappings()
        while batch := result.fetchmany(_BATCH):
            writing.execute(insert(table), [dict(row) for row in batch])
            copied += len(batch)
    return copied


def _move_sequences(writing: Connection) -> None:
    """Set each serial id's sequence past the highest id, so new rows do not collide."""
    for table in Base.metadata.sorted_tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, Integer):
                continue
            sequence = writing.execute(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                       {"table": table.name, "column": column.name}).scalar()
            if sequence is None:
                continue
            writing.execute(text(
                f'SELECT setval(:sequence, coalesce((SELECT max("{column.name}") FROM '
                f'"{table.name}"), 0) + 1, false)'), {"sequence": sequence})
