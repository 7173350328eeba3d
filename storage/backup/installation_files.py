"""The files an installation needs besides its data (the config, TLS key, passwords), as a
snapshot keeps them under `files/`: checked against the manifest, and put back where they
were, with their permission bits and owner, when nothing is there yet.

A file already at its place is never overwritten: when it differs from the snapshot's copy
it is left alone and the copy named, for the admin to compare.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from storage.backup.copying import (
    HashMismatch,
    copy_verified,
    fsync_folders,
    hash_file,
    make_folders,
)
from storage.backup.manifest import BackupError, FileEntry, Manifest

# Folders a restore creates for a file (e.g. /etc/chikanemail): readable as /etc is; the
# files in them keep their own, stricter, modes.
FOLDER_MODE = 0o755

Outcome = Literal["restored", "already in place", "differs", "failed"]


@dataclass(frozen=True)
class PlacedFile:
    """What a restore did with one file: put it back, found it in place, or found another."""

    entry: FileEntry
    outcome: Outcome
    copy: Path
    problem: str = ""  # why it failed


def user_name(uid: int) -> str:
    """The user name of `uid`, or "" when this machine has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def group_name(gid: int) -> str:
    """The group name of `gid`, or "" when this machine has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def check_file_copies(folder: Path, manifest: Manifest) -> None:
    """Refuse a snapshot whose copy of a file is missing or does not match the manifest."""
    for entry in manifest.files:
        copy = folder / entry.relative_path
        try:
            sha256, size = hash_file(copy)
        except FileNotFoundError:
            raise BackupError(f"{entry.key}: the copy {entry.relative_path} is missing from "
                              "the snapshot: restore refused") from None
        if (sha256, size) != (entry.sha256, entry.size):
            raise BackupError(f"{entry.key}: the copy {entry.relative_path} does not match "
                              "the manifest: restore refused")


def config_copy(folder: Path, manifest: Manifest) -> tuple[Path, Path] | None:
    """The snapshot's copy of the config file and where the file was, if it holds one."""
    for entry in manifest.files:
        if entry.key == "config":
            return folder / entry.relative_path, Path(entry.original_path)
    return None


def put_files_back(folder: Path, manifest: Manifest) -> list[PlacedFile]:
    """Put each file of the snapshot back at its original path where none is; report what
    was found at each place."""
    placed: list[PlacedFile] = []
    changed: set[Path] = set()
    for entry in manifest.files:
        copy = folder / entry.relative_path
        target = Path(entry.original_path)
        try:
            placed.append(PlacedFile(entry, _place(entry, copy, target, changed), copy))
        except OSError as error:
            placed.append(PlacedFile(entry, "failed", copy, error.strerror or str(error)))
    fsync_folders(changed)
    return placed


def _place(entry: FileEntry, copy: Path, target: Path, changed: set[Path]) -> Outcome:
    if target.exists():
        same = hash_file(target) == (entry.sha256, entry.size)
        return "already in place" if same else "differs"
    make_folders(target.parent, changed, FOLDER_MODE)
    try:
        copy_verified(copy, target, sha256=entry.sha256, size=entry.size, changed=changed,
                      mode=entry.mode & 0o7777)
    except HashMismatch as error:
        raise BackupError(f"{entry.key}: the copy {copy} changed while it was restored "
                          f"({error})") from error
    _give_to_owner(target, entry)
    return "restored"


def _give_to_owner(target: Path, entry: FileEntry) -> None:
    """As root, give the file back to its owner and group when this machine has them."""
    if os.geteuid() != 0:
        return
    uid = gid = -1
    try:
        if entry.owner:
            uid = pwd.getpwnam(entry.owner).pw_uid
    except KeyError:
        pass
    try:
        if entry.group:
            gid = grp.getgrnam(entry.group).gr_gid
    except KeyError:
        pass
    if uid != -1 or gid != -1:
        os.chown(target, uid, gid)
