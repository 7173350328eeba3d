"""The IMAP receiver against a real Dovecot, on SQLite and PostgreSQL: mail is stored
byte-exact before it is moved, a crash between the two or a new UIDVALIDITY makes no
duplicate, IDLE brings mail in within seconds and survives a server restart, and an
oversized mail stays on the server."""

from __future__ import annotations

import hashlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.receive.accept import IntakeService
from intake.receive.addresses import SenderPolicy
from intake.receive.imap.catchup import FolderIntake
from intake.receive.imap.connection import signed_in
from intake.receive.imap.folders import ensure_folder, move_messages, select_uidvalidity
from intake.receive.imap.receiver import ImapReceiver
from intake.service.daemon import Services
from intake.service.settings import ImapMailbox
from storage.blobstore import BlobStore
from storage.database import Database
from storage.imap_state import begin_folder, folder_status, oversized_messages
from storage.messages import DeliveryEnvelope, list_messages
from tests.dovecot import Dovecot
from tests.receive.test_imap_support import (
    PASSWORD,
    PROCESSED,
    append,
    drop_sessions,
    folder_contents,
    imap,
    mailbox_for,
    make_mail,
    restart_dropping_sessions,
    running,
    services_for,
    stored_row,
)
from tests.support import wait_until

MAX_BYTES = 64 * 1024


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[Services]:
    """The accept path on its own data dir and database (each backend)."""
    _config, built = services_for(tmp_path, database_url)
    yield built
    built.close()


@pytest.fixture
def mailbox(dovecot: Dovecot, tmp_path: Path) -> ImapMailbox:
    return mailbox_for(dovecot, tmp_path)


def receiver_for(mailbox: ImapMailbox, services: Services, **options: float) -> ImapReceiver:
    """A receiver with test-sized pauses."""
    options.setdefault("initial_backoff", 0.05)
    options.setdefault("max_backoff", 0.5)
    options.setdefault("idle_check_seconds", 0.2)
    return ImapReceiver(mailbox, services.intake, MAX_BYTES, **options)


def rows(services: Services) -> int:
    return len(list_messages(services.database))


def inbox_empty_and_processed(dovecot: Dovecot, count: int) -> bool:
    return (folder_contents(dovecot, "INBOX") == []
            and len(folder_contents(dovecot, PROCESSED)) == count)


def test_mail_is_stored_byte_exact_and_then_moved(dovecot: Dovecot, mailbox: ImapMailbox,
                                                  services: Services,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mails = [make_mail(f"report {n}", body_bytes=2000 * (n + 1)).replace(
        b"line 0 ", b"BODY-TEXT-NEVER-LOGGED ") for n in range(3)]
    append(dovecot, *mails)
    with running(receiver_for(mailbox, services)):
        wait_until(lambda: inbox_empty_and_processed(dovecot, 3), interval=0.1,
                   message="INBOX moved to the processed folder")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "BODY-TEXT-NEVER-LOGGED" not in logged and PASSWORD not in logged
    assert sorted(folder_contents(dovecot, PROCESSED)) == sorted(mails)
    for mail in mails:
        sha256 = hashlib.sha256(mail).hexdigest()
        assert services.store.read_bytes(sha256) == mail
        row = stored_row(services, mail)
        assert row is not None
        assert (row.source, row.peer, row.mail_from, row.rcpt_tos, row.times_seen) == (
            "imap", "imap:intake", None, [], 1)
    status = folder_status(services.database, "intake", "INBOX")
    assert status is not None
    assert status.last_uid == 3 and status.uidvalidity > 0
    assert status.last_success_at is not None and status.last_error is None
    assert not status.connected  # the receiver stopped


def test_a_crash_between_store_and_move_fetches_again_without_a_duplicate(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services) -> None:
    mail = make_mail("stored, then the daemon died")
    append(dovecot, mail)
    # The store step alone, as a daemon killed right after it would have left things.
    intake = FolderIntake(mailbox, services.intake, MAX_BYTES)
    with signed_in(mailbox, None) as client:
        uidvalidity = select_uidvalidity(client, "INBOX")
        position = begin_folder(services.database, "intake", "INBOX", uidvalidity)
        outcome = intake.store(client, uidvalidity, intake.new_messages(client, 0))
    assert outcome.stored == [1] and outcome.error is None
    assert folder_contents(dovecot, "INBOX") == [mail]  # not moved
    assert folder_status(services.database, "intake", "INBOX").last_uid == 0  # type: ignore[union-attr]
    assert position.last_uid == 0

    with running(receiver_for(mailbox, services)):
        wait_until(lambda: inbox_empty_and_processed(dovecot, 1), interval=0.1,
                   message="the mail moved after the restart")
    row = stored_row(services, mail)
    assert row is not None and row.times_seen == 2
    assert rows(services) == 1
    assert folder_contents(dovecot, PROCESSED) == [mail]


def test_a_new_uidvalidity_takes_the_folder_in_again_without_duplicates(
        dovecot: Dovecot, tmp_path: Path, services: Services) -> None:
    mailbox = mailbox_for(dovecot, tmp_path, folder="Anmeldelser")
    first, second, third = (make_mail(f"uidvalidity {n}") for n in range(3))
    with imap(dovecot) as client:
        client.create_folder("Anmeldelser")
    append(dovecot, first, second, folder="Anmeldelser")
    with running(receiver_for(mailbox, services)):
        wait_until(lambda: rows(services) == 2 and folder_contents(dovecot, "Anmeldelser") == [],
                   interval=0.1, message="the first two mails")
    before = folder_status(services.database, "intake", "Anmeldelser")
    assert before is not None and before.last_uid == 2

    # The folder is deleted and made again: same name, new UIDVALIDITY, UIDs from 1 again.
    # The old last UID (2) would hide both mails; only a resync finds them.
    with imap(dovecot) as client:
        client.delete_folder("Anmeldelser")
        client.create_folder("Anmeldelser")
        client.append("Anmeldelser", first)
        client.append("Anmeldelser", third)
        assert client.folder_status("Anmeldelser", ["UIDVALIDITY"])[b"UIDVALIDITY"] != (
            before.uidvalidity)

    with running(receiver_for(mailbox, services)):
        wait_until(lambda: rows(services) == 3 and folder_contents(dovecot, "Anmeldelser") == [],
                   interval=0.1, message="the resynced folder taken in")
    assert stored_row(services, first).times_seen == 2  # type: ignore[union-attr]
    assert stored_row(services, second).times_seen == 1  # type: ignore[union-attr]
    assert stored_row(services, third).times_seen == 1  # type: ignore[union-attr]
    after = folder_status(services.database, "intake", "Anmeldelser")
    assert after is not None and after.uidvalidity != before.uidvalidity and after.last_uid == 2


def test_mail_appended_during_idle_is_stored_within_two_seconds(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services) -> None:
    receiver = receiver_for(mailbox, services)
    with running(receiver):
        wait_until(lambda: receiver.state == "idle", message="the receiver in IDLE")
        for n in range(3):
            mail = make_mail(f"during idle {n}")
            append(dovecot, mail)
            wait_until(lambda mail=mail: stored_row(services, mail) is not None,  # type: ignore[misc]
                       timeout=2, message="the mail stored within 2 s")
            wait_until(lambda: receiver.state == "idle", message="back in IDLE")
    assert rows(services) == 3


def test_idle_renewal_keeps_taking_mail(dovecot: Dovecot, mailbox: ImapMailbox,
                                        services: Services) -> None:
    receiver = receiver_for(mailbox, services, idle_renew_seconds=0.3)
    with running(receiver):
        wait_until(lambda: receiver.state == "idle", message="the receiver in IDLE")
        first_success = folder_status(services.database, "intake", "INBOX").last_success_at  # type: ignore[union-attr]
        # Each renewal ends IDLE, sends NOOP, catches up and records a success.
        wait_until(lambda: folder_status(services.database, "intake",  # type: ignore[union-attr]
                                         "INBOX").last_success_at != first_success,
                   message="a renewal")
        mail = make_mail("after renewals")
        append(dovecot, mail)
        wait_until(lambda: stored_row(services, mail) is not None, message="mail stored")


def test_dovecot_restarted_during_idle_the_receiver_reconnects_and_catches_up(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services) -> None:
    receiver = receiver_for(mailbox, services)
    with running(receiver):
        # First the session says BYE; then it just vanishes (idle_check sees nothing at all).
        for how in (signal.SIGTERM, signal.SIGKILL):
            wait_until(lambda: receiver.state == "idle", message="the receiver in IDLE")
            restart_dropping_sessions(dovecot, how)
            mail = make_mail(f"after a restart ({how.name})")
            append(dovecot, mail)
            wait_until(lambda mail=mail: stored_row(services, mail) is not None,  # type: ignore[misc]
                       message="mail stored")
            wait_until(lambda: folder_contents(dovecot, "INBOX") == [], interval=0.1,
                       message="mail moved")
            status = folder_status(services.database, "intake", "INBOX")
            assert status is not None and status.last_error is not None  # noticed
        wait_until(lambda: receiver.state == "idle", message="back in IDLE")
    assert rows(services) == 2


def test_oversized_mail_stays_on_the_server_recorded_once(
        dovecot: Dovecot, mailbox: ImapMailbox, services: Services,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chikanemail")
    big = make_mail("too big", body_bytes=MAX_BYTES + 1000)
    small = make_mail("fine")
    append(dovecot, big, small)
    receiver = receiver_for(mailbox, services)
    with running(receiver):
        wait_until(lambda: folder_contents(dovecot, "INBOX") == [big], interval=0.1,
                   message="only the big mail left in INBOX")
        wait_until(lambda: receiver.state == "idle", message="the receiver in IDLE")
        later = make_mail("later")
        append(dovecot, later)  # another catch-up: the big one must not be looked at again
        wait_until(lambda: stored_row(services, later) is not None, message="later stored")
    with running(receiver_for(mailbox, services)):  # and not after a restart either
        wait_until(lambda: folder_status(services.database, "intake",  # type: ignore[union-attr]
                                         "INBOX").connected, message="connected")
    assert folder_contents(dovecot, "INBOX") == [big]
    assert stored_row(services, big) is None
    assert rows(services) == 2
    oversized = oversized_messages(services.database)
    assert [(row.mailbox, row.folder, row.uid, row.size) for row in oversized] == [
        ("intake", "INBOX", 1, len(big))]
    assert sum("over the limit" in record.getMessage() for record in caplog.records) == 1


def test_poll_mode_over_starttls(dovecot: Dovecot, tmp_path: Path, services: Services) -> None:
    mailbox = mailbox_for(dovecot, tmp_path, mode="poll", poll_seconds=0.2,
                          port=dovecot.starttls_port, security="starttls")
    receiver = receiver_for(mailbox, services)
    with running(receiver):
        wait_until(lambda: receiver.state == "polling", message="polling")
        mail = make_mail("polled")
        append(dovecot, mail)
        wait_until(lambda: stored_row(services, mail) is not None, message="mail stored")
    assert folder_contents(dovecot, PROCESSED) == [mail]


def test_a_failing_sign_in_is_logged_once_per_streak_and_other_mailboxes_go_on(
        dovecot: Dovecot, tmp_path: Path, services: Services,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="chikanemail")
    password_file = tmp_path / "flaky-password"
    password_file.write_text("", encoding="utf-8")  # not filled in yet: fails at once
    flaky = mailbox_for(dovecot, tmp_path, name="flaky", password_file=str(password_file))
    failing = receiver_for(flaky, services, max_backoff=0.05)
    working = receiver_for(mailbox_for(dovecot, tmp_path, name="good"), services)

    def logged(level: int, text: str) -> int:
        return sum(record.levelno == level and "mailbox flaky" in record.getMessage()
                   and text in record.getMessage() for record in caplog.records)

    with running(failing), running(working):
        wait_until(lambda: working.state == "idle", message="the good mailbox in IDLE")
        wait_until(lambda: logged(logging.DEBUG, "still failing") >= 3, message="retries")
        mail = make_mail("the good mailbox goes on")
        append(dovecot, mail)
        wait_until(lambda: stored_row(services, mail) is not None, message="mail stored")
        assert logged(logging.ERROR, "sign-in failed") == 1

        password_file.write_text(PASSWORD + "\n", encoding="utf-8")
        wait_until(lambda: failing.state == "idle", message="the flaky mailbox signed in")
        assert logged(logging.INFO, "signed in again") == 1

        # The connection drops and the password is gone again: a new streak, logged again.
        password_file.write_text("", encoding="utf-8")
        drop_sessions(dovecot)
        wait_until(lambda: logged(logging.ERROR, "sign-in failed") == 2, message="new streak")
        wait_until(lambda: logged(logging.DEBUG, "still failing") >= 6, message="retries")
        assert logged(logging.ERROR, "sign-in failed") == 2
        wait_until(lambda: working.state == "idle", message="the good mailbox back in IDLE")
    status = folder_status(services.database, "flaky", "INBOX")
    assert status is not None and not status.connected


def test_uidplus_path_expunges_only_the_stored_uids(dovecot: Dovecot,
                                                    mailbox: ImapMailbox) -> None:
    keep, take = make_mail("someone flagged me deleted"), make_mail("stored")
    append(dovecot, keep, take)
    with signed_in(mailbox, None) as client:
        ensure_folder(client, PROCESSED)
        select_uidvalidity(client, "INBOX")
        client.add_flags([1], [rb"\Deleted"])  # a mail program's pending delete: not ours
        move_messages(client, [2], PROCESSED, "uidplus")
    assert folder_contents(dovecot, "INBOX") == [keep]
    assert folder_contents(dovecot, PROCESSED) == [take]


def test_the_sender_check_judges_the_from_header_of_imap_mail(
        tmp_path: Path, database: Database) -> None:
    store = BlobStore(tmp_path / "blobs")
    store.ensure_root()
    service = IntakeService(store, database, SenderPolicy.from_domains(["kommune.example"]))
    envelope = DeliveryEnvelope(source="imap", peer="imap:test")
    inside = service.accept_message(b"From: Ansat <ansat@kommune.example>\r\n\r\nx\r\n", envelope)
    outside = service.accept_message(b"From: <x@andet.example>\r\n\r\ny\r\n", envelope)
    assert (inside.quarantined, outside.quarantined) == (False, True)
