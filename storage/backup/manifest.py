"""The manifest of a snapshot: written last, so a snapshot without one is incomplete."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.blobstore import fsync_directory, is_sha256_hex
from storage.errors import ChikanemailError

MANIFEST_NAME = "manifest.json"
FORMAT = "chikanemail-backup/1"
# Where each store's blobs go inside the snapshot folder (the same fan-out as the store).
STORE_FOLDERS = ("blobs", "derived")


class BackupError(ChikanemailError):
    """A backup could not be taken or a snapshot cannot be restored."""


@dataclass(frozen=True)
class BlobEntry:
    """One blob of the snapshot: its store, SHA-256, size and kind (raw, part, derived, …)."""

    store: str
    sha256: str
    size: int
    kind: str

    @property
    def relative_path(self) -> str:
        """Where the blob is inside the snapshot folder."""
        return f"{self.store}/{self.sha256[0:2]}/{self.sha256[2:4]}/{self.sha256}"


@dataclass(frozen=True)
class FileEntry:
    """A file the installation needs besides its data (the config, a TLS key): the config
    key naming it, where it was, and where its copy is in the snapshot."""

    key: str
    original_path: str
    relative_path: str
    sha256: str
    size: int
    # The original's permission bits and owner: a restore puts the file back with them.
    mode: int = 0o600
    owner: str = ""
    group: str = ""


@dataclass(frozen=True)
class Manifest:
    """Everything a restore needs to know about one snapshot."""

    created_at: datetime
    database_kind: str  # "sqlite" or "postgresql"
    database_file: str  # relative to the snapshot folder
    database_sha256: str
    database_size: int
    audit_seq: int
    audit_hash: str
    blobs: tuple[BlobEntry, ...]
    files: tuple[FileEntry, ...] = ()
    source_schema: str | None = None  # PostgreSQL: the schema the rows came from
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The manifest as plain JSON values."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["blobs"] = [asdict(blob) for blob in self.blobs]
        data["files"] = [asdict(item) for item in self.files]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Read a manifest from its JSON values."""
        if data.get("format") != FORMAT:
            raise BackupError(f"not a snapshot this version can read: format "
                              f"{data.get('format')!r}, expected {FORMAT!r}")
        blobs = tuple(BlobEntry(**blob) for blob in data["blobs"])
        for blob in blobs:
            if blob.store not in STORE_FOLDERS or not is_sha256_hex(blob.sha256):
                raise BackupError(f"manifest names an impossible blob: {blob.store} {blob.sha256}")
        return cls(
            created_at=datetime.fromisoformat(data["created_at"]),
            database_kind=data["database_kind"], database_file=data["database_file"],
            database_sha256=data["database_sha256"], database_size=data["database_size"],
            audit_seq=data["audit_seq"], audit_hash=data["audit_hash"], blobs=blobs,
            files=tuple(FileEntry(**item) for item in data["files"]),
            source_schema=data.get("source_schema"), extra=data.get("extra", {}),
        )


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write the manifest atomically (work file, fsync, rename, fsync of the folder)."""
    target = folder / MANIFEST_NAME
    work = folder / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    fd = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as handle:
            json.dump(manifest.as_json(), handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(work, target)
    fsync_directory(folder)
    return target


def read_manifest(folder: Path) -> Manifest:
    """The snapshot's manifest; a folder without one holds no complete snapshot."""
    path = folder / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise BackupError(f"{folder} holds no {MANIFEST_NAME}: not a complete snapshot "
                          "(an interrupted backup writes none)") from error
    try:
        return Manifest.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(f"{path} cannot be read: {error}") from error
