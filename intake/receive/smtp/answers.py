"""The SMTP answers `chikanemail health` must know about: 451s for our own failures, by
reason, over the last 15 minutes, and when a message was last stored.

The daemon counts them in memory and publishes them in a small JSON status file that
`health` (another process) reads. The file lives in the runtime directory, a tmpfs under
systemd (`RuntimeDirectory=`), so it can be written while the data disk is full and read
while the database is down. It is written atomically (a temporary file renamed over it); a
failed write is logged once and the daemon goes on: answering mail matters more.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
import threading
from collections import deque
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from storage.models import utc_now

log = logging.getLogger("chikanemail.health")

# What `health` looks back on, and what the daemon keeps.
ANSWER_WINDOW = timedelta(minutes=15)
# At most this many 451s a reason are kept in the window (the count stays exact).
MAX_TIMES_KEPT = 200
STATUS_FILE_NAME = "smtp-answers.json"
# The environment variable systemd sets for `RuntimeDirectory=` (first of a `:` list).
RUNTIME_DIRECTORY_ENV = "RUNTIME_DIRECTORY"
# RuntimeDirectory=chikanemail of packaging/chikanemail.service: systemd makes it while the
# service runs and removes it when it stops.
SHIPPED_RUNTIME_DIRECTORY = Path("/run/chikanemail")
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXTS = ("disk is full", "no space left", "disk full")


class RefusalReason(StrEnum):
    """Why a message was answered 451."""

    STORAGE_FULL = "storage-full"  # no space (or quota) left for the spool, blob or database
    STORAGE = "storage"  # another I/O error of the store
    DATABASE = "database"  # the database did not take the row
    OTHER = "other"  # anything else of ours (a bug, a session error)


# The reasons that mean our own storage or database refused mail: `health` fails on them.
OWN_FAILURES = frozenset({RefusalReason.STORAGE_FULL, RefusalReason.STORAGE,
                          RefusalReason.DATABASE})


def refusal_reason(error: BaseException) -> RefusalReason:
    """The reason for a 451 caused by `error` (its causes and contexts looked at too)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for item in seen:
        if isinstance(item, OSError) and item.errno in _DISK_FULL_ERRNOS:
            return RefusalReason.STORAGE_FULL
        if isinstance(item, SQLAlchemyError):
            text = str(item).lower()
            if any(marker in text for marker in _DISK_FULL_TEXTS):
                return RefusalReason.STORAGE_FULL
    if any(isinstance(item, SQLAlchemyError) for item in seen):
        return RefusalReason.DATABASE
    if any(isinstance(item, OSError) for item in seen):
        return RefusalReason.STORAGE
    return RefusalReason.OTHER


def session_error_reason(error: BaseException) -> RefusalReason | None:
    """The reason to count for an error that ended up in aiosmtpd's `handle_exception`, or
    None: an I/O error there is the connection's (a TLS handshake, a peer gone), not our
    store's, and says nothing about whether mail can be stored."""
    reason = refusal_reason(error)
    return None if reason == RefusalReason.STORAGE else reason


def status_file_path(status_dir: str, data_path: Path) -> Path:
    """Where the status file is: `[health] status_dir`, else systemd's runtime directory
    (`$RUNTIME_DIRECTORY` in the service; the shipped unit's `/run/chikanemail` for a
    `health` run from a shell while the service runs), else `run/` in the data directory."""
    if status_dir:
        return Path(status_dir) / STATUS_FILE_NAME
    runtime = os.environ.get(RUNTIME_DIRECTORY_ENV, "").split(":")[0]
    if runtime:
        return Path(runtime) / STATUS_FILE_NAME
    if SHIPPED_RUNTIME_DIRECTORY.is_dir():
        return SHIPPED_RUNTIME_DIRECTORY / STATUS_FILE_NAME
    return data_path / "run" / STATUS_FILE_NAME


class SmtpAnswers:
    """The 451s of the last 15 minutes by reason and the last stored message, published to
    the status file. Called from the event loop (`refused`, `stored`) and from threads
    (`publish`)."""

    def __init__(self, path: Path, *, pid: int | None = None) -> None:
        self.path = path
        self.pid = pid if pid is not None else os.getpid()
        self.started_at = utc_now()
        self._refusals: dict[RefusalReason, deque[datetime]] = {
            reason: deque(maxlen=MAX_TIMES_KEPT) for reason in RefusalReason}
        self._counts: dict[RefusalReason, int] = dict.fromkeys(RefusalReason, 0)
        self._last_refused_at: datetime | None = None
        self._last_stored_at: datetime | None = None
        self._lock = threading.Lock()
        self._write_failed = False

    def refused(self, reason: RefusalReason, at: datetime | None = None) -> None:
        """Count a 451 for `reason`."""
        stamp = at or utc_now()
        with self._lock:
            self._refusals[reason].append(stamp)
            self._counts[reason] += 1
            self._last_refused_at = stamp

    def stored(self, at: datetime | None = None) -> bool:
        """Note a 250; True when that is news for `health` (the first since a 451, or any
        while the file could not be written), so the file is not rewritten for every
        message."""
        stamp = at or utc_now()
        with self._lock:
            news = self._write_failed or (self._last_refused_at is not None and (
                self._last_stored_at is None or self._last_stored_at < self._last_refused_at))
            self._last_stored_at = stamp
            return news

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        """What the status file holds: 451 times of the window by reason, the last 250."""
        since = (now or utc_now()) - ANSWER_WINDOW
        with self._lock:
            for times in self._refusals.values():
                while times and times[0] < since:
                    times.popleft()
            refusals = {reason.value: {"times": [stamp.isoformat() for stamp in times],
                                       "since_start": self._counts[reason]}
                        for reason, times in self._refusals.items()}
            last_stored = self._last_stored_at
        return {"pid": self.pid, "started_at": self.started_at.isoformat(),
                "written_at": (now or utc_now()).isoformat(),
                "window_seconds": int(ANSWER_WINDOW.total_seconds()),
                "refused_451": refusals,
                "last_stored_at": last_stored.isoformat() if last_stored else None}

    def publish(self) -> None:
        """Write the status file atomically; on failure log once (until it works again)."""
        try:
            write_status_file(self.path, self.snapshot())
        except OSError as error:
            if not self._write_failed:
                log.error("cannot write the health status file %s: %s (health will not see "
                          "the SMTP answers; said once)", self.path, error.strerror or error)
            self._write_failed = True
            return
        if self._write_failed:
            log.info("health status file %s written again", self.path)
        self._write_failed = False


def write_status_file(path: Path, content: dict[str, Any]) -> None:
    """Replace `path` with `content` as JSON in one rename (readers see old or new, whole)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".status-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_status_file(path: Path) -> dict[str, Any] | None:
    """The published status, or None when there is no file; raises ValueError when it is
    not what `SmtpAnswers` writes."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    content = json.loads(text)
    if not isinstance(content, dict) or not isinstance(content.get("refused_451"), dict):
        raise ValueError(f"{path} is not a status file of chikanemail")
    return content
