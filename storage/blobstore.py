"""Content-addressed evidence store: every blob is named by the SHA-256 of its exact bytes.

A blob is written to a temporary file, fsync'd, renamed into place, its directory fsync'd,
and made read-only. Nothing here ever rewrites or deletes a blob that matches its name.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from storage.errors import ChikanemailError

log = logging.getLogger("chikanemail.storage.blobs")

BLOB_FILE_MODE = 0o400
BLOB_DIR_MODE = 0o700
_WORK_FILE_MODE = 0o600
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Work files are named `.<sha256>.<pid>.<ns>.tmp` (put) or `<pid>.<ns>.tmp` (streams).
_WORK_FILE_PID = re.compile(r"(?:^|\.)(\d+)\.\d+\.tmp$")
_CHUNK = 1024 * 1024
# A streamed blob's work file name is tried this often before giving up (names carry a time).
_WORK_NAME_TRIES = 100
# Temporary files of streamed blobs live here until their name (hash) is known.
_INCOMING = ".incoming"
# A stored file that no longer matches its name is moved here, never deleted.
_DAMAGED = ".damaged"
# The file at the store root whose flock() says who may delete blobs (`exclusive_lock`).
# It is no blob: `iter_all` skips it, and so must any other walk of the store.
LOCK_FILE_NAME = ".lock"
_LOCK_FILE_MODE = 0o600
# How many fsyncs `put_many` has waiting at once; they mostly wait on the disk, not the CPU.
_FSYNC_THREADS = 16
_FSYNC_POOL: ThreadPoolExecutor | None = None
_FSYNC_POOL_LOCK = threading.Lock()


class BlobStoreError(ChikanemailError):
    """The blob store could not keep or read a blob."""


def sha256_hex(data: bytes | memoryview) -> str:
    """Return the lowercase hex SHA-256 of the given bytes."""
    return hashlib.sha256(data).hexdigest()


def is_sha256_hex(text: str) -> bool:
    """Tell whether the text is a lowercase 64-digit hex SHA-256, the only valid blob name."""
    return _HEX64.fullmatch(text) is not None


def fsync_directory(path: Path) -> None:
    """Make a directory's entries (a new or renamed file in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class BlobStore:
    """The evidence store under one root directory, fanned out as `ab/cd/<64 hex>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading -------------------------------------------------------------

    def path(self, sha256: str) -> Path:
        """Return where the blob with this SHA-256 is (or would be) kept."""
        if not is_sha256_hex(sha256):
            raise BlobStoreError(f"not a SHA-256 blob name: {sha256!r}")
        return self.root / sha256[0:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        """Tell whether a blob with this SHA-256 is stored."""
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """Open the stored blob for reading in binary mode."""
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError as error:
            raise BlobStoreError(f"blob {sha256} is missing") from error

    def read_bytes(self, sha256: str) -> bytes:
        """Return the whole blob; for small blobs only (use `open` to stream large ones)."""
        with self.open(sha256) as handle:
            return handle.read()

    def iter_all(self) -> Iterator[str]:
        """Yield the SHA-256 of every stored blob, in name order."""
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if not first.is_dir() or len(first.name) != 2:
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir() or len(second.name) != 2:
                    continue
                for blob in sorted(second.iterdir()):
                    if is_sha256_hex(blob.name):
                        yield blob.name

    # -- who may delete --------------------------------------------------------

    @contextmanager
    def shared_lock(self) -> Iterator[None]:
        """Hold the store's shared lock: for a writer, from putting or committing its blobs
        until the rows naming them are committed. Any number of writers hold it at once; it
        keeps retention from deleting a blob a writer found already stored and is about to
        reference. Take it before a database transaction begins, never inside one."""
        with self._flock(fcntl.LOCK_SH):
            yield

    @contextmanager
    def exclusive_lock(self) -> Iterator[None]:
        """Hold the store's exclusive lock: for retention, while it checks that a blob is
        still unreferenced and deletes it. Waits until no writer holds the shared lock."""
        with self._flock(fcntl.LOCK_EX):
            yield

    @contextmanager
    def _flock(self, operation: int) -> Iterator[None]:
        # Each holder opens the file itself: flock() belongs to the open file, so threads of
        # one process exclude each other just as processes do. Closing it releases the lock.
        self.ensure_root()
        fd = os.open(self.root / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, _LOCK_FILE_MODE)
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)

    # -- writing -------------------------------------------------------------

    def ensure_root(self) -> None:
        """Create the store's root directory (0700) if it is missing."""
        self._make_dirs(self.root)

    def put(self, data: bytes | memoryview) -> str:
        """Store the bytes durably (or find them already stored) and return their SHA-256."""
        return self.put_many([data])[0]

    def put_many(self, items: Sequence[bytes | memoryview]) -> list[str]:
        """Store several blobs durably (or find them already stored); return their SHA-256s.

        Each blob goes the same way as one alone: a work file, fsync'd, renamed to its name,
        read-only. Only the order differs, so that the disk is waited for a few times in all
        instead of a few times per blob: every work file is written, then all are fsync'd at
        once, then all are renamed, then every directory that gained an entry (a blob or a
        new fan-out directory) is fsync'd, each once and all at once. When this returns,
        every blob is durable; when it raises, no work file is left, and blobs already
        renamed are complete but unreferenced (bytes coming again find them). Meant for a
        batch of tens: each new blob holds a file descriptor until its fsync.
        """
        names = [sha256_hex(data) for data in items]
        changed: set[Path] = set()  # directories whose new entries must be made durable
        work_files: dict[Path, Path] = {}  # target -> its work file, until renamed
        open_files: dict[Path, int] = {}  # target -> the work file's descriptor, until closed
        try:
            for data, sha256 in zip(items, names, strict=True):
                target = self.path(sha256)
                if target in work_files or self._existing_blob_is_intact(target, sha256,
                                                                         len(data)):
                    continue
                self._make_dirs(target.parent, changed)
                work = target.parent / f".{sha256}.{os.getpid()}.{time.monotonic_ns()}.tmp"
                open_files[target] = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                             _WORK_FILE_MODE)
                work_files[target] = work
                _write_all(open_files[target], data)
            descriptors = list(open_files.values())
            open_files.clear()  # each is closed by its fsync call, whatever happens
            _fsync_together([partial(_fsync_and_close, fd) for fd in descriptors])
            for target in list(work_files):
                work = work_files[target]
                os.chmod(work, BLOB_FILE_MODE)
                os.replace(work, target)
                del work_files[target]
                changed.add(target.parent)
            _fsync_together([partial(fsync_directory, directory)
                             for directory in sorted(changed)])
        except BaseException:
            for fd in open_files.values():
                os.close(fd)
            for work in work_files.values():
                work.unlink(missing_ok=True)
            raise
        return names

    def remove_abandoned_work_files(self, is_alive: Callable[[int], bool]) -> int:
        """Delete temporary files left by a writer process that died before its rename.

        Such a file was never a blob (it never got its name) and its sender was never told
        the message was stored, so it will be sent again.
        """
        removed = 0
        candidates = list(self.root.glob("??/??/.*.tmp"))
        incoming = self.root / _INCOMING
        if incoming.is_dir():
            candidates.extend(incoming.glob("*.tmp"))
        for path in candidates:
            match = _WORK_FILE_PID.search(path.name)
            if match is None or is_alive(int(match.group(1))):
                continue
            path.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("removed %d temporary files left by a stopped writer", removed)
        return removed

    def writer(self) -> BlobWriter:
        """Return a streaming writer that hashes while it writes; use it as a context manager."""
        return BlobWriter(self)

    def _existing_blob_is_intact(self, target: Path, sha256: str, size: int) -> bool:
        """Check a blob that already exists; move it aside if it no longer matches its name."""
        if not target.exists():
            return False
        actual_sha, actual_size = _hash_file(target)
        if actual_sha == sha256 and actual_size == size:
            return True
        damaged_dir = self.root / _DAMAGED
        self._make_dirs(damaged_dir)
        aside = damaged_dir / f"{sha256}.{time.time_ns()}"
        log.error(
            "blob does not match its name; moved aside and rewritten sha256=%s found=%s aside=%s",
            sha256, actual_sha, aside.name,
        )
        os.rename(target, aside)
        fsync_directory(target.parent)
        fsync_directory(damaged_dir)
        return False

    def _publish(self, work: Path, target: Path) -> None:
        """Rename a fsync'd work file to its final name, make it durable and read-only."""
        os.chmod(work, BLOB_FILE_MODE)
        os.replace(work, target)
        fsync_directory(target.parent)

    def _make_dirs(self, directory: Path, changed: set[Path] | None = None) -> None:
        """Create missing directories (0700) and fsync each parent that gained an entry, or,
        given `changed`, add those parents to it for the caller to fsync later."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        for new_dir in reversed(missing):
            try:
                os.mkdir(new_dir, BLOB_DIR_MODE)
            except FileExistsError:
                if not new_dir.is_dir():
                    raise
                continue
            os.chmod(new_dir, BLOB_DIR_MODE)
            if changed is None:
                fsync_directory(new_dir.parent)
            else:
                changed.add(new_dir.parent)


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_together(calls: Sequence[Callable[[], None]]) -> None:
    """Run the fsync calls concurrently and wait for all of them; raise the first error.

    A journaling file system (ext4, XFS) commits fsyncs that wait at the same time in one
    journal commit and one cache flush; one after the other, each pays for its own.
    """
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    pool = _fsync_pool()
    futures = [pool.submit(call) for call in calls]
    wait(futures)  # all of them, even after a failure: each call owns a descriptor
    for future in futures:
        future.result()


def _fsync_pool() -> ThreadPoolExecutor:
    """The process's threads for concurrent fsyncs (started when first needed)."""
    global _FSYNC_POOL  # one pool per process, made on first use
    with _FSYNC_POOL_LOCK:
        if _FSYNC_POOL is None:
            _FSYNC_POOL = ThreadPoolExecutor(max_workers=_FSYNC_THREADS,
                                             thread_name_prefix="chikanemail-fsync")
        return _FSYNC_POOL


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of the bytes to the file descriptor."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class BlobWriter:
    """Writes one blob from chunks, hashing as it goes, so a large part is never held whole.

    The work file lives in `.incoming/` until `commit` names it by its hash; `abort`, a failed
    `commit`, or leaving a `with` block without a commit remove it. Calls may come from
    different threads (an SMTP session writes in worker threads and may abort from another
    one when its client goes away): they take turns, so `abort` waits for a write in
    progress instead of closing the file under it.
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._digest = hashlib.sha256()
        self._lock = threading.Lock()
        self.size = 0
        self.sha256: str | None = None
        incoming = store.root / _INCOMING
        store._make_dirs(incoming)
        for _ in range(_WORK_NAME_TRIES):
            # `<pid>.<ns>.tmp`: `remove_abandoned_work_files` finds it if this process dies.
            self._work = incoming / f"{os.getpid()}.{time.monotonic_ns()}.tmp"
            try:
                self._fd: int | None = os.open(
                    self._work, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _WORK_FILE_MODE
                )
                break
            except FileExistsError:  # another writer of this process, in the same nanosecond
                continue
        else:
            raise BlobStoreError(f"no free work file name in {incoming}")

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append a chunk to the blob; if that fails (disk full) the writer is aborted."""
        with self._lock:
            if self._fd is None:
                raise BlobStoreError("blob writer is already closed")
            try:
                view = memoryview(chunk)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except BaseException:
                self._discard()
                raise
            self._digest.update(chunk)
            self.size += len(chunk)

    def commit(self) -> str:
        """Make the written bytes a durable, read-only blob and return its SHA-256.

        If this fails, the work file is gone too: nothing is left in `.incoming/`.
        """
        with self._lock:
            if self._fd is None:
                raise BlobStoreError("blob writer is already closed")
            fd, self._fd = self._fd, None
            try:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                sha256 = self._digest.hexdigest()
                target = self._store.path(sha256)
                if self._store._existing_blob_is_intact(target, sha256, self.size):
                    self._work.unlink()
                else:
                    self._store._make_dirs(target.parent)
                    self._store._publish(self._work, target)
            except BaseException:
                self._discard()
                raise
            self.sha256 = sha256
            return sha256

    def abort(self) -> None:
        """Throw the partly written blob away (after a write in progress has finished)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)
        finally:
            if self.sha256 is None:
                self._work.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or self.sha256 is None:
            self.abort()
