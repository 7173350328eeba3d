"""The database part of a snapshot: a consistent copy, and what that copy's own rows say
(the audit head and every blob they name), read in the same snapshot as the copy.

SQLite: the online backup API copies the database in one step while the daemon writes (WAL
readers never block writers). PostgreSQL: a REPEATABLE READ transaction exports its snapshot;
the rows are read in it and `pg_dump --snapshot` dumps exactly that snapshot.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, create_engine, select, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from storage.audit import GENESIS_HASH
from storage.backup.manifest import BackupError
from storage.blob_columns import BLOB_COLUMNS, EVIDENCE_STORE
from storage.blobstore import fsync_directory
from storage.database import SQLITE_BUSY_TIMEOUT_MS, Database
from storage.models import AuditHead, Message

SQLITE_SUFFIX = ".sqlite3"
POSTGRESQL_SUFFIX = ".pgdump"


# A blob the snapshot's rows name: (store, SHA-256, kind: raw, part or derived).
NamedBlob = tuple[str, str, str]


@dataclass(frozen=True)
class DatabaseCopy:
    """The copied database file and what its rows say."""

    kind: str  # "sqlite" or "postgresql"
    audit_seq: int
    audit_hash: str
    blobs: tuple[NamedBlob, ...]
    # PostgreSQL: the schema the rows came from (a restore may load them into another).
    schema: str | None = None


def _kind(store: str, column: object) -> str:
    if store != EVIDENCE_STORE:
        return "derived"
    return "raw" if column is Message.sha256 else "part"


def snapshot_contents(connection: Connection) -> tuple[int, str, tuple[NamedBlob, ...]]:
    """The audit head and every blob the rows name (each once, the first kind found)."""
    head = connection.execute(select(AuditHead.seq, AuditHead.hash)).first()
    seq, head_hash = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
    found: dict[tuple[str, str], str] = {}
    for named in BLOB_COLUMNS:
        for sha256 in connection.execute(
                select(named.blob).where(named.blob.is_not(None))).scalars():
            found.setdefault((named.store, sha256), _kind(named.store, named.blob))
    return seq, head_hash, tuple((store, sha256, kind)
                                 for (store, sha256), kind in sorted(found.items()))


# -- SQLite ----------------------------------------------------------------------------


def copy_sqlite(database: Database, target: Path) -> DatabaseCopy:
    """Copy the live SQLite database to `target` with the online backup API, in one step
    (so one read snapshot), as a self-contained file (rollback journal, not WAL)."""
    source_path = database.url.database
    if not source_path:
        raise BackupError("the SQLite database has no file to back up")
    source = sqlite3.connect(source_path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
    finally:
        source.close()
    with _sqlite_file_connection(target) as connection:
        seq, head_hash, blobs = snapshot_contents(connection)
    _fsync_file(target)
    return DatabaseCopy("sqlite", seq, head_hash, blobs)


class _sqlite_file_connection:  # used as a context manager, like open()
    """A SQLAlchemy connection reading one SQLite file, closed afterwards."""

    def __init__(self, path: Path) -> None:
        self._engine = create_engine("sqlite://", poolclass=NullPool,
                                     creator=lambda: sqlite3.connect(path))
        self._connection: Connection | None = None

    def __enter__(self) -> Connection:
        self._connection = self._engine.connect()
        return self._connection

    def __exit__(self, *exc: object) -> None:
        if self._connection is not None:
            self._connection.close()
        self._engine.dispose()


def restore_sqlite(dump: Path, database: Database) -> None:
    """Copy a snapshot's SQLite file over the (new, empty) database file of `database`."""
    target_path = database.url.database
    if not target_path:
        raise BackupError("the target SQLite database has no file")
    database.dispose()
    target = Path(target_path)
    work = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with dump.open("rb") as source, open(os.open(work, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                                 0o600), "wb") as copy:
        shutil.copyfileobj(source, copy, 1024 * 1024)
        copy.flush()
        os.fsync(copy.fileno())
    for leftover in (f"{target}-wal", f"{target}-shm", f"{target}-journal"):
        Path(leftover).unlink(missing_ok=True)
    os.replace(work, target)
    fsync_directory(target.parent)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


# -- PostgreSQL ------------------------------------------------------------------------


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The URL as libpq understands it, without the password (which goes in PGPASSWORD)."""
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), environment


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def _run(command: list[str], environment: dict[str, str]) -> None:
    done = subprocess.run(command, env=environment, capture_output=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: "
                          f"{done.stderr.decode('utf-8', 'replace').strip()}")


def dump_postgresql(database: Database, target: Path) -> DatabaseCopy:
    """Dump the schema in use with `pg_dump --format=custom`, at a snapshot whose rows are
    read in the same transaction."""
    pg_dump = _tool("pg_dump")
    with database.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            snapshot_id = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            seq, head_hash, blobs = snapshot_contents(connection)
            dbname, environment = _libpq(database.url)
            _run([pg_dump, "--format=custom", "--no-owner", "--no-acl",
                  f"--snapshot={snapshot_id}", f"--schema={schema}", f"--file={target}",
                  f"--dbname={dbname}"], environment)
    _fsync_file(target)
    return DatabaseCopy("postgresql", seq, head_hash, blobs, schema)


def postgresql_schema_is_empty(database: Database) -> tuple[str, bool]:
    """The schema the URL's search path makes current, and whether it holds no tables."""
    with database.engine.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one_or_none()
        if schema is None:
            raise BackupError("the database URL's schema does not exist: create it first")
        tables = connection.execute(text(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = :schema"),
            {"schema": schema}).scalar_one()
    return schema, tables == 0


def restore_postgresql(dump: Path, database: Database, source_schema: str) -> None:
    """Load a `pg_dump` archive into the (empty) schema the URL names, in one transaction.

    The archive names its source schema; when the target's differs, the statements are
    renamed to it. Rows (the lines of each COPY block) are passed on byte for byte.
    """
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    target_schema, _ = postgresql_schema_is_empty(database)  # the caller checked it is empty
    dbname, environment = _libpq(database.url)
    with tempfile.TemporaryFile() as errors:
        loader = subprocess.Popen(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
             f"--dbname={dbname}"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=errors, env=environment)
        reader = subprocess.Popen(
            [pg_restore, "--no-owner", "--no-acl", "--file=-", str(dump)],
            stdout=subprocess.PIPE, stderr=errors, env=environment)
        assert reader.stdout is not None and loader.stdin is not None
        try:
            for line in _renamed(reader.stdout, source_schema, target_schema):
                loader.stdin.write(line)
        except BrokenPipeError:
            pass  # psql stopped at an error; its message is in `errors`
        finally:
            reader.stdout.close()
            with contextlib.suppress(BrokenPipeError):
                loader.stdin.close()
        failed = reader.wait() != 0 or loader.wait() != 0
        if failed:
            errors.seek(0)
            raise BackupError("loading the PostgreSQL dump failed: "
                              + errors.read().decode("utf-8", "replace").strip())
    database.dispose()


def _renamed(lines: IO[bytes], source: str, target: str) -> Iterator[bytes]:
    """The SQL script's lines with the schema renamed outside COPY data; the statements
    creating or commenting on the (already existing) schema are left out."""
    name = re.escape(source.encode())
    qualified = re.compile(rb'(?<![\w"])(?:"' + name + rb'"|' + name + rb")\.")
    replacement = b'"' + target.replace('"', '""').encode() + b'".'
    in_copy = False
    for line in lines:
        if in_copy:
            in_copy = line != b"\\.\n"
            yield line
            continue
        if line.startswith((b"CREATE SCHEMA ", b"COMMENT ON SCHEMA ")):
            continue
        if line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;"):
            in_copy = True
        yield qualified.sub(replacement, line) if source != target else line
