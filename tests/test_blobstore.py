"""The content-addressed evidence store."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from storage.blobstore import BlobStore, BlobStoreError


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    blob_store = BlobStore(tmp_path / "blobs")
    blob_store.ensure_root()
    return blob_store


def test_put_names_the_blob_by_its_sha256_and_keeps_exact_bytes(store: BlobStore) -> None:
    data = b"From: a@b\r\n\r\n\x00\xff bytes, CRLF and all\r\n"
    sha256 = store.put(data)
    assert sha256 == hashlib.sha256(data).hexdigest()
    path = store.path(sha256)
    assert path == store.root / sha256[:2] / sha256[2:4] / sha256
    assert path.read_bytes() == data
    assert store.exists(sha256)
    assert store.read_bytes(sha256) == data


def test_blobs_are_read_only_and_folders_owner_only(store: BlobStore) -> None:
    sha256 = store.put(b"evidence")
    path = store.path(sha256)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    for folder in (path.parent, path.parent.parent, store.root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_putting_the_same_bytes_again_changes_nothing(store: BlobStore) -> None:
    sha256 = store.put(b"same")
    before = store.path(sha256).stat()
    assert store.put(b"same") == sha256
    after = store.path(sha256).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert list(store.iter_all()) == [sha256]


def test_a_damaged_blob_is_moved_aside_and_rewritten(store: BlobStore) -> None:
    sha256 = store.put(b"original evidence")
    path = store.path(sha256)
    os.chmod(path, 0o600)
    path.write_bytes(b"tampered")
    assert store.put(b"original evidence") == sha256
    assert path.read_bytes() == b"original evidence"
    aside = list((store.root / ".damaged").iterdir())
    assert len(aside) == 1 and aside[0].read_bytes() == b"tampered"


def test_streaming_writer_hashes_while_writing(store: BlobStore) -> None:
    chunks = [os.urandom(64 * 1024) for _ in range(20)]
    with store.writer() as writer:
        for chunk in chunks:
            writer.write(chunk)
        sha256 = writer.commit()
    whole = b"".join(chunks)
    assert sha256 == hashlib.sha256(whole).hexdigest()
    assert writer.size == len(whole)
    assert store.read_bytes(sha256) == whole
    assert list((store.root / ".incoming").iterdir()) == []


def test_an_aborted_stream_leaves_nothing(store: BlobStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(b"half a part")
        raise RuntimeError("parser died")
    assert list(store.iter_all()) == []
    assert list((store.root / ".incoming").iterdir()) == []


def test_iter_all_lists_every_blob_in_name_order(store: BlobStore) -> None:
    names = {store.put(f"blob {i}".encode()) for i in range(30)}
    assert list(store.iter_all()) == sorted(names)


def test_names_that_are_not_sha256_are_refused(store: BlobStore) -> None:
    for bad in ("../../etc/passwd", "ABC", "0" * 63, "g" * 64, ("A" * 64)):
        with pytest.raises(BlobStoreError):
            store.path(bad)


def test_opening_a_missing_blob_is_a_clear_error(store: BlobStore) -> None:
    with pytest.raises(BlobStoreError, match="missing"):
        store.open("0" * 64)
