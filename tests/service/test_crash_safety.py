"""A real `chikanemail serve` process: SIGKILL under load loses nothing it answered 250 for,
and SIGTERM stops it cleanly (exit 0) whether idle or in the middle of a session."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import signal
import smtplib
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage.blobstore import BlobStore
from storage.database import Database
from storage.evidence import evidence_for_message
from storage.messages import list_messages
from storage.models import Message
from tests.support import (
    INTAKE_ADDRESS,
    daemon_process,
    free_port,
    port_accepts,
    wait_until,
    write_toml,
)

pytestmark = pytest.mark.slow

SENDER = "ansat@kommune.example"
CLIENT_THREADS = 4
ACCEPTED_BEFORE_KILL = 40
DEADLINE = 30.0
# Processing every mail again after the restart (OCR included) on a machine other work keeps
# busy: a poll's limit, so a quiet machine never waits for it.
PROCESSING_DEADLINE = 90.0

# -- helpers (local to this file) ---------------------------------------------


@dataclass
class DaemonSetup:
    config: Path
    data_dir: Path
    database_url: str
    port: int
    log: Path

    @property
    def store(self) -> BlobStore:
        return BlobStore(self.data_dir / "blobs")

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def rows(self) -> list[Message]:
        database = Database(self.database_url)
        try:
            return list_messages(database)
        finally:
            database.dispose()


@pytest.fixture
def setup(tmp_path: Path, database_url: str) -> DaemonSetup:
    data_dir = tmp_path / "data"
    port = free_port()
    config = write_toml(tmp_path / "chikanemail.toml", {
        "storage": {"data_dir": str(data_dir), "database_url": database_url},
        "smtp": {"port": port, "server_hostname": "chikanemail.test", "timeout_seconds": 30.0},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "worker": {"processes": 1, "poll_seconds": 0.1, "retry_seconds": 0.0},
        "logging": {"level": "INFO"},
    })
    return DaemonSetup(config, data_dir, database_url, port, tmp_path / "daemon.log")


@contextmanager
def running_daemon(setup: DaemonSetup) -> Iterator[subprocess.Popen[bytes]]:
    """`chikanemail serve` as a process, ready to take connections."""
    with daemon_process(setup.config, setup.log) as process:
        wait_until(lambda: process.poll() is not None or port_accepts(setup.port),
                   timeout=DEADLINE, interval=0.05, message=f"daemon on port {setup.port}")
        assert process.poll() is None, f"daemon exited early:\n{setup.log_text()}"
        yield process


def wait_for_exit(process: subprocess.Popen[bytes], setup: DaemonSetup,
                  timeout: float = DEADLINE) -> int:
    """The daemon's exit code; fails the test if it is still running at the deadline."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"daemon still running {timeout} s after the signal:\n{setup.log_text()}"
        ) from None


def make_message(client: int, number: int, rng: random.Random) -> bytes:
    """A distinct CRLF message of 1-48 KB; no line starts with a dot, so no dot-stuffing."""
    body_size = rng.randint(1024, 48 * 1024)
    body = base64.encodebytes(rng.randbytes(body_size * 3 // 4)).replace(b"\n", b"\r\n")
    token = rng.getrandbits(64)
    return (f"From: Ansat <{SENDER}>\r\n"
            f"To: <{INTAKE_ADDRESS}>\r\n"
            f"Subject: crash test client {client} message {number}\r\n"
            f"Message-ID: <crash-{client}-{number}-{token:016x}@kommune.example>\r\n"
            f"\r\n").encode() + body


@dataclass
class Ledger:
    """What the clients sent and what the daemon answered 250 for, shared by the threads."""

    killed: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, bytes] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    errors_before_kill: list[str] = field(default_factory=list)
    errors_after_kill: int = 0

    def accepted_count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def error(self, error: BaseException) -> None:
        with self.lock:
            if self.killed.is_set():
                self.errors_after_kill += 1
            else:
                self.errors_before_kill.append(f"{type(error).__name__}: {error}")


def client_loop(client: int, port: int, ledger: Ledger) -> None:
    """Send distinct messages back to back, reconnecting after errors, until told to stop."""
    rng = random.Random(f"client-{client}-{os.getpid()}-{random.random()}")
    number = 0
    while not ledger.stop.is_set():
        try:
            connection = smtplib.SMTP("127.0.0.1", port, local_hostname=f"client{client}.test",
                                      timeout=DEADLINE)
        except OSError as error:
            ledger.error(error)
            ledger.stop.wait(0.05)  # back-off before reconnecting, not synchronisation
            continue
        try:
            while not ledger.stop.is_set():
                number += 1
                raw = make_message(client, number, rng)
                sha256 = hashlib.sha256(raw).hexdigest()
                with ledger.lock:
                    ledger.sent[sha256] = raw
                refused = connection.sendmail(SENDER, [INTAKE_ADDRESS], raw)
                assert refused == {}
                with ledger.lock:
                    ledger.accepted.add(sha256)  # only after the 250 to DATA
        except (smtplib.SMTPException, OSError) as error:
            ledger.error(error)
        finally:
            connection.close()


# -- SIGKILL under load ---------------------------------------------------------


def test_sigkill_under_load_loses_no_accepted_message(setup: DaemonSetup) -> None:
    ledger = Ledger()
    threads = [threading.Thread(target=client_loop, args=(client, setup.port, ledger),
                                name=f"smtp-client-{client}", daemon=True)
               for client in range(CLIENT_THREADS)]
    with running_daemon(setup) as first:
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: ledger.accepted_count() >= ACCEPTED_BEFORE_KILL,
                       timeout=DEADLINE, message=f"{ACCEPTED_BEFORE_KILL} accepted messages")
            assert all(thread.is_alive() for thread in threads), "clients still sending"
            ledger.killed.set()
            first.send_signal(signal.SIGKILL)
            assert wait_for_exit(first, setup) == -signal.SIGKILL
        finally:
            ledger.stop.set()
            for thread in threads:
                thread.join(DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "client threads did not stop"
    assert ledger.errors_before_kill == [], "clients failed before the kill"

    with ledger.lock:
        sent = dict(ledger.sent)
        accepted = set(ledger.accepted)
    not_accepted = set(sent) - accepted
    assert len(accepted) >= ACCEPTED_BEFORE_KILL

    log_before_restart = len(setup.log_text())
    with running_daemon(setup) as second:
        # Senders retry what got no 250; the retry must be taken now, and counted, not doubled.
        with smtplib.SMTP("127.0.0.1", setup.port, local_hostname="retry.test",
                          timeout=DEADLINE) as retry:
            for sha256 in sorted(not_accepted):
                assert retry.sendmail(SENDER, [INTAKE_ADDRESS], sent[sha256]) == {}

        def all_processed() -> list[Message]:
            rows = setup.rows()
            if len(rows) == len(sent) and all(row.state == "processed" for row in rows):
                return rows
            return []

        try:
            rows = wait_until(all_processed, timeout=PROCESSING_DEADLINE, interval=0.1,
                              message="every sent message stored and processed")
        except AssertionError:
            found = setup.rows()
            stored = {row.sha256 for row in found}
            states = sorted({row.state for row in found})
            raise AssertionError(
                f"after the restart: {len(found)} rows for {len(sent)} sent messages; "
                f"{len(accepted - stored)} answered 250 before the kill but are not stored; "
                f"states seen: {states}\n{setup.log_text()[log_before_restart:][-4000:]}"
            ) from None

        second.send_signal(signal.SIGTERM)
        assert wait_for_exit(second, setup) == 0, setup.log_text()[log_before_restart:]

    by_sha = {row.sha256: row for row in rows}
    assert len(by_sha) == len(rows), "exactly one row per sha256"
    assert set(by_sha) == set(sent), "nothing missing, nothing that was not sent (no torn mail)"

    store = setup.store
    for sha256 in accepted:
        assert store.read_bytes(sha256) == sent[sha256], f"blob {sha256} not byte-exact"
        row = by_sha[sha256]
        assert row.state == "processed"
        assert row.times_seen == 1, f"{sha256} was sent once but seen {row.times_seen} times"
        assert row.size == len(sent[sha256])
        assert row.source == "smtp"
    for sha256 in not_accepted:
        assert store.read_bytes(sha256) == sent[sha256]
        # 2 when the first copy was committed but the kill ate its 250.
        assert by_sha[sha256].times_seen in (1, 2)
    # Every blob is a sent message or a part extracted from one: nothing stray or torn.
    database = Database(setup.database_url)
    try:
        parts = {row.sha256 for sha256 in sent
                 for row in evidence_for_message(database, by_sha[sha256].id)}
    finally:
        database.dispose()
    assert set(store.iter_all()) == set(sent) | parts, "no stray or torn blobs"


# -- SIGTERM ------------------------------------------------------------------------


def test_sigterm_while_idle_exits_zero(setup: DaemonSetup) -> None:
    raw = make_message(0, 1, random.Random(1))
    with running_daemon(setup) as process:
        with smtplib.SMTP("127.0.0.1", setup.port, timeout=DEADLINE) as client:
            assert client.sendmail(SENDER, [INTAKE_ADDRESS], raw) == {}
        sha256 = hashlib.sha256(raw).hexdigest()
        wait_until(lambda: [row for row in setup.rows()
                            if row.sha256 == sha256 and row.state == "processed"],
                   timeout=DEADLINE, message="the message processed")
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, setup) == 0, setup.log_text()
    assert not port_accepts(setup.port), "the port is closed after the stop"
    log = setup.log_text()
    assert "stopped" in log
    assert "Traceback" not in log, log
    assert setup.store.read_bytes(sha256) == raw


@pytest.mark.parametrize("phase", ["after-mail-from", "mid-data"])
def test_sigterm_during_a_session_exits_zero(setup: DaemonSetup, phase: str) -> None:
    with running_daemon(setup) as process:
        client = smtplib.SMTP("127.0.0.1", setup.port, timeout=DEADLINE)
        try:
            assert client.ehlo("slow.test")[0] == 250
            assert client.mail(SENDER)[0] == 250
            assert client.rcpt(INTAKE_ADDRESS)[0] == 250
            if phase == "mid-data":
                assert client.docmd("DATA")[0] == 354
                client.send(b"From: <ansat@kommune.example>\r\nSubject: half\r\n\r\nhalf a ")
            process.send_signal(signal.SIGTERM)
            assert wait_for_exit(process, setup, timeout=15.0) == 0, setup.log_text()
            # The session was closed under the client, at most with a 421 goodbye.
            code: int | None
            try:
                if phase == "mid-data":
                    client.send(b"message\r\n.\r\n")
                    code, _ = client.getreply()
                else:
                    code, _ = client.noop()
            except (smtplib.SMTPServerDisconnected, OSError):
                code = None
            assert code in (None, 421), f"got a reply {code} after the daemon exited"
        finally:
            client.close()
    log = setup.log_text()
    assert "stopped" in log
    assert "Traceback" not in log, log
    assert setup.rows() == [], "a message without its end of data is never stored"
