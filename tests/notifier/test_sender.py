"""The sender against a real SMTP relay (aiosmtpd on localhost) and a real Maildir.

The relay records every mail it accepts and dedupes nothing: the tests count by Message-ID,
as a receiver that honours the at-least-once contract would.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from notifier import sender as sender_module
from notifier.sender import OutboxSender
from notifier.settings import NotifySettings
from notifier.transport import (
    MaildirTransport,
    PermanentSendError,
    SendResult,
    SmtpTransport,
    TemporarySendError,
    transport_for,
)
from storage.claims import ClaimerIdentity as SenderIdentity
from storage.database import Database
from storage.errors import SettingsError
from storage.models import utc_now
from storage.outbox_rows import claim_outbox, list_outbox_rows
from tests.storage.test_outbox import BODY_LINE, make_mail, queue, row_of
from tests.support import free_port, wait_until

FAST = NotifySettings(smtp_host="127.0.0.1", first_retry_seconds=0.01, max_retry_seconds=0.05,
                      poll_seconds=0.05, timeout_seconds=5.0)


@dataclass(frozen=True)
class Delivery:
    """One mail the relay accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message_id(self) -> str:
        return str(BytesHeaderParser().parsebytes(self.raw)["Message-ID"])


class CapturingHandler:
    """An aiosmtpd handler that keeps what it accepts and refuses on request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.data_commands: Counter[str] = Counter()  # by Message-ID
        self.temporary_failures = 0  # answer the first N DATA of each Message-ID with 451
        self.data_reply: str | None = None  # answer every DATA with this
        self.rcpt_replies: dict[str, str] = {}  # answer RCPT TO:<address> with this
        self.refuse_every_rcpt: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            reply = self.refuse_every_rcpt or self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        delivery = Delivery(envelope.mail_from, tuple(envelope.rcpt_tos),
                            envelope.original_content)
        with self.lock:
            self.data_commands[delivery.message_id] += 1
            if self.data_commands[delivery.message_id] <= self.temporary_failures:
                return "451 4.3.0 Try again later"
            if self.data_reply:
                return self.data_reply
            self.deliveries.append(delivery)
        return "250 OK"

    def received(self) -> Counter[str]:
        """How often the relay accepted each Message-ID."""
        with self.lock:
            return Counter(delivery.message_id for delivery in self.deliveries)


@contextmanager
def running_relay(handler: CapturingHandler, port: int, **smtp_options: Any) -> Iterator[None]:
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            server_hostname="relay.test", **smtp_options)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


@pytest.fixture
def relay() -> Iterator[tuple[CapturingHandler, NotifySettings]]:
    """A capturing relay on a free port, and sender settings pointing at it."""
    handler = CapturingHandler()
    port = free_port()
    with running_relay(handler, port):
        yield handler, replace(FAST, smtp_port=port)


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process of this host that has finished."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


class CountingTransport(SmtpTransport):
    """The SMTP transport, counting the mails it handed over."""

    def __init__(self, settings: NotifySettings) -> None:
        super().__init__(settings)
        self.sent = 0

    def send(self, mail_from: str, rcpt_tos: Sequence[str], raw: bytes) -> SendResult:
        result = super().send(mail_from, rcpt_tos, raw)
        self.sent += 1
        return result


def sender_for(database: Database, settings: NotifySettings, **kwargs: Any) -> OutboxSender:
    return OutboxSender(database, SmtpTransport(settings), settings, **kwargs)


def states(database: Database) -> Counter[str]:
    return Counter(row.state for row in list_outbox_rows(database))


def test_a_queued_mail_reaches_the_relay_byte_for_byte(
    database: Database, relay: tuple[CapturingHandler, NotifySettings]
) -> None:
    handler, settings = relay
    mail = make_mail(rcpt_tos=("leder@kommune.example", "stedfortraeder@kommune.example"))
    queue(database, mail, settings)
    before = utc_now()

    assert sender_for(database, settings).send_until_idle() == 1

    (delivery,) = handler.deliveries
    assert delivery.raw == mail.raw
    assert delivery.mail_from == "chikanemail@kommune.example"
    assert delivery.rcpt_tos == ("leder@kommune.example", "stedfortraeder@kommune.example")
    row = row_of(database, mail.message_id)
    assert (row.state, row.attempts, row.last_error, row.claimed_by) == ("sent", 1, None, None)
    assert row.sent_at is not None and row.sent_at >= before


def test_temporary_refusals_are_retried_until_each_mail_arrives_once(
    database: Database, relay: tuple[CapturingHandler, NotifySettings]
) -> None:
    handler, settings = relay
    handler.temporary_failures = 3
    mails = [make_mail(n) for n in range(3)]
    for mail in mails:
        queue(database, mail, settings)
    sender = sender_for(database, settings)

    assert sender.send_due() == 3
    for mail in mails:
        row = row_of(database, mail.message_id)
        assert (row.state, row.attempts) == ("pending", 1)
        assert row.last_error is not None and "451 4.3.0 Try again later" in row.last_error

    def all_sent() -> bool:
        sender.send_due()
        return states(database) == {"sent": 3}

    wait_until(all_sent, message="every mail sent after the relay recovers")
    assert handler.received() == {mail.message_id: 1 for mail in mails}
    assert handler.data_commands == {mail.message_id: 4 for mail in mails}
    assert [row.attempts for row in list_outbox_rows(database)] == [4, 4, 4]


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_permanent_refusal_fails_at_once_and_says_so_once(
    database: Database, relay: tuple[CapturingHandler, NotifySettings],
    caplog: pytest.LogCaptureFixture, stage: str,
) -> None:
    handler, settings = relay
    if stage == "rcpt":
        handler.refuse_every_rcpt = "550 5.1.1 No such user"
    else:
        handler.data_reply = "550 5.7.1 Message refused"
    mail = make_mail(kind="receipt")
    queue(database, mail, settings)
    sender = sender_for(database, settings)
    caplog.set_level(logging.INFO, logger="chikanemail")

    assert sender.send_until_idle() == 0
    assert sender.send_due() == 0  # nothing left to retry

    row = row_of(database, mail.message_id)
    assert (row.state, row.attempts, row.sent_at) == ("failed", 1, None)
    assert row.last_error is not None and "550 5." in row.last_error
    assert handler.deliveries == []
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert mail.message_id in message and "receipt" in message
    assert all(BODY_LINE not in record.getMessage() for record in caplog.records)


def test_a_mail_whose_deadline_passes_fails(
    database: Database, relay: tuple[CapturingHandler, NotifySettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, settings = relay
    handler.temporary_failures = 1000
    settings = replace(settings, retry_deadline_hours=0.5 / 3600, first_retry_seconds=0.01)
    mail = make_mail()
    queue(database, mail, settings)
    sender = sender_for(database, settings)

    def failed() -> bool:
        sender.send_due()
        return row_of(database, mail.message_id).state == "failed"

    wait_until(failed, message="the mail to fail at its deadline")
    row = row_of(database, mail.message_id)
    assert row.last_error is not None and "deadline" in row.last_error
    assert row.attempts >= 1 and handler.deliveries == []
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_a_relay_that_is_down_gets_the_mail_once_it_is_up(database: Database) -> None:
    port = free_port()  # nobody listens here yet
    settings = replace(FAST, smtp_port=port, first_retry_seconds=0.3, max_retry_seconds=1.0)
    mail = make_mail()
    queue(database, mail, settings)
    sender = sender_for(database, settings)

    before = utc_now()
    assert sender.send_due() == 1
    row = row_of(database, mail.message_id)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error is not None and "cannot connect" in row.last_error
    assert row.next_attempt_at >= before + timedelta(seconds=0.3)
    assert sender.send_due() == 0  # backing off

    handler = CapturingHandler()
    with running_relay(handler, port):
        def sent() -> bool:
            sender.send_due()
            return row_of(database, mail.message_id).state == "sent"

        wait_until(sent, message="the mail to go out once the relay is up")
    assert handler.received() == {mail.message_id: 1}
    assert handler.deliveries[0].raw == mail.raw


def test_claims_of_dead_or_expired_senders_are_taken_over(
    database: Database, relay: tuple[CapturingHandler, NotifySettings], dead_pid: int,
) -> None:
    handler, settings = relay
    orphans = [make_mail(n) for n in range(3, 6)]
    for mail in orphans:
        queue(database, mail, settings)
    dead_sender = f"{socket.gethostname()}:{dead_pid}:tok"
    assert len(claim_outbox(database, sender_id=dead_sender, limit=10,
                         lease=timedelta(hours=1))) == 3
    long_ago = utc_now() - timedelta(hours=2)
    expired, held = make_mail(1), make_mail(2)
    queue(database, expired, settings, now=long_ago)
    queue(database, held, settings, now=long_ago)
    claim_outbox(database, sender_id="elsewhere.test:1:x", limit=1, lease=timedelta(minutes=10),
              now=long_ago)  # `expired`: its lease ran out long ago
    claim_outbox(database, sender_id="elsewhere.test:2:y", limit=1, lease=timedelta(hours=4),
              now=long_ago)  # `held`: another host's sender still has it

    sender = sender_for(database, settings)
    sender.start()
    try:
        wait_until(lambda: states(database) == {"sent": 4, "sending": 1},
                   message="dead and expired claims sent")
    finally:
        sender.stop()
    assert handler.received() == {m.message_id: 1 for m in [expired, *orphans]}
    assert row_of(database, held.message_id).claimed_by == "elsewhere.test:2:y"
    assert {row_of(database, m.message_id).attempts for m in [expired, *orphans]} == {2}


def test_a_crash_after_the_relay_accepted_sends_the_same_mail_again(
    database: Database, relay: tuple[CapturingHandler, NotifySettings], dead_pid: int,
) -> None:
    handler, settings = relay
    mail = make_mail()
    queue(database, mail, settings)
    dead_sender = f"{socket.gethostname()}:{dead_pid}:tok"
    (claimed,) = claim_outbox(database, sender_id=dead_sender, limit=1, lease=timedelta(hours=1))
    SmtpTransport(settings).send(claimed.mail_from, claimed.rcpt_tos, claimed.raw)
    # ... and the process died before it could mark the row sent.

    sender = sender_for(database, settings)
    sender.start()
    try:
        wait_until(lambda: row_of(database, mail.message_id).state == "sent",
                   message="the abandoned mail to be sent again")
    finally:
        sender.stop()
    assert handler.received() == {mail.message_id: 2}
    first, second = handler.deliveries
    assert first.raw == second.raw == mail.raw
    assert row_of(database, mail.message_id).attempts == 2


def test_two_senders_send_every_mail_exactly_once(
    database: Database, relay: tuple[CapturingHandler, NotifySettings],
) -> None:
    handler, settings = relay
    mails = [make_mail(n) for n in range(40)]
    for mail in mails:
        queue(database, mail, settings)
    transports = [CountingTransport(settings) for _ in range(2)]
    senders = [OutboxSender(database, transport, settings, batch_size=3)
               for transport in transports]
    for sender in senders:
        sender.start()
    try:
        wait_until(lambda: states(database) == {"sent": 40}, message="40 mails sent")
    finally:
        for sender in senders:
            sender.stop()
    assert handler.received() == {mail.message_id: 1 for mail in mails}
    assert {row.attempts for row in list_outbox_rows(database)} == {1}
    sent_by_each = [transport.sent for transport in transports]
    assert sum(sent_by_each) == 40 and all(sent_by_each)  # both took part


def test_partial_refusals_retry_4xx_recipients_and_report_5xx_ones(
    database: Database, relay: tuple[CapturingHandler, NotifySettings],
) -> None:
    handler, settings = relay
    handler.rcpt_replies = {"gone@kommune.example": "550 5.1.1 No such user",
                            "busy@kommune.example": "452 4.2.2 Mailbox full"}
    mail = make_mail(rcpt_tos=("leder@kommune.example", "gone@kommune.example",
                               "busy@kommune.example"))
    queue(database, mail, settings)
    sender = sender_for(database, settings)

    assert sender.send_due() == 1
    row = row_of(database, mail.message_id)
    assert row.state == "pending"
    assert row.last_error is not None and "452 4.2.2" in row.last_error
    assert [d.rcpt_tos for d in handler.deliveries] == [("leder@kommune.example",)]

    with handler.lock:
        del handler.rcpt_replies["busy@kommune.example"]
    wait_until(lambda: sender.send_due() and row_of(database, mail.message_id).state == "sent",
               message="the mail sent to the recipient that had been busy")
    # The whole mail went again: the receiving side dedupes by Message-ID.
    assert [d.rcpt_tos for d in handler.deliveries] == [
        ("leder@kommune.example",), ("leder@kommune.example", "busy@kommune.example")]
    assert handler.received() == {mail.message_id: 2}
    row = row_of(database, mail.message_id)
    assert row.last_error is not None and "gone@kommune.example: 550 5.1.1" in row.last_error


def test_the_sender_thread_survives_a_broken_database(
    database: Database, relay: tuple[CapturingHandler, NotifySettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, settings = relay
    sender = sender_for(database, settings)
    sender.start()
    try:
        with database.engine.begin() as connection:
            connection.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
        wait_until(lambda: any("could not claim" in r.getMessage() for r in caplog.records),
                   message="the sender to hit the broken database")
        with database.engine.begin() as connection:
            connection.execute(text("ALTER TABLE outbox_gone RENAME TO outbox"))
        mail = make_mail()
        queue(database, mail, settings)
        sender.wake()
        wait_until(lambda: handler.received() == {mail.message_id: 1},
                   message="the mail sent once the database is back")
    finally:
        sender.stop()


def test_a_batch_cut_short_by_the_database_is_recorded_and_handed_back_when_it_returns(
    database: Database, relay: tuple[CapturingHandler, NotifySettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database goes away just after the relay took the first mail of a batch: that mail
    is recorded as sent (not sent twice) and the rest is handed back, once it answers again."""
    handler, settings = relay
    mails = [make_mail() for _ in range(3)]
    for mail in mails:
        queue(database, mail, settings)
    sender = sender_for(database, settings)
    real_mark_sent = sender_module.mark_outbox_sent

    def database_gone(*args: Any, **kwargs: Any) -> bool:
        raise OperationalError("UPDATE outbox", {}, Exception("server closed the connection"))

    monkeypatch.setattr(sender_module, "mark_outbox_sent", database_gone)
    with pytest.raises(OperationalError):
        sender.send_due()
    assert sum(handler.received().values()) == 1
    assert states(database) == {"sending": 3}
    monkeypatch.setattr(sender_module, "mark_outbox_sent", real_mark_sent)

    assert sender.send_until_idle() == 2
    assert handler.received() == {mail.message_id: 1 for mail in mails}
    assert states(database) == {"sent": 3}
    # Handing back spends no try: each mail was claimed once to be sent.
    assert {row_of(database, mail.message_id).attempts for mail in mails} == {1}


def test_smtp_with_starttls_and_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"hemmeligt", handled=False)

    password_file = tmp_path / "relay-password"
    password_file.write_text("hemmeligt\n", encoding="utf-8")
    handler, port = CapturingHandler(), free_port()
    settings = replace(FAST, smtp_port=port, starttls=True, username="chikanemail",
                       password_file=str(password_file))
    mail = make_mail()
    with running_relay(handler, port, tls_context=server_context, require_starttls=True,
                       auth_required=True, authenticator=authenticator,
                       auth_exclude_mechanism=["LOGIN"]):
        SmtpTransport(settings).send(mail.mail_from, mail.rcpt_tos, mail.raw)
        password_file.write_text("forkert\n", encoding="utf-8")
        with pytest.raises(TemporarySendError, match="535"):  # fixable before the deadline
            SmtpTransport(settings).send(mail.mail_from, mail.rcpt_tos, mail.raw)
    assert logins == [(b"chikanemail", b"hemmeligt"), (b"chikanemail", b"forkert")]
    assert [delivery.raw for delivery in handler.deliveries] == [mail.raw]


def test_a_missing_password_file_is_named_at_start(tmp_path: Path) -> None:
    settings = replace(FAST, username="chikanemail", password_file=str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match=r"notify\.password_file.*missing"):
        SmtpTransport(settings)
    with pytest.raises(SettingsError, match=r"notify\.password_file"):
        SmtpTransport(replace(FAST, username="chikanemail"))


def test_a_mail_without_recipients_is_refused_for_good() -> None:
    with pytest.raises(PermanentSendError):
        SmtpTransport(FAST).send("a@kommune.example", (), b"Subject: x\r\n\r\n")


def test_the_maildir_transport_keeps_the_exact_bytes_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    transport = transport_for(NotifySettings(), data_dir)
    assert isinstance(transport, MaildirTransport)
    mail = make_mail()

    transport.send(mail.mail_from, mail.rcpt_tos, mail.raw)

    maildir = data_dir / "outgoing-maildir"
    (stored,) = (maildir / "new").iterdir()
    assert stored.read_bytes() == mail.raw
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    for folder in (data_dir, maildir, maildir / "new", maildir / "tmp", maildir / "cur"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert list((maildir / "tmp").iterdir()) == []
    assert isinstance(transport_for(FAST, data_dir), SmtpTransport)


def test_a_first_run_without_relay_delivers_into_the_maildir(
    database: Database, tmp_path: Path,
) -> None:
    settings = NotifySettings(first_retry_seconds=0.01)
    mails = [make_mail(n) for n in range(3)]
    for mail in mails:
        queue(database, mail, settings)
    sender = OutboxSender(database, transport_for(settings, tmp_path), settings)
    assert sender.send_until_idle() == 3
    stored = sorted(path.read_bytes() for path in (tmp_path / "outgoing-maildir/new").iterdir())
    assert stored == sorted(mail.raw for mail in mails)


def test_a_sender_identity_tells_dead_claims_from_live_ones(dead_pid: int) -> None:
    identity, sibling = SenderIdentity(), SenderIdentity()
    host = socket.gethostname()
    assert str(identity) != str(sibling)
    assert not identity.is_abandoned(str(sibling))  # same process: alive
    assert identity.is_abandoned(f"{host}:{dead_pid}:tok")
    assert identity.is_abandoned(f"{host}:{os.getpid()}:earlier-run")
    assert not identity.is_abandoned(f"elsewhere.test:{dead_pid}:tok")
    assert not identity.is_abandoned("garbage")
