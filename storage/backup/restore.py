"""`restore_snapshot`: a working installation from a snapshot, into an empty target.

Every blob is copied re-hashed against the manifest before the database is touched: one
flipped byte refuses the restore, naming the blob, and leaves the target as empty as it was.
Then the database is restored (a SQLite snapshot may go into PostgreSQL as well), its audit
head checked against the manifest, and retention applied at the current time, so evidence
deleted for its retention period since the backup does not come back (legal holds are
kept, as retention keeps them). The caller runs `verify` afterwards.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from storage.backup.copying import CopyFailed, CopyJob, copy_all, fsync_folders, hash_file
from storage.backup.cross_restore import restore_sqlite_into_postgresql
from storage.backup.database_dump import (
    postgresql_schema_is_empty,
    restore_postgresql,
    restore_sqlite,
)
from storage.backup.manifest import BackupError, Manifest, read_manifest
from storage.blob_columns import DERIVED_STORE, EVIDENCE_STORE
from storage.blobstore import BlobStore
from storage.database import Database
from storage.models import AuditHead, utc_now
from storage.retention.deletion import apply_retention
from storage.retention.items import RetentionResult
from storage.settings import RetentionSettings, StorageSettings
from storage.verify import ProgressCallback


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the snapshot's manifest, blobs and bytes copied, retention."""

    manifest: Manifest
    blobs: int
    bytes: int
    retention: RetentionResult
    seconds: float


def _is_empty_folder(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _refuse_non_empty(manifest: Manifest, settings: StorageSettings) -> None:
    url = settings.effective_database_url
    is_sqlite = url.startswith("sqlite")
    if manifest.database_kind == "postgresql" and is_sqlite:
        raise BackupError("the snapshot holds a PostgreSQL database: it restores into "
                          "PostgreSQL only (give --database-url)")
    if is_sqlite and not _is_empty_folder(settings.data_path):
        raise BackupError(f"{settings.data_path} is not empty: restore needs a new or empty "
                          "data directory")
    for root in (settings.blob_root, settings.derived_root):
        if not _is_empty_folder(root):
            raise BackupError(f"{root} is not empty: restore needs empty stores")
    if is_sqlite:
        database_file = Path(url.removeprefix("sqlite:///"))
        if database_file.exists() and database_file.stat().st_size > 0:
            raise BackupError(f"{database_file} exists: restore needs a new database")


def restore_snapshot(folder: Path, settings: StorageSettings, retention: RetentionSettings,
                     *, now: datetime | None = None,
                     on_progress: ProgressCallback | None = None) -> RestoreResult:
    """Restore the snapshot in `folder` into the empty data directory and database that
    `settings` name; apply retention at `now`."""
    started = time.monotonic()
    folder = folder.resolve()
    manifest = read_manifest(folder)
    _refuse_non_empty(manifest, settings)
    database_sha256, database_size = hash_file(folder / manifest.database_file)
    if database_sha256 != manifest.database_sha256 or database_size != manifest.database_size:
        raise BackupError(f"database file {manifest.database_file} does not match the "
                          "manifest: the snapshot is damaged")
    if not settings.effective_database_url.startswith("sqlite"):
        _refuse_non_empty_schema(settings.effective_database_url)
    stores = {EVIDENCE_STORE: BlobStore(settings.blob_root),
              DERIVED_STORE: BlobStore(settings.derived_root)}
    made_data_dir = not settings.data_path.exists()
    settings.data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        copied_bytes = _copy_blobs(folder, manifest, stores, on_progress)
    except BaseException:
        for store in stores.values():  # they were empty or missing: leave them so
            shutil.rmtree(store.root, ignore_errors=True)
        if made_data_dir:
            settings.data_path.rmdir()
        raise
    # Only now: opening a SQLite database creates its file.
    database = Database(settings.effective_database_url)
    try:
        if database.is_sqlite:
            restore_sqlite(folder / manifest.database_file, database)
        elif manifest.database_kind == "sqlite":  # from the embedded database to a server
            restore_sqlite_into_postgresql(folder / manifest.database_file, database)
        else:
            restore_postgresql(folder / manifest.database_file, database,
                               manifest.source_schema or "public")
        with database.read() as session:
            head = session.execute(select(AuditHead.seq, AuditHead.hash)).first()
        if manifest.audit_seq and (head is None or (head[0], head[1]) !=
                                   (manifest.audit_seq, manifest.audit_hash)):
            raise BackupError(f"the restored audit head {head} is not the manifest's "
                              f"({manifest.audit_seq}, {manifest.audit_hash})")
        result = apply_retention(database, stores[EVIDENCE_STORE], stores[DERIVED_STORE],
                                 retention, now or utc_now(), actor="restore")
    finally:
        database.dispose()
    return RestoreResult(manifest, len(manifest.blobs), copied_bytes, result,
                         time.monotonic() - started)


def _refuse_non_empty_schema(url: str) -> None:
    database = Database(url)
    try:
        schema, empty = postgresql_schema_is_empty(database)
    finally:
        database.dispose()
    if not empty:
        raise BackupError(f"schema {schema} is not empty: restore needs an empty one")


def _copy_blobs(folder: Path, manifest: Manifest, stores: dict[str, BlobStore],
                on_progress: ProgressCallback | None) -> int:
    changed: set[Path] = set()
    total = sum(blob.size for blob in manifest.blobs)
    for store in stores.values():
        store.ensure_root()
    jobs = {stores[blob.store].path(blob.sha256): blob for blob in manifest.blobs}
    try:
        copy_all([CopyJob(folder / blob.relative_path, target, blob.sha256, blob.size)
                  for target, blob in jobs.items()], changed, on_progress,
                 files_total=len(jobs), bytes_total=total)
    except CopyFailed as failed:
        blob = jobs[failed.job.target]
        problem = ("is missing from the snapshot" if isinstance(failed.error, FileNotFoundError)
                   else f"does not match the manifest (read {failed})")
        raise BackupError(f"{blob.kind} blob {blob.store}/{blob.sha256} {problem}: restore "
                          "refused") from failed
    fsync_folders(changed)
    return total
