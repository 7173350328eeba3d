"""R5: the SMTP listener against a hostile client over real sockets.

- SMTP smuggling (SEC Consult, December 2023): an end of data written with a bare LF or a
  bare CR, followed by a whole second transaction, must stay the content of the one message;
  only "." CRLF after a CRLF ends DATA (RFC 5321 4.1.1.4).
- With smtp.require_starttls nothing but EHLO, STARTTLS and QUIT is answered before TLS:
  every other command gets 530 (RFC 3207 section 4 would let NOOP through; the issue asks
  for less).
- AUTH is never offered (we have no users), and an AUTH before TLS is refused.
"""

from __future__ import annotations

import base64
import hashlib
import smtplib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from storage.blobstore import BlobStore
from storage.cases import list_cases
from storage.database import Database
from storage.models import Message
from tests.receive.test_smtp import LineClient
from tests.support import INTAKE_ADDRESS, DaemonThread, make_config, message_rows, wait_until

pytestmark = pytest.mark.faults

SENDER = "ansat@kommune.example"
STORED = (250, "250 2.0.0 Message stored as evidence")

# The end-of-data look-alikes of the smuggling research: each is sent as the attacker's
# server would, not dot-stuffed, and followed by a complete second transaction.
SMUGGLING_ENDS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-cr": b"\r.\r",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "crlf-dot-cr": b"\r\n.\r",
    "crlf-dot-cr-lf-split": b"\r\n.\r\r\n",
    "lf-lf-dot-lf": b"\n\n.\n\n",
}


def smuggled_transaction(name: str) -> bytes:
    return (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{INTAKE_ADDRESS}>\r\nDATA\r\n"
            f"From: <{SENDER}>\r\nSubject: smuggled {name}\r\n"
            f"Message-ID: <smuggled-{name}@kommune.example>\r\n\r\n"
            f"the injected second message\r\n").encode()


def smuggling_wire(name: str, end: bytes) -> bytes:
    """The DATA of one message as an attacker sends it, without the real end of data."""
    head = (f"From: Ansat <{SENDER}>\r\nTo: <{INTAKE_ADDRESS}>\r\nSubject: carrier {name}\r\n"
            f"Message-ID: <carrier-{name}@kommune.example>\r\n\r\n").encode()
    return head + b"Se nedenfor." + end + smuggled_transaction(name) + b"after it\r\n"


def unstuffed(wire: bytes) -> bytes:
    """The message a receiver keeps of DATA bytes (RFC 5321 4.5.2: a dot after CRLF goes)."""
    return wire.replace(b"\r\n.", b"\r\n")



def case_count(database_url: str) -> int:
    database = Database(database_url)
    try:
        return len(list_cases(database))
    finally:
        database.dispose()


@pytest.fixture
def make_daemon(tmp_path: Path, database_url: str) -> Iterator[Callable[..., DaemonThread]]:
    """Start a daemon (SMTP settings of the test's choosing, OCR off); stopped afterwards."""
    started: list[DaemonThread] = []

    def start(**smtp: Any) -> DaemonThread:
        config = make_config(tmp_path / "data", database_url, extract={"ocr": False}, **smtp)
        daemon = DaemonThread(config).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(tmp_path: Path, certificate_authority: trustme.CA) -> dict[str, str]:
    server_cert = certificate_authority.issue_cert("chikanemail.test", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    return {"tls_cert": str(cert), "tls_key": str(key)}


@pytest.fixture
def client_context(certificate_authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    return context


# -- smuggling ---------------------------------------------------------------------------


def test_smuggled_end_of_data_injects_no_second_message(
        make_daemon: Callable[..., DaemonThread]) -> None:
    daemon = make_daemon()
    url = daemon.config.storage.effective_database_url
    expected: dict[str, bytes] = {}
    client = LineClient(daemon.smtp_address)
    try:
        assert client.reply()[0] == 220
        assert client.command("EHLO attacker.example")[0] == 250
        for name, end in SMUGGLING_ENDS.items():
            assert client.command(f"MAIL FROM:<{SENDER}>")[0] == 250
            assert client.command(f"RCPT TO:<{INTAKE_ADDRESS}>")[0] == 250
            assert client.command("DATA")[0] == 354
            wire = smuggling_wire(name, end)
            client.send(wire + b".\r\n")
            # One reply for the one transaction: a smuggled MAIL/RCPT/DATA would have
            # answered first (250 2.1.0, 250 2.1.5, 354) before this.
            assert client.reply() == STORED, name
            assert client.command("NOOP") == (250, "250 OK"), f"{name}: a reply was left over"
            expected[name] = unstuffed(wire)
        # The session goes on as usual: an honest transaction afterwards is taken.
        assert client.command("RSET")[0] == 250
        assert client.command(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert client.command(f"RCPT TO:<{INTAKE_ADDRESS}>")[0] == 250
        assert client.command("DATA")[0] == 354
        honest = (f"From: <{SENDER}>\r\nSubject: honest\r\n"
                  "Message-ID: <honest@kommune.example>\r\n\r\nhello\r\n").encode()
        client.send(honest + b".\r\n")
        assert client.reply() == STORED
        assert client.command("QUIT")[0] == 221
    finally:
        client.close()
    expected["honest"] = honest

    def all_processed() -> list[Message]:
        rows = message_rows(url)
        return rows if rows and all(row.state == "processed" for row in rows) else []

    rows = wait_until(all_processed, timeout=20, interval=0.05, message="messages processed")
    by_sha = {row.sha256: row for row in rows}
    wanted = {hashlib.sha256(raw).hexdigest(): name for name, raw in expected.items()}
    assert set(by_sha) == set(wanted), "exactly the sent messages, no smuggled one"
    assert len(rows) == len(expected)
    assert not [row for row in rows if (row.subject or "").startswith("smuggled")]
    store = BlobStore(daemon.config.storage.blob_root)
    for sha256, name in wanted.items():
        if name == "honest":
            continue
        raw = store.read_bytes(sha256)
        assert raw == expected[name]
        assert smuggled_transaction(name).rstrip(b"\r\n").split(b"\r\n")[-1] in raw
        assert f"Subject: smuggled {name}".encode() in raw, "the smuggled text is content"
        assert by_sha[sha256].subject == f"carrier {name}"
        assert by_sha[sha256].times_seen == 1
    assert case_count(url) == len(expected), "one case per message, none for smuggled text"


# -- require_starttls ------------------------------------------------------------------

# Every command aiosmtpd knows but EHLO, STARTTLS and QUIT, plus one it does not know.
REFUSED_BEFORE_TLS = [
    "HELO client.example", f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{INTAKE_ADDRESS}>", "DATA",
    "RSET", "NOOP", f"VRFY <{INTAKE_ADDRESS}>", f"EXPN <{INTAKE_ADDRESS}>", "HELP",
    "AUTH PLAIN " + base64.b64encode(b"\0intake\0secret").decode(), "AUTH LOGIN",
    "BDAT 5 LAST", "XCLIENT ADDR=10.0.0.1", "FOOBAR",
]


# The listener's protocol does not depend on the database: these run on SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_require_starttls_answers_only_ehlo_starttls_quit_before_tls(
        make_daemon: Callable[..., DaemonThread], tls_files: dict[str, str],
        client_context: ssl.SSLContext) -> None:
    daemon = make_daemon(require_starttls=True, **tls_files)
    url = daemon.config.storage.effective_database_url
    with smtplib.SMTP(*daemon.smtp_address, timeout=10) as client:
        # Before EHLO and after it: the session state makes no difference.
        for command in REFUSED_BEFORE_TLS[:2]:
            assert client.docmd(command)[0] == 530, command
        code, _ = client.ehlo("client.example")
        assert code == 250
        assert client.has_extn("starttls")
        assert not client.has_extn("auth"), "AUTH offered before TLS"
        for command in REFUSED_BEFORE_TLS:
            code, text = client.docmd(command)
            assert code == 530, f"{command!r} before STARTTLS got {code} {text!r}"
        # The refusals changed nothing: the session can still upgrade and deliver.
        client.starttls(context=client_context)
        client.ehlo("client.example")
        assert not client.has_extn("auth"), "AUTH offered after TLS (we have no users)"
        assert not client.has_extn("starttls")
        assert client.noop()[0] == 250
        code, _ = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0a\0b").decode())
        assert code == 504, "no AUTH mechanism exists even over TLS"
        raw = (f"From: <{SENDER}>\r\nSubject: over tls\r\n"
               "Message-ID: <tls@kommune.example>\r\n\r\nhi\r\n").encode()
        assert client.sendmail(SENDER, [INTAKE_ADDRESS], raw) == {}
    (row,) = message_rows(url)
    assert row.tls is True and row.sha256 == hashlib.sha256(raw).hexdigest()


# The listener's protocol does not depend on the database: these run on SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_quit_before_tls_is_answered(make_daemon: Callable[..., DaemonThread],
                                     tls_files: dict[str, str]) -> None:
    daemon = make_daemon(require_starttls=True, **tls_files)
    client = LineClient(daemon.smtp_address)
    try:
        assert client.reply()[0] == 220
        assert client.command("QUIT")[0] == 221
    finally:
        client.close()
    assert message_rows(daemon.config.storage.effective_database_url) == []


# The listener's protocol does not depend on the database: these run on SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("tls", [False, True], ids=["no-tls-configured", "tls-optional"])
def test_auth_is_never_offered_nor_accepted_without_tls(
        make_daemon: Callable[..., DaemonThread], tls_files: dict[str, str], tls: bool) -> None:
    daemon = make_daemon(**(tls_files if tls else {}))
    with smtplib.SMTP(*daemon.smtp_address, timeout=10) as client:
        client.ehlo("client.example")
        assert not client.has_extn("auth")
        assert client.has_extn("starttls") is tls
        for mechanism in ("PLAIN " + base64.b64encode(b"\0intake\0secret").decode(),
                          "LOGIN", "CRAM-MD5", "XOAUTH2 dG9rZW4="):
            code, text = client.docmd("AUTH", mechanism)
            # 538: encryption required (RFC 4954); never 235 (or 334, a challenge).
            assert code == 538, f"AUTH {mechanism.split()[0]} without TLS: {code} {text!r}"
        # The refusals leave the session usable.
        assert client.noop()[0] == 250
