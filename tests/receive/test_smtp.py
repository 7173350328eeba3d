"""The SMTP and LMTP receiver over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import smtplib
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import text
from sqlalchemy.engine import make_url

from intake.parse.headers import summarize_headers
from intake.receive.accept import HEAD_BYTES, MessageHead
from intake.receive.addresses import RecipientPolicy
from intake.receive.smtp.data import DataReader, DotUnstuffer
from intake.receive.smtp.handler import SPOOL_WRITE_BYTES
from intake.service.config import load_config
from storage.blobstore import BlobStore, BlobWriter
from storage.database import Database
from storage.errors import SettingsError
from storage.messages import get_message_by_sha256, list_messages
from tests.support import INTAKE_ADDRESS, DaemonThread, make_config, wait_until

SENDER = "ansat@kommune.example"


def mail(subject: str, body: bytes = b"Se den videresendte besked.\r\n") -> bytes:
    return (f"From: Ansat <{SENDER}>\r\nTo: <{INTAKE_ADDRESS}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@kommune.example>\r\n\r\n").encode() + body


@pytest.fixture
def db(daemon: DaemonThread) -> Iterator[Database]:
    database = Database(daemon.config.storage.effective_database_url)
    yield database
    database.dispose()


@pytest.fixture
def make_daemon(tmp_path: Path, database_url: str) -> Iterator[Any]:
    """Start a daemon with settings of the test's choosing; stopped at the end."""
    started: list[DaemonThread] = []

    def start(**overrides: Any) -> DaemonThread:
        daemon = DaemonThread(make_config(tmp_path / "data", database_url, **overrides)).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def rows_for(daemon: DaemonThread) -> list[Any]:
    database = Database(daemon.config.storage.effective_database_url)
    try:
        return list_messages(database)
    finally:
        database.dispose()


class LineClient:
    """A bare SMTP/LMTP client for what smtplib cannot show (several replies after DATA)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """Read one (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] != b"-":
                return int(lines[-1][:3]), "\n".join(lines)

    def command(self, line: str) -> tuple[int, str]:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def test_stored_blob_is_exactly_what_was_sent(daemon: DaemonThread, db: Database) -> None:
    long_line = b"x" * 5000 + b"\r\n"  # longer than RFC 5321 allows; still evidence
    raw = mail("bytes", b".leading dot\r\n..two dots\r\n\xe6\xf8\xe5 8-bit\r\n" + long_line)
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], raw) == {}
    sha256 = hashlib.sha256(raw).hexdigest()
    stored = BlobStore(daemon.config.storage.blob_root).path(sha256)
    assert stored.name == sha256
    assert stored.read_bytes() == raw
    row = get_message_by_sha256(db, sha256)
    assert row is not None
    assert (row.size, row.source, row.mail_from, row.rcpt_tos, row.tls) == (
        len(raw), "smtp", SENDER, [INTAKE_ADDRESS], False)
    assert row.helo and row.peer and row.peer.startswith("127.0.0.1:")


def test_unknown_recipient_gets_550_and_intake_address_any_case_is_accepted(
        daemon: DaemonThread) -> None:
    with smtplib.SMTP(*daemon.smtp_address) as client:
        client.ehlo()
        client.mail(SENDER)
        code, _ = client.rcpt("someone.else@kommune.example")
        assert code == 550
        # A secret reply address is the intake address with a token after "+"; a
        # lookalike is not.
        for lookalike in ("chikanemail+@kommune.example", "chikanemailx@kommune.example",
                          "chikanemail-abc@kommune.example", "chikanemail+abc@evil.example"):
            assert client.rcpt(lookalike)[0] == 550, lookalike
        code, _ = client.rcpt(INTAKE_ADDRESS.upper())
        assert code == 250
        assert client.rcpt("chikanemail+Anything2@kommune.example")[0] == 250
        code, _ = client.data(mail("any case"))
        assert code == 250
    assert len(rows_for(daemon)) == 1


def test_duplicate_delivery_gives_one_row_seen_twice(daemon: DaemonThread, db: Database) -> None:
    raw = mail("twice")
    for _ in range(2):
        with smtplib.SMTP(*daemon.smtp_address) as client:
            assert client.sendmail(SENDER, [INTAKE_ADDRESS], raw) == {}
    rows = list_messages(db)
    assert len(rows) == 1
    assert rows[0].times_seen == 2


def test_ehlo_advertises_the_exact_size_limit_and_no_auth(daemon: DaemonThread) -> None:
    with smtplib.SMTP(*daemon.smtp_address) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(daemon.config.smtp.max_message_bytes)
        assert "auth" not in client.esmtp_features
        assert client.ehlo_resp is not None and client.ehlo_resp.startswith(b"chikanemail.test")


def test_oversize_mail_gets_552_and_nothing_is_stored(make_daemon: Any) -> None:
    daemon = make_daemon(max_message_bytes=4096)
    head = mail("at limit", b"")
    at_limit = head + b"b" * (4096 - len(head) - 2) + b"\r\n"
    over = head + b"b" * (4096 - len(head) - 1) + b"\r\n"
    with smtplib.SMTP(*daemon.smtp_address) as client:
        # smtplib declares SIZE= itself: refused at MAIL FROM.
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            client.sendmail(SENDER, [INTAKE_ADDRESS], over)
        assert declared.value.smtp_code == 552
        client.rset()
        # Without SIZE= the check happens after DATA, on the exact message size.
        client.mail(SENDER)
        client.rcpt(INTAKE_ADDRESS)
        code, _ = client.data(over)
        assert code == 552
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], at_limit) == {}
    rows = rows_for(daemon)
    assert [row.size for row in rows] == [4096]
    store = BlobStore(daemon.config.storage.blob_root)
    assert not store.exists(hashlib.sha256(over).hexdigest())


def test_foreign_sender_is_rejected_with_550(make_daemon: Any) -> None:
    daemon = make_daemon(intake={"allowed_sender_domains": ("kommune.example",)})
    with smtplib.SMTP(*daemon.smtp_address) as client:
        for sender in ("x@other.example", "x@sub.kommune.example", "<>"):
            client.ehlo()
            code, _ = client.mail(sender)
            assert code == 550, sender
            client.rset()
        assert client.sendmail("Ansat@KOMMUNE.example", [INTAKE_ADDRESS], mail("ok")) == {}
    assert len(rows_for(daemon)) == 1


def test_wildcard_admits_subdomains(make_daemon: Any) -> None:
    daemon = make_daemon(intake={"allowed_sender_domains": ("*.kommune.example",)})
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail("x@skole.kommune.example", [INTAKE_ADDRESS], mail("sub")) == {}
        code, _ = client.mail("x@kommune.example")
        assert code == 550


def test_foreign_sender_quarantined_is_stored_but_kept_out(make_daemon: Any) -> None:
    daemon = make_daemon(intake={"allowed_sender_domains": ("kommune.example",),
                                 "foreign_sender_action": "quarantine"})
    raw = mail("from outside")
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail("someone@gmail.example", [INTAKE_ADDRESS], raw) == {}
    (row,) = rows_for(daemon)
    assert row.sha256 == hashlib.sha256(raw).hexdigest()
    assert (row.state, row.quarantine_reason) == ("quarantined", "foreign-sender")
    assert BlobStore(daemon.config.storage.blob_root).read_bytes(row.sha256) == raw


def test_a_failing_store_answers_451_and_a_retry_succeeds(daemon: DaemonThread) -> None:
    blob_root = daemon.config.storage.blob_root
    raw = mail("store fails")
    aside = blob_root.with_name("blobs-aside")
    os.rename(blob_root, aside)
    blob_root.write_bytes(b"not a directory")  # every write into the store now fails
    try:
        with smtplib.SMTP(*daemon.smtp_address) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail(SENDER, [INTAKE_ADDRESS], raw)
            assert refused.value.smtp_code == 451
            assert client.noop()[0] == 250  # the session survives
    finally:
        blob_root.unlink()
        os.rename(aside, blob_root)
    assert rows_for(daemon) == []
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], raw) == {}
    assert len(rows_for(daemon)) == 1


def test_a_failing_database_answers_451(daemon: DaemonThread, db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE message RENAME TO message_gone"))
    with smtplib.SMTP(*daemon.smtp_address) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(SENDER, [INTAKE_ADDRESS], mail("db fails"))
        assert refused.value.smtp_code == 451


def test_lmtp_answers_once_per_accepted_recipient(make_daemon: Any) -> None:
    daemon = make_daemon(lmtp=True,
                         intake={"addresses": (INTAKE_ADDRESS, "second@kommune.example")})
    client = LineClient(daemon.smtp_address)
    try:
        assert client.reply()[0] == 220
        assert client.command("EHLO x")[0] == 500  # LMTP speaks LHLO only
        assert client.command("LHLO mx.kommune.example")[0] == 250
        assert client.command(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert client.command(f"RCPT TO:<{INTAKE_ADDRESS}>")[0] == 250
        assert client.command("RCPT TO:<nobody@kommune.example>")[0] == 550
        assert client.command("RCPT TO:<second@kommune.example>")[0] == 250
        assert client.command("DATA")[0] == 354
        client.send(mail("lmtp") + b".\r\n")
        assert client.reply()[0] == 250
        assert client.reply()[0] == 250
        assert client.command("NOOP")[0] == 250  # no third reply was queued before this one
    finally:
        client.close()
    (row,) = rows_for(daemon)
    assert row.source == "lmtp"
    assert row.rcpt_tos == [INTAKE_ADDRESS, "second@kommune.example"]


def test_connections_over_the_cap_get_421(make_daemon: Any) -> None:
    daemon = make_daemon(max_connections=2)
    first, second = LineClient(daemon.smtp_address), LineClient(daemon.smtp_address)
    try:
        assert first.reply()[0] == 220 and second.reply()[0] == 220
        third = LineClient(daemon.smtp_address)
        assert third.reply()[0] == 421
        third.close()
        first.command("QUIT")
        first.close()

        def admitted() -> bool:
            client = LineClient(daemon.smtp_address)
            try:
                return client.reply()[0] == 220
            finally:
                client.close()
        wait_until(admitted, message="a free connection slot")
    finally:
        second.close()


def test_timeout_is_an_idle_timer_not_a_session_deadline(make_daemon: Any) -> None:
    # About 200 bytes a second: above this minimum rate (tests/receive/test_smtp_floods.py
    # shows a slower DATA cut).
    daemon = make_daemon(timeout_seconds=1.0, min_data_bytes_per_second=50)
    raw = mail("slow link", b"".join(b"%05d line of a slow upload\r\n" % i for i in range(12)))
    client = LineClient(daemon.smtp_address)
    try:
        client.reply()
        client.command("EHLO slow.example")
        client.command(f"MAIL FROM:<{SENDER}>")
        client.command(f"RCPT TO:<{INTAKE_ADDRESS}>")
        assert client.command("DATA")[0] == 354
        started = time.monotonic()
        lines = raw.split(b"\r\n")
        for index in range(0, len(lines), 2):  # about 2.5 s in all, never 1 s without data
            client.send(b"\r\n".join(lines[index:index + 2]) + b"\r\n")
            time.sleep(0.3)  # pacing a slow sender, not synchronisation
        client.send(b".\r\n")
        assert client.reply()[0] == 250
        assert time.monotonic() - started > 2 * daemon.config.smtp.timeout_seconds
    finally:
        client.close()
    idle = LineClient(daemon.smtp_address)
    try:
        idle.reply()
        idle.sock.settimeout(15)
        assert idle.sock.recv(100) == b""  # closed by the server after 1 s of silence
    finally:
        idle.close()


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


def test_require_starttls_refuses_mail_before_tls(make_daemon: Any, tmp_path: Path,
                                                  certificate_authority: trustme.CA) -> None:
    server_cert = certificate_authority.issue_cert("chikanemail.test", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    daemon = make_daemon(tls_cert=str(cert), tls_key=str(key), require_starttls=True)
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    with smtplib.SMTP(*daemon.smtp_address) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        assert client.mail(SENDER)[0] == 530
        client.starttls(context=context)
        client.ehlo("client.example")
        assert not client.has_extn("auth")
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], mail("over tls")) == {}
    (row,) = rows_for(daemon)
    assert row.tls is True


def test_messages_are_processed_by_the_worker(daemon: DaemonThread, db: Database) -> None:
    with smtplib.SMTP(*daemon.smtp_address) as client:
        for n in range(5):
            client.sendmail(SENDER, [INTAKE_ADDRESS], mail(f"worker {n}"))
    wait_until(lambda: [r.state for r in list_messages(db)] == ["processed"] * 5,
               message="five processed messages")


def test_data_directory_is_owner_only(daemon: DaemonThread) -> None:
    data = daemon.config.storage.data_path
    assert data.stat().st_mode & 0o077 == 0
    url = make_url(daemon.config.storage.effective_database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        assert Path(url.database).stat().st_mode & 0o077 == 0




# -- DATA streamed to disk --------------------------------------------------------------


def read_data_like_rfc5321(wire: bytes) -> tuple[bytes, bytes] | None:
    """The message in a DATA and the bytes after its end line, read line by line as RFC 5321
    says; None when the end line has not come."""
    lines: list[bytes] = []
    start = 0
    while (end := wire.find(b"\r\n", start)) >= 0:
        line, start = wire[start:end + 2], end + 2
        if line == b".\r\n":
            return b"".join(lines), wire[start:]
        lines.append(line[1:] if line.startswith(b".") else line)
    return None


def read_data_in_pieces(wire: bytes, rng: random.Random) -> tuple[bytes, bytes]:
    """Run DataReader and DotUnstuffer on the wire bytes arriving in random pieces, through a
    StreamReader with a tiny limit; the message and what the stream still holds after it."""

    async def run() -> tuple[bytes, bytes]:
        reader = asyncio.StreamReader(limit=rng.randint(1, 12))

        async def send() -> None:
            position = 0
            while position < len(wire):
                step = rng.randint(1, 9)
                reader.feed_data(wire[position:position + step])
                position += step
                await asyncio.sleep(0)
            reader.feed_eof()

        sender = asyncio.create_task(send())
        data, unstuffer = DataReader(reader, rng.randint(1, 40)), DotUnstuffer()
        message = bytearray()
        while not data.ended:
            message += unstuffer.feed(await data.read())
        message += unstuffer.flush()
        await sender
        return bytes(message), await reader.read()

    return asyncio.run(run())


def test_data_reader_agrees_with_reading_line_by_line() -> None:
    rng = random.Random(5321)
    tokens = [b"\r", b"\n", b"\r\n", b".", b"..", b"a", b"\r\n.", b"\r\n.\r", b"\n.\n",
              b"\n.\r\n", b"\r.\r"]
    for case in range(3000):
        body = b"".join(rng.choice(tokens) for _ in range(rng.randint(0, 30)))
        wire = body + rng.choice([b".\r\n", b"\r\n.\r\n", b"x\r\n.\r\n"]) + b"QUIT\r\n"
        expected = read_data_like_rfc5321(wire)
        if expected is None:  # the body's end swallowed the end line ("\r" + ".\r\n")
            wire += b".\r\nQUIT\r\n"
            expected = read_data_like_rfc5321(wire)
        assert expected is not None
        assert read_data_in_pieces(wire, rng) == expected, (case, wire)


def test_message_head_gives_the_same_header_summary_as_the_whole_message() -> None:
    rng = random.Random(822)
    tokens = [b"Subject: one\r\n", b"Message-ID: <a@b>\r\n", b"Subject: two\n", b"\r\n",
              b"\n", b"\r", b"X-Long: " + b"x" * 40 + b"\r\n", b"body text"]
    for case in range(2000):
        raw = b"".join(rng.choice(tokens) for _ in range(rng.randint(0, 12)))
        head = MessageHead()
        position = 0
        while position < len(raw):
            step = rng.randint(1, 7)
            head.add(raw[position:position + step])
            position += step
        assert summarize_headers(bytes(head)) == summarize_headers(raw), (case, raw)
    endless = b"Subject: no end\r\n" + b"X: y\r\n" * (HEAD_BYTES // 6)
    head = MessageHead()
    head.add(endless)
    assert bytes(head) == endless[:HEAD_BYTES] and head.complete


def send_envelope(client: LineClient, *recipients: str) -> None:
    assert client.reply()[0] == 220
    assert client.command("EHLO client.example")[0] == 250
    assert client.command(f"MAIL FROM:<{SENDER}>")[0] == 250
    for recipient in recipients or (INTAKE_ADDRESS,):
        assert client.command(f"RCPT TO:<{recipient}>")[0] == 250


def incoming_files(daemon: DaemonThread) -> list[Path]:
    incoming = daemon.config.storage.blob_root / ".incoming"
    return sorted(incoming.iterdir()) if incoming.is_dir() else []


def test_smuggled_end_of_data_stays_content_of_one_message(daemon: DaemonThread) -> None:
    smuggled = (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{INTAKE_ADDRESS}>\r\nDATA\r\n"
                "Subject: smuggled\r\n\r\nsecond message\r\n").encode()
    raw = mail("smuggling", b"bare LF\n.\n" + smuggled + b"bare CR\r.\r" + smuggled
               + b"LF then CRLF\n.\r\n" + smuggled + b"CRLF then LF\r\n.\n" + smuggled)
    wire = raw.replace(b"\r\n.", b"\r\n..")  # dot-stuffed: "\r\n.\n" starts a line
    client = LineClient(daemon.smtp_address)
    try:
        send_envelope(client)
        assert client.command("DATA")[0] == 354
        client.send(wire + b".\r\n")
        assert client.reply() == (250, "250 2.0.0 Message stored as evidence")
        # Had the server seen a second transaction, its replies would come before this one.
        assert client.command("NOOP") == (250, "250 OK")
    finally:
        client.close()
    (row,) = rows_for(daemon)
    assert row.sha256 == hashlib.sha256(raw).hexdigest() and row.subject == "smuggling"
    assert BlobStore(daemon.config.storage.blob_root).read_bytes(row.sha256) == raw


def test_a_line_of_3_mb_is_stored_byte_exact(daemon: DaemonThread) -> None:
    raw = mail("one long line", bytes(random.Random(3).choices(b"abc.\r\n", k=16))
               + b"y" * 3_000_000 + b"\r\n")
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], raw) == {}
    (row,) = rows_for(daemon)
    assert row.size == len(raw)
    assert BlobStore(daemon.config.storage.blob_root).read_bytes(row.sha256) == raw


def test_pipelined_commands_after_the_end_of_data_are_answered(daemon: DaemonThread) -> None:
    client = LineClient(daemon.smtp_address)
    try:
        send_envelope(client)
        assert client.command("DATA")[0] == 354
        client.send(b".\r\nNOOP\r\n")  # an empty message and the next command at once
        assert client.reply() == (250, "250 2.0.0 Message stored as evidence")
        assert client.reply() == (250, "250 OK")
    finally:
        client.close()
    (row,) = rows_for(daemon)
    assert row.size == 0 and row.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("drop", ["close", "reset"])
def test_a_connection_dropped_mid_data_leaves_no_row_and_no_spool_file(
        daemon: DaemonThread, drop: str) -> None:
    client = LineClient(daemon.smtp_address)
    try:
        send_envelope(client)
        assert client.command("DATA")[0] == 354
        client.send(mail("dropped", b"z" * 76 + b"\r\n") * (3 * SPOOL_WRITE_BYTES // 200))
        wait_until(lambda: [path for path in incoming_files(daemon)
                            if path.stat().st_size >= SPOOL_WRITE_BYTES],
                   message="the spool file receiving the DATA")
        if drop == "reset":
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        client.close()
    wait_until(lambda: incoming_files(daemon) == [], message="the spool file removed")
    assert rows_for(daemon) == []
    with smtplib.SMTP(*daemon.smtp_address) as retry:
        assert retry.sendmail(SENDER, [INTAKE_ADDRESS], mail("after the drop")) == {}
    assert len(rows_for(daemon)) == 1


def test_a_failing_spool_answers_451_before_the_data_and_the_session_goes_on(
        daemon: DaemonThread) -> None:
    blob_root = daemon.config.storage.blob_root
    raw = mail("no spool")
    aside = blob_root.with_name("blobs-aside")
    client = LineClient(daemon.smtp_address)
    try:
        send_envelope(client)
        os.rename(blob_root, aside)
        blob_root.write_bytes(b"not a directory")  # no spool file can be opened now
        try:
            # Refused before 354: the sender need not send the data to learn it.
            assert client.command("DATA")[0] == 451
            assert client.command("NOOP")[0] == 250
        finally:
            blob_root.unlink()
            os.rename(aside, blob_root)
        assert client.command("DATA")[0] == 354  # the transaction is still open
        client.send(raw + b".\r\n")
        assert client.reply()[0] == 250
    finally:
        client.close()
    (row,) = rows_for(daemon)
    assert row.sha256 == hashlib.sha256(raw).hexdigest()


def test_a_write_failing_mid_data_answers_451_after_it(
        daemon: DaemonThread, monkeypatch: pytest.MonkeyPatch) -> None:
    write = BlobWriter.write

    def disk_full_after_the_first_write(writer: BlobWriter, chunk: bytes) -> None:
        if writer.size:
            writer.abort()  # as BlobWriter.write does when os.write fails
            raise OSError(errno.ENOSPC, "No space left on device")
        write(writer, chunk)

    monkeypatch.setattr(BlobWriter, "write", disk_full_after_the_first_write)
    raw = mail("disk full", b"w" * 98 + b"\r\n") * (3 * SPOOL_WRITE_BYTES // 100)
    with smtplib.SMTP(*daemon.smtp_address) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(SENDER, [INTAKE_ADDRESS], raw)
        assert refused.value.smtp_code == 451
        assert client.noop()[0] == 250  # the whole DATA was read: the session goes on
        assert incoming_files(daemon) == []
        monkeypatch.undo()
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], raw) == {}
    (row,) = rows_for(daemon)
    assert row.size == len(raw)
    assert wait_until(lambda: incoming_files(daemon) == [], message="no spool file left")


def test_lmtp_oversize_gets_552_per_recipient_and_the_session_goes_on(make_daemon: Any) -> None:
    daemon = make_daemon(lmtp=True, max_message_bytes=4096,
                         intake={"addresses": (INTAKE_ADDRESS, "second@kommune.example")})
    client = LineClient(daemon.smtp_address)
    try:
        assert client.reply()[0] == 220
        assert client.command("LHLO mx.kommune.example")[0] == 250
        assert client.command(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert client.command(f"RCPT TO:<{INTAKE_ADDRESS}>")[0] == 250
        assert client.command("RCPT TO:<second@kommune.example>")[0] == 250
        assert client.command("DATA")[0] == 354
        client.send(mail("too big", b"b" * 8000 + b"\r\n") + b".\r\n")
        assert client.reply()[0] == 552
        assert client.reply()[0] == 552
        assert client.command("NOOP")[0] == 250
    finally:
        client.close()
    assert rows_for(daemon) == []
    assert incoming_files(daemon) == []


def test_lmtp_on_a_unix_socket_replaces_a_stale_socket_and_removes_it_at_stop(
    tmp_path: Path, make_daemon: Any
) -> None:
    socket_path = tmp_path / "lmtp.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(socket_path))  # as a crashed run leaves it: bound, nobody listening
    daemon = make_daemon(lmtp=True, socket=str(socket_path))
    assert socket_path.stat().st_mode & 0o777 == 0o660
    with smtplib.LMTP(str(socket_path)) as client:
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], mail("over the socket")) == {}
    (row,) = rows_for(daemon)
    assert (row.source, row.peer) == ("lmtp", None)
    daemon.stop()
    assert not socket_path.exists()


def test_a_socket_another_listener_serves_is_not_taken_over(
    tmp_path: Path, make_daemon: Any
) -> None:
    socket_path = tmp_path / "lmtp.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(socket_path))
        live.listen()
        with pytest.raises(OSError, match="another process is listening"):
            make_daemon(lmtp=True, socket=str(socket_path))
    assert socket_path.exists()


@pytest.mark.parametrize(("smtp", "key", "problem"), [
    ({"socket": "no-such-folder/lmtp.sock"}, "smtp.socket", "does not exist"),
    ({"socket": "x" * 120}, "smtp.socket", "too long"),
    ({"socket_mode": "660x"}, "smtp.socket_mode", "octal"),
    ({"socket_group": "no-such-group-here"}, "smtp.socket_group", "no group"),
])
def test_socket_settings_errors_name_the_key_and_file(
    tmp_path: Path, smtp: dict[str, str], key: str, problem: str
) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text("[smtp]\n" + "".join(f'{name} = "{value}"\n'
                                                  for name, value in smtp.items()))
    with pytest.raises(SettingsError) as error:
        load_config(config_file)
    assert (error.value.source, error.value.key) == (str(config_file), key)
    assert problem in error.value.problem


def test_a_relative_socket_path_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('[smtp]\nsocket = "lmtp.sock"\n')
    assert load_config(config_file).smtp.socket == str(tmp_path / "lmtp.sock")


def test_the_token_is_read_after_the_configured_delimiter() -> None:
    hyphen = RecipientPolicy.from_addresses(["chikane-mail@kommune.dk"], "-")
    assert hyphen.token_in("chikane-mail-abc@kommune.dk") == "abc"
    assert hyphen.accepts("chikane-mail@kommune.dk")
    assert hyphen.token_in("chikane-mail@kommune.dk") is None
    assert not hyphen.accepts("chikane@kommune.dk")
    assert not hyphen.accepts("chikane-mail+abc@kommune.dk")
    plus = RecipientPolicy.from_addresses(["chikanemail@kommune.dk"])
    assert plus.token_in("ChikaneMail+ABC@Kommune.DK") == "abc"
    assert plus.token_in("chikanemail+abc@other.dk") is None
