"""Claims on queue rows (a message being processed, a mail being sent): who holds them,
and taking and giving them back.

A claimer is named `host:pid:token.n`: the token is one per process run, `n` one per
claimer in it. A restarted daemon can then tell claims of a dead process on this host
(resume them at once) from live ones (leave them), and claims of another machine (its
lease decides).
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, select, update

from storage.database import Database

_PROCESS_TOKEN = secrets.token_hex(4)
_instances = itertools.count(1)


def _new_process_token() -> None:
    """A forked process (a worker process) is a process run of its own: a token of its own."""
    global _PROCESS_TOKEN
    _PROCESS_TOKEN = secrets.token_hex(4)


os.register_at_fork(after_in_child=_new_process_token)


def process_is_alive(pid: int) -> bool:
    """Tell whether a process with this id runs on this machine (other than this one)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClaimerIdentity:
    """The name a worker or sender writes on the rows it claims."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.token = f"{_PROCESS_TOKEN}.{next(_instances)}"

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    def is_abandoned(self, claimed_by: str) -> bool:
        """Tell whether a claim belongs to a claimer on this host that no longer runs."""
        parts = claimed_by.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        host, pid_text, token = parts
        if host != self.host:
            return False  # another machine's claimer: its lease decides
        pid = int(pid_text)
        if pid == self.pid:
            # An earlier run that had our pid (a container restart), not one of this run.
            return token.split(".", 1)[0] != _PROCESS_TOKEN
        return not process_is_alive(pid)


def claim_rows(
    database: Database,
    model: Any,
    *,
    waiting: ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    claimed_state: str,
    claimer: str,
    lease: timedelta,
    now: datetime,
    returning: Sequence[Any],
) -> list[Row[Any]]:
    """Mark up to `limit` waiting rows of a queue table as claimed by `claimer` and return
    the asked columns. One statement (`UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`);
    PostgreSQL skips rows another daemon has locked, SQLite's BEGIN IMMEDIATE serialises.
    Each claim counts as an attempt. The table needs id, state, claimed_by, claimed_until
    and attempts columns."""
    candidates = select(model.id).where(waiting).order_by(*order_by).limit(limit)
    if database.is_postgresql:
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(model)
        .where(model.id.in_(candidates.scalar_subquery()))
        .values(state=claimed_state, claimed_by=claimer, claimed_until=now + lease,
                attempts=model.attempts + 1)
        .returning(*returning)
    )
    with database.write() as session:
        return list(session.execute(statement,
                                    execution_options={"synchronize_session": False}))


def release_rows(
    database: Database,
    model: Any,
    ids: Sequence[int],
    *,
    claimer: str,
    claimed_state: str,
    waiting_state: str,
) -> int:
    """Give back rows a claimer took but did not start (it is stopping): no attempt is spent."""
    if not ids:
        return 0
    with database.write() as session:
        result = session.execute(
            update(model)
            .where(model.id.in_(ids), model.claimed_by == claimer,
                   model.state == claimed_state)
            .values(state=waiting_state, claimed_by=None, claimed_until=None,
                    attempts=model.attempts - 1),
            execution_options={"synchronize_session": False},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
