"""The daemon with [[imap]] mailboxes: mail taken from Dovecot goes through the worker,
shutdown leaves IDLE promptly, and a SIGKILL while a mailbox drains loses nothing."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from intake.service.config import AppConfig
from storage.blobstore import BlobStore
from storage.database import Database
from storage.imap_state import folder_status
from storage.migrate import upgrade_database
from tests.dovecot import Dovecot
from tests.receive.test_imap_support import (
    PROCESSED,
    append,
    folder_contents,
    mailbox_for,
    make_mail,
    write_config,
)
from tests.support import (
    INTAKE_ADDRESS,
    DaemonThread,
    daemon_process,
    free_port,
    message_rows,
    wait_until,
)

pytestmark = pytest.mark.slow

DEADLINE = 30.0



def test_daemon_takes_mail_from_imap_and_stops_promptly_while_in_idle(
        dovecot: Dovecot, tmp_path: Path, config: AppConfig, database_url: str) -> None:
    working = mailbox_for(dovecot, tmp_path)
    broken = replace(working, name="nobody-listens", port=free_port())  # must not matter
    config = replace(config, imap=(working, broken))
    mail = make_mail("forwarded by an employee")
    with DaemonThread(config) as daemon:
        append(dovecot, mail)

        def processed() -> bool:
            found = message_rows(database_url)
            return len(found) == 1 and found[0].state == "processed"

        wait_until(processed, timeout=DEADLINE, interval=0.1, message="mail processed")
        assert folder_contents(dovecot, PROCESSED) == [mail]
        database = Database(database_url)
        try:
            wait_until(lambda: (folder_status(database, "nobody-listens", "INBOX")  # type: ignore[union-attr]
                                .last_error or "").endswith("refused the connection"),
                       message="the broken mailbox's error recorded")
        finally:
            database.dispose()
        started = time.monotonic()
        daemon.stop()
        assert time.monotonic() - started < 5.0, "the daemon took too long to stop"
    (row,) = message_rows(database_url)
    assert (row.source, row.peer, row.case_id is not None) == ("imap", "imap:intake", True)


def test_sigkill_while_draining_a_mailbox_loses_and_doubles_nothing(
        dovecot: Dovecot, tmp_path: Path, database_url: str) -> None:
    mails = {hashlib.sha256(mail).hexdigest(): mail
             for mail in (make_mail(f"drain {n}", body_bytes=20_000) for n in range(120))}
    append(dovecot, *mails.values())
    data_dir = tmp_path / "data"
    path = write_config(tmp_path / "chikanemail.toml", {
        "storage": {"data_dir": str(data_dir), "database_url": database_url},
        "smtp": {"enabled": False},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "worker": {"enabled": False},
    }, [mailbox_for(dovecot, tmp_path)])
    log = tmp_path / "daemon.log"
    database = Database(database_url)
    upgrade_database(database)  # so the rows can be counted before the daemon is up
    database.dispose()

    def log_text() -> str:
        return log.read_text(errors="replace") if log.exists() else ""

    with daemon_process(path, log) as first:
        wait_until(lambda: first.poll() is not None or len(message_rows(database_url)) >= 20,
                   timeout=DEADLINE, interval=0.05, message="the drain under way")
        assert first.poll() is None, log_text()
        first.send_signal(signal.SIGKILL)
        assert first.wait(DEADLINE) == -signal.SIGKILL
    killed_at = len(message_rows(database_url))
    assert killed_at < len(mails), "the drain finished before the kill: make it longer"

    with daemon_process(path, log) as second:
        wait_until(lambda: second.poll() is not None or (
            len(message_rows(database_url)) == len(mails)
            and folder_contents(dovecot, "INBOX") == []),
                   timeout=DEADLINE, interval=0.2, message="the drain finished after restart")
        second.send_signal(signal.SIGTERM)
        try:
            assert second.wait(DEADLINE) == 0, log_text()
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit after SIGTERM:\n{log_text()[-3000:]}") from None

    found = message_rows(database_url)
    assert {row.sha256 for row in found} == set(mails) and len(found) == len(mails)
    assert all(row.times_seen in (1, 2) for row in found)  # 2: stored, killed before the move
    assert sorted(folder_contents(dovecot, PROCESSED)) == sorted(mails.values())
    store = BlobStore(data_dir / "blobs")
    assert all(store.read_bytes(sha256) == mail for sha256, mail in mails.items())
    assert "Traceback" not in log_text()
