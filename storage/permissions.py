"""File modes of the data directory: evidence and the database are for the service's user only."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("chikanemail.storage.permissions")

PRIVATE_FILE_MODE = 0o600
# Any permission bit for group or others.
_SHARED_BITS = 0o077


def shared_mode(path: Path) -> int | None:
    """The directory's permission bits if group or others have any access to it, else None."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & _SHARED_BITS else None


def make_database_files_private(database_file: Path) -> list[Path]:
    """Set the SQLite file and its -wal/-shm companions to 0600 where they are wider; return
    the files changed."""
    changed = []
    for path in (database_file, Path(f"{database_file}-wal"), Path(f"{database_file}-shm")):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & _SHARED_BITS:
            os.chmod(path, PRIVATE_FILE_MODE)
            changed.append(path)
            log.warning("database file %s was mode %o; set to %o", path.name, mode,
                        PRIVATE_FILE_MODE)
    return changed
