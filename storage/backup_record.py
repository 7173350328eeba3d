"""When the last backup was made: `last-backup.json` in the data directory.

The backup writes it (`record_backup`) once a backup is complete; `chikanemail health` reads
it (`last_backup`) to warn when backups stop. The file is replaced atomically (written to a
temporary file, fsync'd, renamed, the folder fsync'd), so a reader sees the old record or
the new one, whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from storage.blobstore import fsync_directory

RECORD_NAME = "last-backup.json"


def record_backup(data_dir: Path, at: datetime, audit_seq: int) -> None:
    """Record a complete backup made at `at` (aware) that holds the audit log up to
    `audit_seq`."""
    if at.tzinfo is None:
        raise ValueError("the backup time must carry its time zone")
    content = json.dumps({"at": at.astimezone(UTC).isoformat(), "audit_seq": audit_seq})
    fd, temporary = tempfile.mkstemp(prefix=".last-backup-", dir=data_dir)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, data_dir / RECORD_NAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(data_dir)


def last_backup(data_dir: Path) -> datetime | None:
    """When the last recorded backup was made (UTC), or None if none was recorded; raises
    ValueError for a file that is not such a record."""
    try:
        text = (data_dir / RECORD_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        at = datetime.fromisoformat(json.loads(text)["at"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{data_dir / RECORD_NAME} is not a backup record: {error}") from None
    if at.tzinfo is None:
        raise ValueError(f"{data_dir / RECORD_NAME}: the time has no time zone")
    return at.astimezone(UTC)
