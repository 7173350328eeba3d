"""IMAP intake stores a FETCH batch together: its blobs fsync'd together and its rows in one
transaction, still only then moved. A failure in the middle of a batch stores and moves the
mails before the failing one, leaves it and the rest in the folder, leaves no row without its
blob and no work file; the next catch-up takes the rest in once. Against a real Dovecot, on
SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intake.parse.headers import summarize_headers
from intake.receive import accept
from intake.receive.imap import catchup as imap_catchup
from intake.receive.imap.catchup import FolderIntake
from intake.receive.imap.connection import signed_in
from intake.receive.imap.folders import (
    ensure_folder,
    move_messages,
    move_method,
    select_uidvalidity,
)
from intake.service.daemon import Services
from intake.service.settings import ImapMailbox
from storage import blobstore
from storage.audit import check_chain, iter_events
from storage.blobstore import BlobStore
from storage.imap_state import FolderPosition, begin_folder, folder_status
from storage.messages import DeliveryEnvelope, HeaderSummary, list_messages, record_deliveries
from tests.dovecot import Dovecot
from tests.receive.test_imap_support import (
    PROCESSED,
    append,
    folder_contents,
    mailbox_for,
    make_mail,
    services_for,
)

MAX_BYTES = 64 * 1024


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[Services]:
    _config, built = services_for(tmp_path, database_url)
    yield built
    built.close()


@pytest.fixture
def mailbox(dovecot: Dovecot, tmp_path: Path) -> ImapMailbox:
    return mailbox_for(dovecot, tmp_path)


def catch_up(mailbox: ImapMailbox, services: Services, batch_messages: int = 50,
             ) -> FolderPosition:
    """One catch-up of INBOX, as the receiver's thread does it; raises what it raises."""
    intake = FolderIntake(mailbox, services.intake, MAX_BYTES, batch_messages=batch_messages)
    with signed_in(mailbox, None) as client:
        ensure_folder(client, PROCESSED)
        uidvalidity = select_uidvalidity(client, "INBOX")
        position = begin_folder(services.database, "intake", "INBOX", uidvalidity)
        position, _stored = intake.catch_up(client, position, PROCESSED, move_method(client))
    return position


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def rows_by_sha(services: Services) -> dict[str, int]:
    """times_seen of every row, by the SHA-256 of its bytes."""
    return {row.sha256: row.times_seen for row in list_messages(services.database)}


def work_files(store: BlobStore) -> list[Path]:
    return [path for path in store.root.rglob("*.tmp")]


def assert_every_row_has_its_blob(services: Services) -> None:
    for row in list_messages(services.database):
        assert sha(services.store.read_bytes(row.sha256)) == row.sha256


def test_a_batch_is_committed_in_one_transaction_then_moved(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mails = [make_mail(f"batch {n}", body_bytes=3000) for n in range(6)]
    append(dovecot, *mails)
    transactions: list[int] = []

    def counting(database: Any, deliveries: Any, **kwargs: Any) -> Any:
        transactions.append(len(deliveries))
        # Nothing has left the folder while the batch's rows are not committed.
        assert folder_contents(dovecot, PROCESSED) == []
        return record_deliveries(database, deliveries, **kwargs)

    monkeypatch.setattr(accept, "record_deliveries", counting)
    position = catch_up(mailbox, services)
    assert transactions == [6]
    assert position.last_uid == 6
    assert folder_contents(dovecot, "INBOX") == []
    assert folder_contents(dovecot, PROCESSED) == mails
    assert rows_by_sha(services) == {sha(mail): 1 for mail in mails}
    assert_every_row_has_its_blob(services)
    received = [event.message_sha256 for event in iter_events(services.database)
                if event.action == "received"]
    assert received == [sha(mail) for mail in mails]  # in UID order, as one by one
    assert check_chain(services.database).ok


def test_each_batch_is_moved_after_its_rows_are_committed_and_in_order(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mails = [make_mail(f"pipelined {n}") for n in range(7)]
    append(dovecot, *mails)
    moves: list[list[int]] = []

    def checking(client: Any, uids: Any, folder: str, method: str) -> None:
        stored = rows_by_sha(services)
        assert all(stored.get(sha(mails[uid - 1])) == 1 for uid in uids)
        moves.append(list(uids))
        move_messages(client, uids, folder, method)

    monkeypatch.setattr(imap_catchup, "move_messages", checking)
    assert catch_up(mailbox, services, batch_messages=3).last_uid == 7
    assert moves == [[1, 2, 3], [4, 5, 6], [7]]
    assert folder_contents(dovecot, PROCESSED) == mails
    assert_every_row_has_its_blob(services)


def test_a_failure_in_the_middle_of_a_batch_keeps_the_rest_in_the_folder(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mails = [make_mail(f"mail {n}" if n != 3 else "poison") for n in range(5)]
    append(dovecot, *mails)

    def failing_on_poison(raw: bytes) -> HeaderSummary:
        if b"Subject: poison" in raw:
            raise RuntimeError("a step that fails on this mail")
        return summarize_headers(raw)

    monkeypatch.setattr(accept, "summarize_headers", failing_on_poison)
    with pytest.raises(RuntimeError, match="fails on this mail"):
        catch_up(mailbox, services, batch_messages=2)  # batches [1, 2], [3, 4], [5]
    # [1, 2] went in together; [3, 4] failed together, and one by one 3 went in before 4
    # failed; [5] waits behind it.
    assert folder_contents(dovecot, PROCESSED) == mails[:3]
    assert folder_contents(dovecot, "INBOX") == mails[3:]
    assert rows_by_sha(services) == {sha(mail): 1 for mail in mails[:3]}
    status = folder_status(services.database, "intake", "INBOX")
    assert status is not None and status.last_uid == 3
    assert_every_row_has_its_blob(services)
    assert work_files(services.store) == []

    monkeypatch.setattr(accept, "summarize_headers", summarize_headers)
    assert catch_up(mailbox, services).last_uid == 5
    assert folder_contents(dovecot, "INBOX") == []
    assert folder_contents(dovecot, PROCESSED) == mails
    assert rows_by_sha(services) == {sha(mail): 1 for mail in mails}
    assert_every_row_has_its_blob(services)
    assert check_chain(services.database).ok


def test_a_disk_failure_while_writing_a_batch_commits_no_row_of_it(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mails = [make_mail(f"disk {n}") for n in range(5)]
    append(dovecot, *mails)
    doomed = sha(mails[3])
    fsync_and_close = blobstore._fsync_and_close

    def failing_for_doomed(fd: int) -> None:
        if doomed in os.readlink(f"/proc/self/fd/{fd}"):
            os.close(fd)
            raise OSError(5, "Input/output error")
        fsync_and_close(fd)

    monkeypatch.setattr(blobstore, "_fsync_and_close", failing_for_doomed)
    with pytest.raises(OSError, match="Input/output error"):
        catch_up(mailbox, services)
    assert folder_contents(dovecot, PROCESSED) == mails[:3]
    assert folder_contents(dovecot, "INBOX") == mails[3:]
    assert rows_by_sha(services) == {sha(mail): 1 for mail in mails[:3]}
    assert not services.store.exists(doomed)
    assert work_files(services.store) == []
    assert_every_row_has_its_blob(services)

    monkeypatch.setattr(blobstore, "_fsync_and_close", fsync_and_close)
    assert catch_up(mailbox, services).last_uid == 5
    assert folder_contents(dovecot, PROCESSED) == mails
    assert rows_by_sha(services) == {sha(mail): 1 for mail in mails}
    assert_every_row_has_its_blob(services)


def test_accepting_a_batch_counts_copies_as_one_by_one_would(services: Services) -> None:
    envelope = DeliveryEnvelope(source="imap", peer="imap:intake", tls=True)
    first, second = make_mail("first"), make_mail("second")
    before = services.intake.accept_message(second, envelope)
    accepted = services.intake.accept_messages([first, second, first], envelope)
    assert [(item.sha256, item.duplicate, item.times_seen) for item in accepted] == [
        (sha(first), False, 1), (sha(second), True, 2), (sha(first), True, 2)]
    assert accepted[1].message_pk == before.message_pk
    assert accepted[0].message_pk == accepted[2].message_pk
    assert rows_by_sha(services) == {sha(first): 2, sha(second): 2}
    actions = [(event.action, event.message_sha256) for event in iter_events(services.database)
               if event.message_sha256 is not None]
    assert actions[-3:] == [("received", sha(first)), ("seen-again", sha(second)),
                            ("seen-again", sha(first))]
    assert check_chain(services.database).ok


def test_put_many_fsyncs_each_file_and_each_changed_folder_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path / "blobs")
    store.ensure_root()
    kept = store.put(b"already here")
    blobs = [f"blob {n}".encode() for n in range(8)]
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    names = store.put_many([*blobs, b"already here", blobs[0]])
    monkeypatch.setattr(os, "fsync", fsync)

    assert names == [*map(sha, blobs), kept, sha(blobs[0])]
    for blob, name in zip(blobs, names, strict=False):
        assert store.read_bytes(name) == blob
        assert store.path(name).stat().st_mode & 0o777 == blobstore.BLOB_FILE_MODE
    assert work_files(store) == []
    files = [path for path in synced if path.endswith(".tmp")]
    folders = [path for path in synced if not path.endswith(".tmp")]
    assert len(files) == len(blobs)  # each new blob once; the stored one and the repeat not
    assert len(set(folders)) == len(folders)  # each folder once
    for name in map(sha, blobs):
        assert str(store.path(name).parent) in folders
