"""Which of several daemons sharing one database runs the scheduled jobs.

On PostgreSQL the one that holds a session-level advisory lock is the leader. The lock lives
on a connection of its own (not one of the pool's): when the daemon dies, PostgreSQL closes
its session and releases the lock, and another daemon takes it at its next try. A leader
checks its connection before each job run; a query that fails means the session (and with it
the lock) may be gone, so it stops leading until it takes the lock again.

The key is 64 bits of the SHA-256 of the lock's name and the schema the tables live in, so
two installations in different schemas of one database do not block each other.

On SQLite the lock is always granted: SQLite is the embedded setup, one daemon per database
file on one machine, and there is nobody to elect. (Two daemons on one SQLite file would
still be safe for intake, but the supported setup for several daemons is PostgreSQL.)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from storage.database import Database

log = logging.getLogger("chikanemail.storage.leader")

SCHEDULER_LOCK = "chikanemail.scheduler"
# libpq keepalives: a leader cut off from the server notices a dead connection within about
# half a minute instead of the kernel's two hours.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3}


def advisory_key(name: str, schema: str) -> int:
    """The signed 64-bit advisory-lock key for a lock name in a schema."""
    digest = hashlib.sha256(f"{schema}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _pg_locks_condition() -> str:
    # pg_locks shows a 64-bit advisory key as classid (high half) and objid (low half), with
    # objsubid 1 for the one-bigint form.
    return ("locktype = 'advisory' AND objsubid = 1 AND granted "
            "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)")


def _key_halves(key: int) -> dict[str, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}


class LeaderLock:
    """A named lock that at most one daemon on a PostgreSQL database holds at a time.

    `try_acquire()` takes it if free (and says whether this daemon holds it); `held()` says
    whether it is still held, checking the connection; `release()` gives it back. Safe to
    call from several threads.
    """

    def __init__(self, database: Database, name: str = SCHEDULER_LOCK) -> None:
        self.name = name
        self.always_granted = not database.is_postgresql
        self.holder_name = f"chikanemail:{socket.gethostname()}:{os.getpid()}"
        self._mutex = threading.Lock()
        self._connection: Connection | None = None
        self._key: int | None = None
        self._engine: Engine | None = None
        if not self.always_granted:
            self._engine = create_engine(
                database.url, poolclass=NullPool,
                connect_args={**_KEEPALIVES, "application_name": self.holder_name[:63]},
            )

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; tell whether this daemon holds it now."""
        if self.always_granted:
            return True
        with self._mutex:
            if self._connection is not None and self._alive():
                return True
            assert self._engine is not None
            try:
                connection = self._engine.connect()
            except SQLAlchemyError as error:
                log.warning("cannot connect to take the lock %s: %s", self.name, error)
                return False
            try:
                # Autocommit: a session-level lock must not depend on a transaction, and an
                # idle connection must not sit "idle in transaction".
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                schema = connection.execute(text("SELECT current_schema()")).scalar_one()
                key = advisory_key(self.name, str(schema))
                taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                                {"key": key}).scalar_one())
            except SQLAlchemyError as error:
                log.warning("cannot take the lock %s: %s", self.name, error)
                connection.close()
                return False
            if not taken:
                connection.close()
                return False
            self._connection, self._key = connection, key
            return True

    def held(self) -> bool:
        """Tell whether this daemon holds the lock; a connection that fails a query counts
        as lost (the lock may already be someone else's)."""
        if self.always_granted:
            return True
        with self._mutex:
            return self._connection is not None and self._alive()

    def release(self) -> None:
        """Give the lock back and close its connection (another daemon can take it)."""
        if self.always_granted:
            return
        with self._mutex:
            if self._connection is not None:
                # Closing the session releases it as well, should the unlock fail.
                with contextlib.suppress(SQLAlchemyError):
                    self._connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                             {"key": self._key})
                self._drop()
            assert self._engine is not None
            self._engine.dispose()

    def _alive(self) -> bool:
        assert self._connection is not None
        try:
            still = self._connection.execute(
                text(f"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() "
                     f"AND {_pg_locks_condition()})"),
                _key_halves(self._key or 0),
            ).scalar_one()
        except SQLAlchemyError as error:
            log.warning("the connection holding the lock %s failed: %s", self.name, error)
            self._drop()
            return False
        if not still:
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):  # already broken
                self._connection.close()
        self._connection, self._key = None, None


def lock_holder(database: Database, name: str = SCHEDULER_LOCK) -> str | None:
    """Who holds the named lock on a PostgreSQL database (`chikanemail:<host>:<pid>`, as the
    holder's connection calls itself), or None when nobody does; None on SQLite."""
    if not database.is_postgresql:
        return None
    with database.engine.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
        holder = connection.execute(
            text(f"SELECT a.application_name FROM pg_locks l "
                 f"JOIN pg_stat_activity a ON a.pid = l.pid "
                 f"WHERE l.database = (SELECT oid FROM pg_database "
                 f"WHERE datname = current_database()) AND {_pg_locks_condition()}"),
            _key_halves(advisory_key(name, str(schema))),
        ).scalar_one_or_none()
    return None if holder is None else str(holder)
