"""Deleting blob files after the commit: the files of pending `BlobDeletion` rows, each under
its store's exclusive lock and only if no row names it by then."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy import delete, select

from storage.blobstore import BlobStore, BlobStoreError, fsync_directory
from storage.database import Database
from storage.models import BlobDeletion
from storage.retention.blob_refs import chunks, still_referenced

log = logging.getLogger("chikanemail.storage.retention")


def finish_blob_deletions(database: Database,
                          stores: Mapping[str, BlobStore]) -> tuple[int, int]:
    """Delete the files of pending `BlobDeletion` rows that nothing references, and drop
    the rows (a referenced one is dropped and its file kept); return (deleted, kept)."""
    deleted = kept = 0
    for name, store in stores.items():
        with database.read() as session:
            pending = [(row_id, sha256) for row_id, sha256 in session.execute(
                select(BlobDeletion.id, BlobDeletion.sha256)
                .where(BlobDeletion.store == name).order_by(BlobDeletion.id))]
        for batch in chunks(pending):
            done, removed, still_used = _delete_files(database, name, store, batch)
            deleted += removed
            kept += still_used
            if done:
                with database.write() as session:
                    session.execute(delete(BlobDeletion).where(BlobDeletion.id.in_(done)))
    return deleted, kept


def _delete_files(database: Database, name: str, store: BlobStore,
                  batch: Sequence[tuple[int, str]]) -> tuple[list[int], int, int]:
    """Under the store's exclusive lock: delete each unreferenced file of the batch; return
    the rows settled, files deleted, and files kept because a row names them again."""
    done: list[int] = []
    deleted = kept = 0
    with store.exclusive_lock():
        # Every writer that found one of these blobs stored has committed its row by now.
        with database.read() as session:
            referenced = {sha256 for _, sha256 in
                          still_referenced(session, [(name, sha256) for _, sha256 in batch])}
        directories: set[Path] = set()
        for row_id, sha256 in batch:
            if sha256 in referenced:
                kept += 1
                done.append(row_id)
                log.info("retention kept blob store=%s sha256=%s: referenced again",
                         name, sha256)
                continue
            try:
                path = store.path(sha256)
                _unlink_blob(path)
            except (OSError, BlobStoreError) as error:  # left pending for the next run
                log.error("retention could not delete blob store=%s sha256=%s: %s", name,
                          sha256, error)
                continue
            directories.add(path.parent)
            deleted += 1
            done.append(row_id)
        for directory in sorted(directories):
            fsync_directory(directory)
    return done, deleted, kept


def _unlink_blob(path: Path) -> None:
    """Remove one blob file (already gone after a crash: fine). A read-only file in a
    directory we own can be unlinked."""
    path.unlink(missing_ok=True)
