"""Database engine and sessions: SQLite (embedded default) or PostgreSQL, same models.

SQLite runs in WAL mode with synchronous=FULL (a commit is on disk before we answer 250),
a busy timeout, foreign keys, and `BEGIN IMMEDIATE` for write transactions so concurrent
writers queue instead of failing with "database is locked" halfway through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from storage import audit

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that marks a transaction as read-only (SQLite then uses a deferred BEGIN).
_READ_ONLY = "chikanemail_read_only"


class Database:
    """One database: its engine and the sessions work is done in."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgresql = self.url.get_backend_name() == "postgresql"
        if self.is_sqlite:
            _prepare_sqlite_file(self.url.database)
        self.engine: Engine = create_engine(
            self.url,
            echo=echo,
            pool_pre_ping=not self.is_sqlite,
            connect_args=({"check_same_thread": False} if self.is_sqlite else {}),
        )
        if self.is_sqlite:
            _install_sqlite_behaviour(self.engine)
        self._write_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(**{_READ_ONLY: True})
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        # Audit events recorded in a transaction are chained in when it commits.
        audit.install(self._write_sessions)
        audit.install(self._read_sessions)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed on success, rolled back on error."""
        with self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only; it never takes SQLite's write lock."""
        with self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection in one read-only transaction, without the ORM's per-row work:
        for long listings of a few columns."""
        with self._read_engine.connect() as connection, connection.begin():
            yield connection

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _prepare_sqlite_file(database: str | None) -> None:
    """Create the SQLite file and its folder owner-only, before SQLite makes them world-readable."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)


def _install_sqlite_behaviour(engine: Engine) -> None:
    """Set SQLite's pragmas on every connection and make write transactions BEGIN IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself instead of pysqlite's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
