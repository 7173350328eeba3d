"""Cases end to end, real SMTP both ways: the daemon takes reports in; a capturing relay
(aiosmtpd) plays the workplace's mail server and receives receipts and notifications."""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from intake.cli import main
from storage.cases import case_messages, case_notes, list_cases
from storage.database import Database
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    DaemonThread,
    free_port,
    make_config,
    wait_until,
    write_toml,
)

REPORTER = "ansat@kommune.example"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class CapturingRelay:
    """An SMTP server that keeps what it gets; it can refuse the first N mails with 451."""

    refuse_first: int = 0
    mails: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refused: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.refused < self.refuse_first:
                self.refused += 1
                return "451 4.3.0 try again later"
            self.mails.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                       envelope.original_content))
        return "250 OK"

    def by_message_id(self) -> dict[str, list[Received]]:
        with self.lock:
            grouped: dict[str, list[Received]] = {}
            for mail in self.mails:
                grouped.setdefault(str(mail.message["Message-ID"]), []).append(mail)
            return grouped

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [mail for mail in self.mails if address in mail.rcpt_tos]


@pytest.fixture
def relay() -> Iterator[tuple[CapturingRelay, int]]:
    handler = CapturingRelay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def report(subject: str = "VS: Du er ikke velkommen", *, sender: str = REPORTER,
           headers: dict[str, str] | None = None, body: str = "Se nedenfor.\n") -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = subject
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body + "\n---------- Forwarded message ---------\nFrom: Kasper "
                     "<kasper@eksempel.example>\nDate: Wed, 18 Nov 2026 21:47:00 +0100\n"
                     "Subject: Du er ikke velkommen\nTo: <ansat@kommune.example>\n\n"
                     "Vi ved hvor du bor.\n")
    return mail.as_bytes()


def send(daemon: DaemonThread, raw: bytes, mail_from: str = REPORTER) -> None:
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail(mail_from, [INTAKE_ADDRESS], raw) == {}


@pytest.fixture
def start(tmp_path: Path, database_url: str,
          relay: tuple[CapturingRelay, int]) -> Iterator[Any]:
    started: list[DaemonThread] = []

    def run(**notify: Any) -> DaemonThread:
        config = make_config(tmp_path / "data", database_url, extract={"ocr": False},
                             notify={"smtp_host": "127.0.0.1", "smtp_port": relay[1],
                                     **notify})
        daemon = DaemonThread(config).start()
        started.append(daemon)
        return daemon

    yield run
    for daemon in started:
        daemon.stop()


def database_of(daemon: DaemonThread) -> Database:
    return Database(daemon.config.storage.effective_database_url)


def test_report_gives_receipt_and_notification_in_danish(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon = start()
    send(daemon, report())
    receipt = wait_until(lambda: capture.to(REPORTER), message="the receipt")[0]
    notification = wait_until(lambda: capture.to(MANAGER), message="the notification")[0]
    number = wait_until(lambda: list_cases_of(daemon), message="a case")[0]
    assert number.endswith("-0001")

    message = receipt.message
    assert message["Subject"].startswith(f"[Sag {number}]")
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert INTAKE_ADDRESS in str(message["Reply-To"])
    text = message.get_body(("plain",)).get_content()
    assert number in text

    note = notification.message
    assert note["Subject"].startswith(f"[Sag {number}]")
    assert note["Auto-Submitted"] == "auto-generated"
    body = note.get_body(("plain",)).get_content()
    assert "kasper@eksempel.example" in body and "Du er ikke velkommen" in body
    assert "Vi ved hvor du bor" not in body  # no evidence content by default
    assert not list(note.iter_attachments())


def list_cases_of(daemon: DaemonThread) -> list[str]:
    database = database_of(daemon)
    try:
        return [case.number for case in list_cases(database)]
    finally:
        database.dispose()


def test_english_notifications(start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon = start(language="en")
    send(daemon, report())
    receipt = wait_until(lambda: capture.to(REPORTER), message="the receipt")[0]
    assert receipt.message["Subject"].startswith("[Case ")


def test_follow_ups_thread_and_strangers_open_new_cases(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon = start()
    send(daemon, report())
    receipt = wait_until(lambda: capture.to(REPORTER), message="the receipt")[0].message
    number = list_cases_of(daemon)[0]

    # A reply to our receipt threads by In-Reply-To/References.
    send(daemon, report(f"Re: {receipt['Subject']}", headers={
        "In-Reply-To": str(receipt["Message-ID"]),
        "References": str(receipt["Message-ID"])}, body="Et billede mere."))
    # The reporter types the tag by hand.
    send(daemon, report(f"mere til sag {number}", body="Og en til."))
    # The manager writes: a note.
    send(daemon, report(f"SV: [Sag {number}] ny sag", sender=MANAGER,
                        body="Jeg har talt med hende."), mail_from=MANAGER)
    # A stranger using the tag opens a case of their own.
    send(daemon, report(f"[Sag {number}] hej", sender="fremmed@andet.example",
                        body="Hej."), mail_from="fremmed@andet.example")

    def settled() -> list[str]:
        numbers = list_cases_of(daemon)
        return numbers if len(numbers) == 2 else []

    numbers = wait_until(settled, timeout=30, message="two cases")
    database = database_of(daemon)
    try:
        cases = {case.number: case for case in list_cases(database)}
        first = cases[number]

        def kinds() -> list[str | None]:
            return [m.kind for m in case_messages(database, first.id)]

        wait_until(lambda: len(kinds()) == 4, message="four messages in the first case")
        assert kinds() == ["report", "follow-up", "follow-up", "note"]
        notes = case_notes(database, first.id)
        assert [n.author for n in notes] == [MANAGER]
        assert "talt med hende" in notes[0].text
        other = next(case for n, case in cases.items() if n != number)
        assert other.reporter == "fremmed@andet.example"
    finally:
        database.dispose()
    assert sorted(numbers)[-1].endswith("-0002")
    # The stranger got a receipt for their own case only; nothing went out for follow-ups.
    wait_until(lambda: len(capture.to("fremmed@andet.example")) == 1, message="receipt")
    assert len(capture.to(REPORTER)) == 1


def test_out_of_office_and_bounces_open_nothing_and_get_nothing(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon = start()
    send(daemon, report("Automatisk svar: Ikke på kontoret",
                        headers={"Auto-Submitted": "auto-replied",
                                 "X-Auto-Response-Suppress": "All"}))
    bounce = EmailMessage()
    bounce["From"] = "MAILER-DAEMON@kommune.example"
    bounce["To"] = INTAKE_ADDRESS
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce.set_content("This is the mail system.")
    with smtplib.SMTP(*daemon.smtp_address) as client:
        client.sendmail("", [INTAKE_ADDRESS], bounce.as_bytes())
    database = database_of(daemon)
    try:
        from storage.messages import list_messages
        rows = wait_until(lambda: [r for r in list_messages(database) if r.kind],
                          message="both processed")
        wait_until(lambda: len([r for r in list_messages(database) if r.kind]) == 2,
                   message="both processed")
        rows = list_messages(database)
        assert {row.kind for row in rows} == {"not-a-report"}
        assert all(row.automatic and row.case_id is None for row in rows)
        assert list_cases(database) == []
    finally:
        database.dispose()
    assert capture.mails == []


def test_a_refusing_relay_still_gets_every_mail_exactly_once(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    capture.refuse_first = 3
    daemon = start()
    for n in range(3):
        send(daemon, report(f"Rapport {n}", sender=f"ansat{n}@kommune.example"),
             mail_from=f"ansat{n}@kommune.example")
    wait_until(lambda: len(capture.by_message_id()) == 6, timeout=60,
               message="3 receipts and 3 notifications")
    assert all(len(copies) == 1 for copies in capture.by_message_id().values())
    assert capture.refused == 3


def test_two_daemons_on_one_database_number_cases_gap_free(
        tmp_path: Path, database_url: str, relay: tuple[CapturingRelay, int]) -> None:
    capture, port = relay
    config = make_config(tmp_path / "data", database_url, extract={"ocr": False},
                         notify={"smtp_host": "127.0.0.1", "smtp_port": port})
    with DaemonThread(config) as first, DaemonThread(config) as second:
        def report_many(daemon: DaemonThread, offset: int) -> None:
            for n in range(8):
                sender = f"ansat{offset + n}@kommune.example"
                send(daemon, report(f"Rapport {offset + n}", sender=sender), mail_from=sender)

        threads = [threading.Thread(target=report_many, args=(d, o))
                   for d, o in ((first, 0), (second, 100))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        numbers = wait_until(lambda: (n := list_cases_of(first)) and len(n) == 16 and n,
                             timeout=60, message="16 cases")
        wait_until(lambda: len(capture.by_message_id()) == 32, timeout=60,
                   message="16 receipts and 16 notifications")
    year = numbers[0][:4]
    assert sorted(numbers) == [f"{year}-{n:04d}" for n in range(1, 17)]
    assert all(len(copies) == 1 for copies in capture.by_message_id().values())


def test_cases_and_outbox_commands(start: Any, relay: tuple[CapturingRelay, int],
                                   tmp_path: Path) -> None:
    capture, _ = relay
    daemon = start()
    send(daemon, report())
    wait_until(lambda: len(capture.mails) == 2, message="receipt and notification")
    storage = daemon.config.storage
    config = write_toml(tmp_path / "cli.toml", {"storage": {
        "data_dir": storage.data_dir, "database_url": storage.effective_database_url}})
    runner = CliRunner()

    def cli(*args: str) -> Any:
        result = runner.invoke(main, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result

    (listed,) = json.loads(cli("cases", "list", "--json").stdout)
    number = listed["number"]
    assert {"number", "status", "reporter", "manager", "deputy", "opened_at"} <= set(listed)
    assert (listed["status"], listed["reporter"], listed["manager"]) == ("open", REPORTER,
                                                                          MANAGER)
    cli("cases", "note", number, "Samtale holdt mandag.")
    cli("cases", "assign", number, "Ny.Leder@kommune.example")
    shown = json.loads(cli("cases", "show", number, "--json").stdout)
    assert shown["manager"] == "ny.leder@kommune.example"
    assert shown["routing_source"] == "default"
    assert [m["automatic"] for m in shown["messages"]] == [False]
    assert {"sha256", "message_id", "subject", "automatic"} <= set(shown["messages"][0])
    assert shown["evidence"] and {"sha256", "role", "parent"} <= set(shown["evidence"][0])
    assert shown["original"]["from"] == "kasper@eksempel.example"
    assert shown["notes"][0]["text"] == "Samtale holdt mandag."
    kinds = sorted((m["kind"], m["state"]) for m in shown["outbox"])
    assert kinds == [("notification", "sent"), ("receipt", "sent")]
    assert {"kind", "to", "state", "message_id"} <= set(shown["outbox"][0])
    tree = cli("cases", "show", number)
    assert number in tree.stdout
    cli("cases", "close", number, "--reason", "Afsluttet efter opfølgningsmøde")
    assert json.loads(cli("cases", "list", "--json", "--status", "closed").stdout)[0][
        "number"] == number
    again = runner.invoke(main, ["--config", str(config), "cases", "close", number,
                                 "--reason", "igen"])
    assert again.exit_code != 0 and "already closed" in again.output
    outbox = json.loads(cli("outbox", "list", "--json").stdout)
    assert {row["message_id"] for row in outbox} == set(capture.by_message_id())
    missing = runner.invoke(main, ["--config", str(config), "cases", "show", "1999-0001"])
    assert missing.exit_code == 1
