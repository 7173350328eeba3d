"""`take_snapshot`: a consistent backup while the daemon runs.

Order, so that an interrupted backup is never taken for a complete one: the database copy
(under a name of its own, so the previous snapshot in the folder stays whole), then every
blob its rows name that the folder lacks, re-hashed as it is copied, then the files the
configuration names, then the folders are fsync'd, and the manifest is written last. Only
then are the database copies of earlier snapshots removed.

Both stores' shared locks are held from before the database is read until the blobs are
copied: retention cannot delete a file the snapshot's rows still name meanwhile.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage.backup.copying import (
    CopyFailed,
    CopyJob,
    copy_all,
    copy_verified,
    fsync_folders,
    hash_file,
    make_folders,
)
from storage.backup.database_dump import (
    POSTGRESQL_SUFFIX,
    SQLITE_SUFFIX,
    DatabaseCopy,
    copy_sqlite,
    dump_postgresql,
)
from storage.backup.installation_files import group_name, user_name
from storage.backup.manifest import (
    BackupError,
    BlobEntry,
    FileEntry,
    Manifest,
    write_manifest,
)
from storage.blob_columns import DERIVED_STORE, EVIDENCE_STORE
from storage.blobstore import BlobStore
from storage.database import Database
from storage.models import utc_now

# Progress is counted as verify counts it: files and bytes done of all.
from storage.verify import ProgressCallback

DATABASE_PREFIX = "database-"
FILES_FOLDER = "files"


@dataclass(frozen=True)
class BackupResult:
    """What a backup did: its manifest, blobs copied and found already there, bytes copied."""

    folder: Path
    manifest: Manifest
    copied: int
    already_there: int
    bytes_copied: int
    seconds: float


def take_snapshot(database: Database, evidence_store: BlobStore, derived_store: BlobStore,
                  folder: Path, *, files: Sequence[tuple[str, Path]] = (),
                  on_progress: ProgressCallback | None = None,
                  now: datetime | None = None) -> BackupResult:
    """Back up the database, the blobs its rows name and the named `files` (config key,
    path) into `folder`; blobs already in the folder are not copied again."""
    started = time.monotonic()
    created_at = now or utc_now()
    folder = folder.resolve()
    changed: set[Path] = set()
    make_folders(folder, changed)
    remove_leftovers(folder)
    stores = {EVIDENCE_STORE: evidence_store, DERIVED_STORE: derived_store}
    database_name = f"{DATABASE_PREFIX}{created_at:%Y%m%dT%H%M%S%fZ}"
    with ExitStack() as locks:
        for store in stores.values():
            locks.enter_context(store.shared_lock())
        copy, database_file = _copy_database(database, folder, database_name)
        blobs, copied, present, bytes_copied = _copy_blobs(copy, stores, folder, changed,
                                                           on_progress)
    database_sha256, database_size = hash_file(folder / database_file)
    entries = tuple(_copy_file(key, path, folder, index, changed)
                    for index, (key, path) in enumerate(files))
    changed.add(folder)
    fsync_folders(changed)
    manifest = Manifest(created_at=created_at, database_kind=copy.kind,
                        database_file=database_file, database_sha256=database_sha256,
                        database_size=database_size, audit_seq=copy.audit_seq,
                        audit_hash=copy.audit_hash, blobs=blobs, files=entries,
                        source_schema=copy.schema)
    write_manifest(folder, manifest)
    for old in folder.glob(f"{DATABASE_PREFIX}*"):
        if old.name != database_file:
            old.unlink()
    return BackupResult(folder, manifest, copied, present, bytes_copied,
                        time.monotonic() - started)


def remove_leftovers(folder: Path) -> int:
    """Remove the work files (`.NAME.PID.tmp`) an interrupted backup left in the folder,
    those of a process no longer running; return how many. An admin's own tool would
    otherwise take them away with the snapshot."""
    removed = 0
    for path in folder.rglob(".*.tmp"):
        match = _WORK_FILE.fullmatch(path.name)
        if match is None or _is_running(int(match.group("pid"))):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


# What every writer of the snapshot names its work file: `.NAME.PID.tmp`.
_WORK_FILE = re.compile(r"\..+\.(?P<pid>[0-9]+)\.tmp")


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _copy_database(database: Database, folder: Path, name: str) -> tuple[DatabaseCopy, str]:
    suffix = SQLITE_SUFFIX if database.is_sqlite else POSTGRESQL_SUFFIX
    work = folder / f".{name}{suffix}.{os.getpid()}.tmp"
    try:
        copy = copy_sqlite(database, work) if database.is_sqlite else \
            dump_postgresql(database, work)
        os.replace(work, folder / f"{name}{suffix}")
    except BaseException:
        work.unlink(missing_ok=True)
        raise
    return copy, f"{name}{suffix}"


def _copy_blobs(copy: DatabaseCopy, stores: dict[str, BlobStore], folder: Path,
                changed: set[Path], on_progress: ProgressCallback | None,
                ) -> tuple[tuple[BlobEntry, ...], int, int, int]:
    """Copy the named blobs the folder lacks; return the manifest entries and counts."""
    entries = tuple(BlobEntry(store, sha256, _size_of(stores[store], sha256, kind), kind)
                    for store, sha256, kind in copy.blobs)
    total = sum(entry.size for entry in entries)
    jobs: list[CopyJob] = []
    by_target: dict[Path, BlobEntry] = {}
    present = present_bytes = 0
    for entry in entries:
        target = folder / entry.relative_path
        if target.is_file() and target.stat().st_size == entry.size:
            present += 1
            present_bytes += entry.size
        else:
            jobs.append(CopyJob(stores[entry.store].path(entry.sha256), target, entry.sha256,
                                entry.size))
            by_target[target] = entry
    try:
        copy_all(jobs, changed, on_progress, files_total=len(entries), bytes_total=total,
                 files_done=present, bytes_done=present_bytes)
    except CopyFailed as failed:
        entry = by_target[failed.job.target]
        raise BackupError(f"{entry.kind} blob {entry.store}/{entry.sha256} could not be "
                          f"copied ({failed}): run `chikanemail verify`") from failed
    return entries, len(jobs), present, total - present_bytes


def _size_of(store: BlobStore, sha256: str, kind: str) -> int:
    try:
        return store.path(sha256).stat().st_size
    except FileNotFoundError as error:
        raise BackupError(f"{kind} blob {store.root.name}/{sha256} is named by a row but "
                          "missing from the store: run `chikanemail verify`") from error


def _copy_file(key: str, path: Path, folder: Path, index: int,
               changed: set[Path]) -> FileEntry:
    """Copy one file the configuration names into `files/`, kept under a numbered name."""
    try:
        sha256, size = hash_file(path)
    except OSError as error:
        raise BackupError(f"{key}: cannot read {path}: {error.strerror}") from error
    relative = f"{FILES_FOLDER}/{index:02d}-{path.name}"
    target = folder / relative
    if target.exists():
        os.chmod(target, 0o600)
        target.unlink()
    copy_verified(path, target, sha256=sha256, size=size, changed=changed, mode=0o400)
    status = path.stat()
    return FileEntry(key, str(path), relative, sha256, size, mode=stat.S_IMODE(status.st_mode),
                     owner=user_name(status.st_uid), group=group_name(status.st_gid))
