"""The content-addressed evidence store."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import stat
import threading
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


def incoming(store: BlobStore) -> list[Path]:
    return sorted((store.root / ".incoming").iterdir())


def test_a_stream_is_written_from_several_threads_and_published_read_only(
        store: BlobStore) -> None:
    writer = store.writer()
    chunks = [os.urandom(256 * 1024) for _ in range(4)]
    for chunk in chunks:  # one thread after the other, as an SMTP session hands them over
        worker = threading.Thread(target=writer.write, args=(bytearray(chunk),))
        worker.start()
        worker.join()
    sha256 = writer.commit()
    assert store.read_bytes(sha256) == b"".join(chunks)
    assert stat.S_IMODE(store.path(sha256).stat().st_mode) == 0o400
    assert incoming(store) == []
    writer.abort()  # after a commit: changes nothing
    assert store.exists(sha256)


def test_a_stream_of_bytes_already_stored_leaves_one_blob(store: BlobStore) -> None:
    sha256 = store.put(b"twice")
    with store.writer() as writer:
        writer.write(b"twi")
        writer.write(b"ce")
        assert writer.commit() == sha256
    assert list(store.iter_all()) == [sha256]
    assert incoming(store) == []


def test_a_failed_write_aborts_the_stream(store: BlobStore) -> None:
    writer = store.writer()
    writer.write(b"x" * 1000)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # a disk that is full at 4 KiB
    try:
        with pytest.raises(OSError):
            writer.write(b"y" * 8192)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert incoming(store) == []
    with pytest.raises(BlobStoreError, match="closed"):
        writer.write(b"more")
    writer.abort()  # harmless when already thrown away


def test_a_failed_commit_leaves_no_work_file(store: BlobStore) -> None:
    data = b"cannot be published"
    sha256 = hashlib.sha256(data).hexdigest()
    (store.root / sha256[:2]).write_bytes(b"a file where the fan-out folder goes")
    writer = store.writer()
    writer.write(data)
    with pytest.raises(OSError):
        writer.commit()
    assert writer.sha256 is None
    assert incoming(store) == []
    assert not store.exists(sha256)


def test_a_stream_left_by_a_dead_process_is_removed_at_start(store: BlobStore) -> None:
    writer = store.writer()
    writer.write(b"half a message")
    (work,) = incoming(store)
    assert work.name.startswith(f"{os.getpid()}.")
    assert store.remove_abandoned_work_files(is_alive=lambda pid: pid == os.getpid()) == 0
    assert store.remove_abandoned_work_files(is_alive=lambda pid: False) == 1
    assert incoming(store) == []
    writer.abort()
