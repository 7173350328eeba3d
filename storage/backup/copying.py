"""Copying one file into place, re-hashed on the way: a work file next to the target,
fsync'd, renamed, made read-only. The caller fsyncs the folders that gained entries (each
once) before it writes what names the files, so a crash never leaves a half file named."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from storage import verify
from storage.blobstore import BLOB_DIR_MODE, fsync_directory
from storage.verify import ProgressCallback, VerifyProgress

_CHUNK = 1024 * 1024
# Files copied at once: their hashing (outside the GIL) and fsyncs overlap, and a journaling
# file system commits fsyncs that wait together in one go.
COPY_THREADS = 4


class HashMismatch(Exception):
    """The copied bytes do not have the hash (or size) they should have; nothing was kept."""

    def __init__(self, actual_sha256: str, actual_size: int) -> None:
        super().__init__(f"sha256 {actual_sha256}, {actual_size} bytes")
        self.actual_sha256 = actual_sha256
        self.actual_size = actual_size


def make_folders(folder: Path, changed: set[Path], mode: int = BLOB_DIR_MODE) -> None:
    """Create the missing folders (`mode`, 0700 by default) down to `folder`; note each
    parent that gained one."""
    missing: list[Path] = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, mode)
        except FileExistsError:
            continue
        changed.add(new.parent)


def copy_verified(source: Path, target: Path, *, sha256: str, size: int | None,
                  changed: set[Path], mode: int = 0o400) -> int:
    """Copy `source` to `target` hashing the bytes; keep the copy only if they hash to
    `sha256` (and are `size` bytes, when given). Return the size; raise `HashMismatch`."""
    make_folders(target.parent, changed)
    work = target.parent / f".{target.name}.{os.getpid()}.tmp"
    digest = hashlib.sha256()
    copied = 0
    fd = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            with source.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    copied += len(chunk)
            if digest.hexdigest() != sha256 or (size is not None and copied != size):
                raise HashMismatch(digest.hexdigest(), copied)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(work, mode)
        os.replace(work, target)
    except BaseException:
        work.unlink(missing_ok=True)
        raise
    changed.add(target.parent)
    return copied


@dataclass(frozen=True)
class CopyJob:
    """One file to copy, and the hash and size its bytes must have."""

    source: Path
    target: Path
    sha256: str
    size: int


class CopyFailed(Exception):
    """A copy failed: its job, and why (`HashMismatch` or `OSError`) as the cause."""

    def __init__(self, job: CopyJob, error: BaseException) -> None:
        super().__init__(str(error))
        self.job = job
        self.error = error


def copy_all(jobs: Sequence[CopyJob], changed: set[Path],
             on_progress: ProgressCallback | None, *, files_total: int, bytes_total: int,
             files_done: int = 0, bytes_done: int = 0) -> None:
    """Copy every job with `copy_verified`, COPY_THREADS at once, reporting progress (of
    `files_total` files and `bytes_total` bytes, counting on from the `_done` figures) in
    this thread as each one finishes. The first failure is raised as `CopyFailed` once the
    copies under way have ended; the others are not started."""
    with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="chikanemail-copy") as pool:
        futures = {pool.submit(copy_verified, job.source, job.target, sha256=job.sha256,
                               size=job.size, changed=changed): job for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    future.result()
                except (HashMismatch, OSError) as error:
                    raise CopyFailed(job, error) from error
                files_done += 1
                bytes_done += job.size
                if on_progress is not None:
                    on_progress(VerifyProgress(files_done, files_total, bytes_done,
                                               bytes_total))
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def hash_file(path: Path) -> tuple[str, int]:
    """The SHA-256 and size of a file."""
    sha256, size, _ = verify.hash_file(path)
    return sha256, size


def fsync_folders(folders: Iterable[Path]) -> None:
    """Make the new entries of each folder durable (deepest first, each once)."""
    for folder in sorted(set(folders), key=lambda path: len(path.parts), reverse=True):
        fsync_directory(folder)
