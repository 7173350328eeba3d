"""Verify: re-hash every blob of both stores, hold them against their rows, walk the audit chain.

A run reads each file of the evidence store (`blobs/`) and of the derived store (`derived/`)
in a thread pool (hashlib lets go of the GIL while it hashes), then compares what it found
with what the rows name. While it runs, a daemon may be storing new mail and retention may
be deleting old, so the rows are read only AFTER the files were hashed, a file is called a
stray only when it is older than `RECENT_SECONDS` and still there, and a blob is called
missing only when it is still absent at the end. Each run is kept as a `verify_run` row
with a `verified` audit event in the same transaction, and logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import null, select

from storage import audit
from storage.blob_columns import BLOB_COLUMNS, DERIVED_STORE, EVIDENCE_STORE
from storage.blobstore import BLOB_FILE_MODE, LOCK_FILE_NAME, BlobStore, is_sha256_hex
from storage.database import Database
from storage.models import BlobDeletion, VerifyRun, utc_now

log = logging.getLogger("chikanemail.storage.verify")

# A file younger than this may be a blob whose row is not committed yet: never a stray.
RECENT_SECONDS = 600.0
# The blob store's own work areas: `.incoming/` (streams being written), `.damaged/`.
_WORK_AREAS = frozenset({".incoming", ".damaged"})
# The store's own file at its root: the lock retention and writers flock().
_STORE_FILES = frozenset({LOCK_FILE_NAME})
_READ_SIZE = 1024 * 1024
# Files handed to the pool at a time, per worker thread (keeps memory flat on big stores).
_IN_FLIGHT_PER_WORKER = 4
_LOGGED_PROBLEMS = 5
_NAMED_ROWS = 10


class ProblemKind(StrEnum):
    """What is wrong with one file or one referenced blob."""

    MISMATCH = "mismatch"  # the content does not hash to the file's name
    SIZE = "size-mismatch"  # the file's size is not the size its row says
    MISSING = "missing"  # a row names a blob that is not in the store
    STRAY = "stray"  # a blob that no row names
    UNEXPECTED = "unexpected"  # a file or folder that is not a blob where blobs are kept
    MODE = "mode"  # a blob that is not read-only (0400)
    UNREADABLE = "unreadable"  # a blob that could not be read


@dataclass(frozen=True)
class Problem:
    """One finding: its kind, the store, the blob's name (if it has one), where, and why."""

    kind: ProblemKind
    store: str
    sha256: str | None
    path: str  # relative to the data directory
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The problem as plain JSON values."""
        return {**asdict(self), "kind": self.kind.value}


@dataclass(frozen=True)
class VerifyProgress:
    """How far the hashing is: files and bytes done of those found."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ProgressCallback = Callable[[VerifyProgress], None]


@dataclass(frozen=True)
class StoreCheck:
    """What re-hashing both stores found."""

    blobs: int
    bytes: int
    problems: list[Problem]


@dataclass(frozen=True)
class VerifyResult:
    """One verify run: blob problems, the audit chain, counts, time, and its `verify_run` id."""

    blobs: int
    bytes: int
    seconds: float
    problems: list[Problem]
    chain: audit.ChainCheck
    started_at: datetime
    run_id: int | None = None

    @property
    def ok(self) -> bool:
        """Whether every blob is intact and accounted for and the chain holds."""
        return not self.problems and self.chain.ok

    @property
    def problem_count(self) -> int:
        """Blob problems, plus one for a broken chain."""
        return len(self.problems) + (0 if self.chain.ok else 1)

    def problems_json(self) -> list[dict[str, Any]]:
        """Every problem as JSON, the broken audit link (if any) last, as `verify_run` keeps it."""
        found = [problem.as_json() for problem in self.problems]
        broken = self.chain.broken
        if broken is not None:
            found.append({"kind": "audit-chain", "seq": broken.seq, "action": broken.action,
                          "detail": broken.reason})
        return found

    def as_json(self) -> dict[str, Any]:
        """The whole result as plain JSON values."""
        broken = self.chain.broken
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "blobs": self.blobs,
            "bytes": self.bytes,
            "problems": [problem.as_json() for problem in self.problems],
            "audit": {
                "ok": self.chain.ok,
                "events": self.chain.events,
                "head_seq": self.chain.head_seq,
                "head_hash": self.chain.head_hash,
                "broken": None if broken is None else {
                    "seq": broken.seq, "action": broken.action, "reason": broken.reason},
            },
        }


# -- finding the files -----------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """A blob-named file at its place in a store."""

    store: str
    path: Path
    sha256: str
    size: int  # from the directory walk, for the progress totals


@dataclass
class _Walk:
    candidates: list[_Candidate] = field(default_factory=list)
    unexpected: list[tuple[str, Path, float]] = field(default_factory=list)  # store, path, mtime


def _is_fan_out(name: str) -> bool:
    return len(name) == 2 and all(char in "0123456789abcdef" for char in name)


def _walk_store(store: str, root: Path, walk: _Walk) -> None:
    """List the blobs of one store and anything that is not a blob where blobs are kept."""
    if not root.is_dir():
        return
    for first in _scan(root):
        if first.name in _WORK_AREAS and first.is_dir(follow_symlinks=False):
            continue
        if first.name in _STORE_FILES and first.is_file(follow_symlinks=False):
            continue
        if not (_is_fan_out(first.name) and first.is_dir(follow_symlinks=False)):
            walk.unexpected.append((store, Path(first.path), _mtime(first)))
            continue
        for second in _scan(Path(first.path)):
            if not (_is_fan_out(second.name) and second.is_dir(follow_symlinks=False)):
                walk.unexpected.append((store, Path(second.path), _mtime(second)))
                continue
            prefix = first.name + second.name
            for entry in _scan(Path(second.path)):
                if not (is_sha256_hex(entry.name) and entry.name.startswith(prefix)
                        and entry.is_file(follow_symlinks=False)):
                    walk.unexpected.append((store, Path(entry.path), _mtime(entry)))
                    continue
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # deleted since the listing (retention)
                    size = 0
                walk.candidates.append(_Candidate(store, Path(entry.path), entry.name, size))


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except FileNotFoundError:  # removed while we walked
        return []


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return time.time()  # gone already: counts as recent, so it is not reported


# -- hashing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hashed:
    candidate: _Candidate
    sha256: str | None  # None: vanished or unreadable
    size: int
    mode: int
    mtime: float
    error: str | None = None


def hash_file(path: Path) -> tuple[str, int, os.stat_result]:
    """The SHA-256 (hex) and size of a file's content, and its status at opening."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as handle:
        status = os.fstat(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        digest = hashlib.sha256()
        buffer = bytearray(_READ_SIZE)
        view = memoryview(buffer)
        size = 0
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size, status


def _hash_candidate(candidate: _Candidate) -> _Hashed | None:
    try:
        sha256, size, status = hash_file(candidate.path)
    except FileNotFoundError:
        return None  # deleted while we ran (retention): judged again against the rows
    except OSError as error:
        return _Hashed(candidate, None, 0, 0, 0.0, error.strerror or type(error).__name__)
    return _Hashed(candidate, sha256, size, stat.S_IMODE(status.st_mode), status.st_mtime)


def _hash_all(candidates: list[_Candidate], workers: int,
              on_progress: ProgressCallback | None) -> Iterator[_Hashed | None]:
    """Hash the files in a thread pool, a bounded number at a time; report progress here."""
    total_bytes = sum(candidate.size for candidate in candidates)
    files_done = bytes_done = 0
    pending: set[Future[_Hashed | None]] = set()
    queue = iter(candidates)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        while True:
            for candidate in queue:
                pending.add(pool.submit(_hash_candidate, candidate))
                if len(pending) >= workers * _IN_FLIGHT_PER_WORKER:
                    break
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                hashed = future.result()
                files_done += 1
                bytes_done += hashed.candidate.size if hashed is not None else 0
                yield hashed
            if on_progress is not None:
                on_progress(VerifyProgress(files_done, len(candidates), bytes_done,
                                           total_bytes))


# -- the rows --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reference:
    owner: str  # "message 12", "evidence 40", "message_timestamp 3"
    column: str
    size: int | None  # what the row says the blob's size is, where it says so


def _references(database: Database) -> dict[tuple[str, str], list[_Reference]]:
    """Every blob a row names, by (store, sha256)."""
    found: dict[tuple[str, str], list[_Reference]] = {}

    def add(store: str, sha256: str | None, owner: str, column: str,
            size: int | None = None) -> None:
        if sha256:
            found.setdefault((store, sha256), []).append(_Reference(owner, column, size))

    with database.read() as session:
        for named in BLOB_COLUMNS:
            size_column = named.size if named.size is not None else null()
            for pk, sha256, size in session.execute(
                    select(named.row_id, named.blob, size_column)
                    .where(named.blob.is_not(None))):
                add(named.store, sha256, f"{named.table} {pk}", named.name, size)
    return found


def _pending_deletions(database: Database) -> set[tuple[str, str]]:
    with database.read() as session:
        return {(store, sha256) for store, sha256 in session.execute(
            select(BlobDeletion.store, BlobDeletion.sha256))}


def _named_by(references: list[_Reference]) -> str:
    names = [f"{reference.owner} ({reference.column})" for reference in references]
    more = len(names) - _NAMED_ROWS
    return ", ".join(names[:_NAMED_ROWS]) + (f" and {more} more" if more > 0 else "")


# -- the check -------------------------------------------------------------------------


def check_stores(
    database: Database,
    evidence_store: BlobStore,
    derived_store: BlobStore,
    data_dir: Path,
    *,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    recent_seconds: float = RECENT_SECONDS,
) -> StoreCheck:
    """Re-hash every file of both stores and hold the stores against the rows.

    Finds mismatches, wrong sizes and modes, unreadable files, blobs the rows name that are
    not there, strays (no row names them) and files that are not blobs. Changes nothing.
    """
    stores = {EVIDENCE_STORE: evidence_store, DERIVED_STORE: derived_store}
    walk = _Walk()
    for name, store in stores.items():
        _walk_store(name, store.root, walk)
    hashed = [item for item in _hash_all(walk.candidates, workers or os.cpu_count() or 1,
                                         on_progress) if item is not None]
    # Read only now: a blob stored while we hashed has its row by the time we look.
    references = _references(database)
    deletions = _pending_deletions(database)
    fresh_before = time.time() - recent_seconds

    def where(path: Path) -> str:
        try:
            return path.relative_to(data_dir).as_posix()
        except ValueError:
            return str(path)

    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for item in hashed:
        candidate = item.candidate
        key = (candidate.store, candidate.sha256)
        seen.add(key)
        problems.extend(_file_problems(item, references.get(key, []), where(candidate.path)))
        if (key not in references and key not in deletions and item.mtime < fresh_before
                and candidate.path.exists()):
            problems.append(Problem(ProblemKind.STRAY, candidate.store, candidate.sha256,
                                    where(candidate.path), "no row names this blob"))
    for (store_name, sha256), rows in references.items():
        path = stores[store_name].path(sha256)
        if (store_name, sha256) not in seen and not path.is_file():
            problems.append(Problem(ProblemKind.MISSING, store_name, sha256, where(path),
                                    f"named by {_named_by(rows)}"))
    for store_name, path, mtime in walk.unexpected:
        if mtime < fresh_before and path.exists():
            kind = "folder" if path.is_dir() else "file"
            problems.append(Problem(ProblemKind.UNEXPECTED, store_name, None, where(path),
                                    f"a {kind} that is not a blob where blobs are kept"))
    problems.sort(key=lambda problem: (problem.store, problem.path, problem.kind))
    return StoreCheck(len(hashed), sum(item.size for item in hashed), problems)


def _file_problems(item: _Hashed, references: list[_Reference], path: str) -> Iterable[Problem]:
    candidate = item.candidate
    if item.sha256 is None:
        yield Problem(ProblemKind.UNREADABLE, candidate.store, candidate.sha256, path,
                      f"cannot be read: {item.error}")
        return
    if item.sha256 != candidate.sha256:
        yield Problem(ProblemKind.MISMATCH, candidate.store, candidate.sha256, path,
                      f"its content hashes to {item.sha256}")
    if item.mode != BLOB_FILE_MODE:
        yield Problem(ProblemKind.MODE, candidate.store, candidate.sha256, path,
                      f"mode {item.mode:04o}, not {BLOB_FILE_MODE:04o}")
    for reference in references:
        if reference.size is not None and reference.size != item.size:
            yield Problem(ProblemKind.SIZE, candidate.store, candidate.sha256, path,
                          f"{item.size} bytes on disk, {reference.owner} says {reference.size}")


# -- a run -----------------------------------------------------------------------------


def verify(
    database: Database,
    evidence_store: BlobStore,
    derived_store: BlobStore,
    data_dir: Path,
    *,
    trigger: str = "cli",
    actor: str = audit.SYSTEM_ACTOR,
    now: datetime | None = None,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
    recent_seconds: float = RECENT_SECONDS,
) -> VerifyResult:
    """Check both stores and the audit chain; keep the run (`verify_run` row and `verified`
    event, one transaction) and log its outcome. `now` is when the run counts as started."""
    started_at = now or utc_now()
    clock = time.monotonic()
    stores = check_stores(database, evidence_store, derived_store, data_dir, workers=workers,
                          on_progress=on_progress, recent_seconds=recent_seconds)
    chain = audit.check_chain(database)
    result = VerifyResult(stores.blobs, stores.bytes, time.monotonic() - clock,
                          stores.problems, chain, started_at)
    run_id = _keep(database, result, trigger=trigger, actor=actor)
    result = VerifyResult(result.blobs, result.bytes, result.seconds, result.problems,
                          result.chain, result.started_at, run_id)
    _log(result)
    return result


def _keep(database: Database, result: VerifyResult, *, trigger: str, actor: str) -> int:
    with database.write() as session:
        row = VerifyRun(started_at=result.started_at,
                        finished_at=result.started_at + timedelta(seconds=result.seconds),
                        ok=result.ok, trigger=trigger, blobs_checked=result.blobs,
                        bytes_checked=result.bytes, events_checked=result.chain.events,
                        problems=result.problems_json())
        session.add(row)
        audit.record(session, "verified", actor=actor,
                     details={"ok": result.ok, "blobs": result.blobs, "bytes": result.bytes,
                              "problems": result.problem_count})
        session.flush()
        return row.id


def _log(result: VerifyResult) -> None:
    """INFO when all is well, ERROR with counts and the first problems (kinds and hashes)."""
    mib = result.bytes / (1024 * 1024)
    if result.ok:
        log.info("verify ok: %d blobs, %.1f MiB in %.1f s; audit chain holds (%d events)",
                 result.blobs, mib, result.seconds, result.chain.events)
        return
    kinds = Counter(problem.kind.value for problem in result.problems)
    broken = result.chain.broken
    first = "; ".join(f"{problem.kind.value} {problem.store} {problem.sha256 or '-'}"
                      for problem in result.problems[:_LOGGED_PROBLEMS])
    log.error(
        "verify failed: %d problem(s) in %d blobs (%.1f MiB, %.1f s): %s; audit chain %s; "
        "first: %s",
        result.problem_count, result.blobs, mib, result.seconds,
        ", ".join(f"{kind}={count}" for kind, count in sorted(kinds.items())) or "no blob problems",
        "holds" if broken is None else f"broken at event {broken.seq} ({broken.action or '-'}): "
                                       f"{broken.reason}",
        first or "-",
    )


def last_verify_run(database: Database) -> VerifyRun | None:
    """The most recently finished verify run, if any (detached)."""
    with database.read() as session:
        row = session.execute(
            select(VerifyRun).where(VerifyRun.finished_at.is_not(None))
            .order_by(VerifyRun.finished_at.desc(), VerifyRun.id.desc()).limit(1)
        ).scalar_one_or_none()
        if row is not None:
            session.expunge(row)
    return row


def recent_verify_runs(database: Database, limit: int = 10) -> list[VerifyRun]:
    """The newest verify runs, newest first, finished or not (detached)."""
    with database.read() as session:
        rows = list(session.execute(
            select(VerifyRun).order_by(VerifyRun.started_at.desc(), VerifyRun.id.desc())
            .limit(limit)).scalars())
        session.expunge_all()
    return rows


def verify_if_due(
    database: Database,
    evidence_store: BlobStore,
    derived_store: BlobStore,
    data_dir: Path,
    every_days: float,
    now: datetime | None = None,
) -> VerifyResult | None:
    """Run verify (trigger `scheduler`) when no run has finished within `every_days` of `now`;
    return its result, or None when it was not due."""
    now = now or utc_now()
    last = last_verify_run(database)
    if last is not None and last.finished_at is not None and (
            now - last.finished_at < timedelta(days=every_days)):
        return None
    return verify(database, evidence_store, derived_store, data_dir, trigger="scheduler",
                  now=now)
