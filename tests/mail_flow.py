"""Mail both ways for end-to-end tests: a capturing relay (aiosmtpd) playing the
workplace's mail server, reports to send in, and the database of a running daemon."""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from storage.cases import list_cases
from storage.database import Database
from tests.support import INTAKE_ADDRESS, DaemonThread

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


def send(daemon: DaemonThread, raw: bytes, mail_from: str = REPORTER,
         to: str = INTAKE_ADDRESS) -> None:
    with smtplib.SMTP(*daemon.smtp_address) as client:
        assert client.sendmail(mail_from, [to], raw) == {}


def reply_address(mail: Received) -> str:
    """The secret reply address a mail of ours carries in its Reply-To."""
    return str(mail.message["Reply-To"].addresses[0].addr_spec)


def database_of(daemon: DaemonThread) -> Database:
    return Database(daemon.config.storage.effective_database_url)


def list_cases_of(daemon: DaemonThread) -> list[str]:
    database = database_of(daemon)
    try:
        return [case.number for case in list_cases(database)]
    finally:
        database.dispose()


