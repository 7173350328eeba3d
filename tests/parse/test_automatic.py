"""Automatic mail (out-of-office, vacation, bounces, lists, bulk) against a person's report."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from intake.parse.automatic import REASONS, automatic_reason
from intake.parse.parts import parse_message
from tests.support import CORPUS


def mail(text: str) -> EmailMessage:
    """A message from header lines and body written with \\n, sent as CRLF like SMTP."""
    return parse_message(text.replace("\n", "\r\n").encode("utf-8"))


def header_block(raw: bytes) -> EmailMessage:
    """Only the header block, parsed as the case step does (parse.headers.parse_header_block)."""
    match = re.search(rb"\r?\n\r?\n", raw)
    message = BytesHeaderParser(policy=policy.default).parsebytes(
        raw[: match.end()] if match else raw)
    assert isinstance(message, EmailMessage)
    return message


# Exchange Online's out-of-office reply in Danish, as the Outlook client configures it.
OUTLOOK_OUT_OF_OFFICE = """\
From: Mette Hansen <mette.hansen@kommune.dk>
To: Chikanemail <chikane@kommune.dk>
Subject: Automatisk svar: Chikane fra en kollega
Thread-Topic: Chikane fra en kollega
Thread-Index: AQHZeE9/uR0mx9Kq3UimCKHLEgf/WK89rmIb
Date: Mon, 3 Jun 2024 08:15:02 +0000
Message-ID: <aef8de8b87ce408d98043942ab89c729@DB9PR02MB7205.eurprd02.prod.outlook.com>
In-Reply-To: <case-17@chikane.kommune.dk>
References: <case-17@chikane.kommune.dk>
Content-Language: da-DK
X-MS-Has-Attach:
X-Auto-Response-Suppress: All
X-MS-Exchange-Inbox-Rules-Loop: mette.hansen@kommune.dk
X-MS-TNEF-Correlator:
Auto-Submitted: {auto_submitted}
X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable
MIME-Version: 1.0

Jeg er ikke p=C3=A5 kontoret fra 3. juni til 14. juni og l=C3=A6ser ikke mail.
Kontakt venligst Lars Nielsen (lars.nielsen@kommune.dk) i akutte sager.
"""

GMAIL_VACATION = """\
MIME-Version: 1.0
From: Sofie Larsen <sofie.larsen@gmail.com>
Date: Tue, 4 Jun 2024 10:02:11 +0200
Message-ID: <CAOdWxJy2Qy1n2m5v1q9xk7TQ@mail.gmail.com>
Subject: Ferie: Din henvendelse
To: chikane@kommune.dk
Auto-Submitted: auto-replied
Precedence: bulk
X-Autoreply: yes
In-Reply-To: <case-18@chikane.kommune.dk>
Content-Type: text/plain; charset="UTF-8"

Jeg holder ferie til og med 21. juni.
"""

BOUNCE = """\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx1.kommune.dk>
To: chikane@kommune.dk
Subject: Undelivered Mail Returned to Sender
Date: Wed, 5 Jun 2024 09:00:00 +0200 (CEST)
Message-Id: <20240605070000.1B2C3@mx1.kommune.dk>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="1B2C3.1717570800/mx1.kommune.dk"

This is a MIME-encapsulated message.

--1B2C3.1717570800/mx1.kommune.dk
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<leder@skole.kommune.dk>: host mx.skole.kommune.dk said: 550 5.1.1 User unknown

--1B2C3.1717570800/mx1.kommune.dk
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.kommune.dk
Arrival-Date: Wed,  5 Jun 2024 08:59:58 +0200 (CEST)

Final-Recipient: rfc822; leder@skole.kommune.dk
Action: failed
Status: 5.1.1

--1B2C3.1717570800/mx1.kommune.dk
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: chikane@kommune.dk
To: leder@skole.kommune.dk
Subject: Ny sag 17

--1B2C3.1717570800/mx1.kommune.dk--
"""

LIST_MAIL = """\
From: Personaleforeningen <nyt@personale.kommune.dk>
To: alle@lists.kommune.dk
Subject: Julefrokost
List-Id: Alle ansatte <alle.lists.kommune.dk>
List-Post: <mailto:alle@lists.kommune.dk>
Date: Thu, 6 Jun 2024 12:00:00 +0200
Message-ID: <jul-2024@lists.kommune.dk>
Content-Type: text/plain; charset=utf-8

Tilmelding senest fredag.
"""

NEWSLETTER = """\
From: Nyhedsbrev <news@leverandor.dk>
To: chikane@kommune.dk
Subject: Juni-nyheder
Precedence: bulk
Date: Thu, 6 Jun 2024 12:00:00 +0200
Message-ID: <juni@leverandor.dk>
Content-Type: text/plain; charset=utf-8

Se vores nye produkter.
"""

# What an employee sends: an inline forward of the harassing mail, written by a person.
EMPLOYEE_REPORT = """\
From: Anna Holm <anna.holm@skole.kommune.dk>
To: chikane@kommune.dk
Subject: VS: Din opf=?utf-8?q?=C3=B8rsel?=
Date: Fri, 7 Jun 2024 07:45:12 +0000
Message-ID: <AM0PR02MB5602A1B2C3D4@AM0PR02MB5602.eurprd02.prod.outlook.com>
X-Auto-Response-Suppress: All
Content-Language: da-DK
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Hej, jeg videresender denne mail fra en kollega.

Fra: Bo Berg <bo.berg@skole.kommune.dk>
Sendt: 6. juni 2024 22:13
Til: Anna Holm <anna.holm@skole.kommune.dk>
Emne: Din opførsel

Du skal passe på.
"""


def test_outlook_out_of_office_in_danish() -> None:
    assert automatic_reason(mail(OUTLOOK_OUT_OF_OFFICE.format(
        auto_submitted="auto-replied")), "mette.hansen@kommune.dk") == "auto-submitted"


def test_exchange_marks_its_out_of_office_auto_generated() -> None:
    # Real Exchange and Exchange Online replies say auto-generated, not auto-replied.
    assert automatic_reason(mail(OUTLOOK_OUT_OF_OFFICE.format(
        auto_submitted="auto-generated")), None) == "auto-submitted"


def test_gmail_vacation_responder() -> None:
    assert automatic_reason(mail(GMAIL_VACATION), "sofie.larsen@gmail.com") == "auto-submitted"


def test_gmail_vacation_without_auto_submitted_still_says_x_autoreply() -> None:
    text = GMAIL_VACATION.replace("Auto-Submitted: auto-replied\n", "")
    assert automatic_reason(mail(text), None) == "x-autoreply"


def test_bounce_from_mailer_daemon_with_null_sender() -> None:
    assert automatic_reason(mail(BOUNCE), "") == "dsn"
    assert automatic_reason(mail(BOUNCE), "<>") == "dsn"
    assert automatic_reason(header_block(mail(BOUNCE).as_bytes()), None) == "dsn"


def test_mailing_list_and_newsletter() -> None:
    assert automatic_reason(mail(LIST_MAIL), "bounces@lists.kommune.dk") == "list-id"
    assert automatic_reason(mail(NEWSLETTER), "news@leverandor.dk") == "precedence"
    unsubscribe = NEWSLETTER.replace("Precedence: bulk\n",
                                     "List-Unsubscribe: <https://leverandor.dk/afmeld>\n")
    assert automatic_reason(mail(unsubscribe), None) == "list-id"


def test_a_persons_report_is_not_automatic() -> None:
    # X-Auto-Response-Suppress asks others not to auto-reply; it does not mark this mail.
    assert automatic_reason(mail(EMPLOYEE_REPORT), "anna.holm@skole.kommune.dk") is None
    assert automatic_reason(mail(EMPLOYEE_REPORT), None) is None


def test_auto_submitted_no_is_a_person() -> None:
    for value in ("no", "No", "NO (sent by hand)", "no; reason=manual"):
        text = EMPLOYEE_REPORT.replace("Content-Language", f"Auto-Submitted: {value}\n"
                                       "Content-Language")
        assert automatic_reason(mail(text), None) is None, value


@pytest.mark.parametrize("value", [
    "auto-replied", "Auto-Generated", "auto-generated (failure)",
    "auto-replied; owner-email=\"a@b.dk\"", "auto-notified", "vacation",
])
def test_auto_submitted_values_other_than_no(value: str) -> None:
    text = EMPLOYEE_REPORT.replace("Content-Language", f"Auto-Submitted: {value}\n"
                                   "Content-Language")
    assert automatic_reason(mail(text), None) == "auto-submitted"


def test_exchange_rule_headers_alone_do_not_make_a_forward_automatic() -> None:
    # An employee's inbox rule that forwards to the intake address carries these too.
    text = EMPLOYEE_REPORT.replace(
        "Content-Language", "X-MS-Exchange-Inbox-Rules-Loop: anna.holm@skole.kommune.dk\n"
        "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\nContent-Language")
    assert automatic_reason(mail(text), None) is None


@pytest.mark.parametrize(("header", "expected"), [
    ("X-Autoreply: yes", "x-autoreply"),
    ("X-Autorespond: Jeg er på ferie", "x-autoreply"),
    ("X-Autogenerated: Reply", "x-autoreply"),
    ("X-Autogenerated: Forward", None),  # CommuniGate's forward: a person's report
    ("Precedence: list", "precedence"),
    ("Precedence: junk", "precedence"),
    ("Precedence: first-class", None),
    ("Auto-Submitted:", None),  # an empty value declares nothing
])
def test_other_headers(header: str, expected: str | None) -> None:
    text = EMPLOYEE_REPORT.replace("Content-Language", f"{header}\nContent-Language")
    assert automatic_reason(mail(text), None) == expected


def test_envelope_sender() -> None:
    message = mail(EMPLOYEE_REPORT)
    assert automatic_reason(message, "") == "null-sender"
    assert automatic_reason(message, " <> ") == "null-sender"
    assert automatic_reason(message, None) is None  # unknown (ingested), not null
    assert automatic_reason(message, "MAILER-DAEMON@mx.kommune.dk") == "mailer-daemon"
    assert automatic_reason(message, "<postmaster@kommune.dk>") == "mailer-daemon"


@pytest.mark.parametrize("sender", [
    "Mail Delivery Subsystem <MAILER-DAEMON@mx.kommune.dk>",
    "MAILER-DAEMON@mx.kommune.dk (Mail Delivery System)",
    "The Post Office <Postmaster@kommune.dk>",
])
def test_from_mailer_daemon(sender: str) -> None:
    text = EMPLOYEE_REPORT.replace("Anna Holm <anna.holm@skole.kommune.dk>\nTo", f"{sender}\nTo")
    assert automatic_reason(mail(text), None) == "mailer-daemon"


def test_read_receipt_and_spam_complaint() -> None:
    receipt = BOUNCE.replace("report-type=delivery-status", "report-type=disposition-notification")
    assert automatic_reason(mail(receipt), None) == "dsn"
    complaint = BOUNCE.replace("report-type=delivery-status", 'report-type="feedback-report"')
    assert automatic_reason(mail(complaint), None) == "feedback"


def test_delivery_status_part_without_report_type() -> None:
    text = BOUNCE.replace("report-type=delivery-status;", "").replace(
        "MAILER-DAEMON@", "bounces@").replace("Return-Path: <>\n", "")
    assert automatic_reason(mail(text), "bounces@mx1.kommune.dk") == "dsn"


def test_a_bounce_forwarded_as_attachment_is_the_employees_mail() -> None:
    text = (
        "From: Anna Holm <anna.holm@skole.kommune.dk>\nTo: chikane@kommune.dk\n"
        "Subject: VS: Undelivered Mail\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="outer"\n\n'
        "--outer\nContent-Type: text/plain; charset=utf-8\n\nSe vedhæftede.\n"
        "--outer\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
        f"{BOUNCE}\n--outer--\n"
    )
    assert automatic_reason(mail(text), "anna.holm@skole.kommune.dk") is None


def test_broken_headers_never_raise() -> None:
    raw = (
        b"From: \xff\xfe<<@@>> =?bogus?x?\xe6\xf8?=\r\n"
        b"To: chikane@kommune.dk\r\n"
        b"Auto-Submitted: \x00\xc3\x28\xa0\xa1 =?utf-8?b?####?=\r\n"
        b"Precedence: \xe6\xf8\xe5\r\n"
        b"List-Id:\r\n"
        b'Content-Type: multipart/report; report-type="\xff; boundary=\r\n'
        b"Subject: =?utf-8?q?broken\r\n"
        b"\r\n"
        b"--\r\nbody\r\n"
    )
    assert automatic_reason(parse_message(raw), None) == "auto-submitted"
    assert automatic_reason(header_block(raw), "\udcff") == "auto-submitted"


def test_a_message_that_breaks_on_every_access_is_a_person(
        monkeypatch: pytest.MonkeyPatch) -> None:
    message = mail(EMPLOYEE_REPORT)

    def explode(*_args: object, **_kwargs: object) -> object:
        raise ValueError("broken")

    monkeypatch.setattr(message, "raw_items", explode)
    monkeypatch.setattr(message, "get_content_type", explode)
    monkeypatch.setattr(message, "get_payload", explode)
    assert automatic_reason(message, None) is None
    assert automatic_reason(message, "") == "null-sender"


def dsn_corpus_files() -> list[Path]:
    files = []
    for line in (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines():
        relative, _size, _sha256, tags = line.split("\t")
        if "dsn" in tags.split(","):
            files.append(CORPUS / relative)
    return files


DSN_FILES = dsn_corpus_files()


def test_the_corpus_has_dsn_files() -> None:
    assert len(DSN_FILES) >= 10


@pytest.mark.parametrize("path", DSN_FILES, ids=lambda path: str(path.relative_to(CORPUS)))
def test_every_corpus_dsn_is_automatic(path: Path) -> None:
    raw = path.read_bytes()
    assert automatic_reason(parse_message(raw), None) in REASONS
    assert automatic_reason(header_block(raw), None) in REASONS  # what the case step reads
