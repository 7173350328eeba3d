"""Managers act on a case by replying to its notification, end to end over real SMTP: the
daemon takes the reply in, runs the command lines, keeps the rest as a note, and confirms
by mail through the capturing relay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from notifier.clock import ManualClock
from notifier.plan.checklist import case_steps
from storage.cases import case_notes, get_case
from storage.evidence import evidence_for_message
from storage.messages import list_messages
from storage.models import Case
from storage.note_words import render_note
from tests.mail_flow import (
    REPORTER,
    CapturingRelay,
    Received,
    database_of,
    list_cases_of,
    reply_address,
    report,
    send,
)
from tests.support import MANAGER, DaemonThread, wait_until

DEPUTY = "stedfortraeder@kommune.example"
COLLEAGUE = "kollega@kommune.example"

OUTLOOK_QUOTE_DA = (
    "\n________________________________\n"
    "Fra: Chikanemail <chikanemail@kommune.example>\n"
    "Sendt: 17. november 2026 10:12\n"
    "Til: Leder <leder@kommune.example>\n"
    "Emne: [Sag {number}] Ny chikanesag\n\n"
    "En medarbejder har indberettet digital chikane, og du er ansvarlig for\n"
    "sag {number}. Kontakt medarbejderen hurtigst muligt.\n"
    "kvitter\nluk\n"
)
GMAIL_QUOTE_EN = (
    "\nOn Tue, 17 Nov 2026 at 10:12, Chikanemail <chikanemail@kommune.example> wrote:\n"
    "> An employee has reported digital harassment.\n> close\n"
)


def reply(notification: Received, *, sender: str, body: str,
          attachment: bytes | None = None) -> bytes:
    """A reply to the notification, as a mail program writes it."""
    original = notification.message
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = reply_address(notification)
    mail["Subject"] = f"SV: {original['Subject']}"
    mail["In-Reply-To"] = str(original["Message-ID"])
    mail["References"] = str(original["Message-ID"])
    mail["Message-ID"] = make_msgid(domain="kommune.example")
    mail.set_content(body)
    if attachment is not None:
        mail.add_attachment(attachment, maintype="image", subtype="png",
                            filename="referat.png")
    return mail.as_bytes()


def answer(daemon: DaemonThread, mail: Received, *, sender: str, body: str,
           attachment: bytes | None = None) -> None:
    """Reply to one of our mails as `sender` does: through its secret reply address."""
    send(daemon, reply(mail, sender=sender, body=body, attachment=attachment),
         mail_from=sender, to=reply_address(mail))


def case_of(daemon: DaemonThread, number: str) -> tuple[Case, dict[str, Any], list[str]]:
    """The case, its steps' done state by key, and its notes' texts."""
    database = database_of(daemon)
    try:
        case = get_case(database, number)
        assert case is not None
        with database.read() as session:
            steps = {step.key: step.done_by for step in case_steps(session, case.id)}
        notes = [note.text for note in case_notes(database, case.id)]
        return case, steps, notes
    finally:
        database.dispose()


def opened(start: Callable[..., DaemonThread], capture: CapturingRelay,
           **options: Any) -> tuple[DaemonThread, str, Received]:
    """A daemon with one case opened by a report: the daemon, the number, the notification."""
    daemon = start(routing={"deputy": DEPUTY}, **options)
    send(daemon, report())
    notification = wait_until(lambda: capture.to(MANAGER), message="the notification")[0]
    number = wait_until(lambda: list_cases_of(daemon), message="the case")[0]
    return daemon, number, notification


def confirmations(capture: CapturingRelay, address: str) -> list[EmailMessage]:
    return [mail.message for mail in capture.to(address)
            if mail.message["Auto-Submitted"] == "auto-replied"]


def test_danish_commands_with_outlook_quote_and_signature(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon, number, notification = opened(start, capture)
    body = ("trin 2 udført\ntrin 4 udført\nfravær 22.11.2026\nekstern\n"
            "vidne: Pia fra kantinen\n\n"
            "Jeg har talt med hende i dag.\nVi tager den derfra.\n\n"
            "Med venlig hilsen\nLars Leder\nAfdelingsleder, Skole Nord\nTlf. 12 34 56 78\n"
            + OUTLOOK_QUOTE_DA.format(number=number))
    answer(daemon, notification, sender=MANAGER, body=body)

    confirmation = wait_until(lambda: confirmations(capture, MANAGER),
                              message="the confirmation")[0]
    case, steps, notes = case_of(daemon, number)
    assert case.acknowledged_by == MANAGER  # the first reply acknowledges
    assert steps["documentation"] == MANAGER and steps["first-aid"] is None
    assert steps["registration"] is None  # refused: the case is not registered yet
    assert case.first_absence_day == date(2026, 11, 22)
    assert case.relation == "external"
    assert case.witnesses == ["Pia fra kantinen"]
    assert case.status == "open"  # "luk" in the quoted notification did nothing
    assert "Jeg har talt med hende i dag.\nVi tager den derfra." in notes
    assert not any("Skole Nord" in note or "Sendt:" in note for note in notes)

    assert confirmation["Subject"] == f"[Sag {number}] Registreret"
    assert confirmation["In-Reply-To"] is not None
    text = confirmation.get_body(("plain",)).get_content()
    assert "søndag 6. december 2026" in text  # the EASY deadline the absence started
    assert "registreret som kvittering for sagen" in text
    assert ("Trin 4 Registrering og anmeldelse kan først markeres som udført, når hændelsen "
            "er registreret") in text


def test_english_commands_with_gmail_quote(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon, number, notification = opened(start, capture)
    body = ("ack\nstep 1 done\nabsence 2026-11-20\ncolleague\n\nSpoke to her this morning."
            "\n\n-- \nLars\n" + GMAIL_QUOTE_EN)
    answer(daemon, notification, sender=MANAGER, body=body)
    confirmation = wait_until(lambda: confirmations(capture, MANAGER),
                              message="the confirmation")[0]
    case, steps, notes = case_of(daemon, number)
    assert case.acknowledged_by == MANAGER
    assert steps["first-aid"] == MANAGER
    assert case.first_absence_day == date(2026, 11, 20)
    assert case.relation == "colleague"
    assert case.status == "open"
    assert notes[-1] == "Spoke to her this morning."
    assert confirmation["Subject"] == f"[Case {number}] Recorded"


def test_the_deputy_closes_through_the_escalation_and_the_reply_attachment_is_evidence(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    """The deputy has a token of their own only once the case is escalated to them."""
    capture, _ = relay
    clock = ManualClock(datetime(2026, 11, 16, 10, 0, tzinfo=ZoneInfo("Europe/Copenhagen")))
    daemon, number, _ = opened(start, capture, clock=clock, plan={"tick_seconds": 0.1})
    clock.advance(timedelta(days=2))  # past the acknowledgement period: the deputy is told
    escalation = wait_until(lambda: capture.to(DEPUTY), message="the escalation")[0]
    picture = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    answer(daemon, escalation, sender=DEPUTY, body="luk: mødet er holdt\n",
           attachment=picture)
    wait_until(lambda: confirmations(capture, DEPUTY), message="the confirmation")
    case, _, notes = case_of(daemon, number)
    assert notes[-1].startswith("Closed: mødet er holdt.")
    assert case.status == "closed" and case.close_reason == "mødet er holdt"
    assert case.acknowledged_by == DEPUTY
    database = database_of(daemon)
    try:
        reply_row = next(row for row in list_messages(database) if row.from_address == DEPUTY)
        names = [item.filename for item in evidence_for_message(database, reply_row.id)]
    finally:
        database.dispose()
    assert "referat.png" in names


def test_a_reply_from_someone_else_is_a_note_with_no_effect(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon, number, notification = opened(start, capture)
    # The manager forwarded the notification; a colleague answers its reply address.
    answer(daemon, notification, sender=COLLEAGUE,
           body="luk\nkvitter\ntrin 1 udført\n\nDen er god nok.")

    def noted() -> list[str]:
        return case_of(daemon, number)[2]

    notes = wait_until(noted, message="the note")
    case, steps, _ = case_of(daemon, number)
    assert case.status == "open"
    assert case.acknowledged_at is None
    assert all(done_by is None for done_by in steps.values())
    assert notes == ["luk\nkvitter\ntrin 1 udført\n\nDen er god nok."]
    assert case.relation == "unknown"
    assert capture.to(COLLEAGUE) == []  # no confirmation to a stranger
    # A reply with no words at all is a note in the system's words, read in each reader's
    # language, never the English "(no text)" kept as if someone had written it.
    answer(daemon, notification, sender=COLLEAGUE, body="")
    wait_until(lambda: len(noted()) == 2 or None, message="the second note")
    database = database_of(daemon)
    try:
        empty = case_notes(database, case.id)[-1]
    finally:
        database.dispose()
    assert (empty.code, empty.author) == ("no-text", COLLEAGUE)
    assert render_note(empty, "da", ZoneInfo("Europe/Copenhagen")) == "(ingen tekst)"


def test_an_unknown_command_is_answered_with_the_list_of_commands(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon, number, notification = opened(start, capture)
    answer(daemon, notification, sender=MANAGER, body="lukk\nfravær 30.02.2026\n")
    confirmation = wait_until(lambda: confirmations(capture, MANAGER),
                              message="the answer")[0]
    assert confirmation["Subject"] == f"[Sag {number}] Kommando ikke forstået"
    text = confirmation.get_body(("plain",)).get_content()
    assert "lukk" in text and "trin 2 udført" in text and "fravær 22.11.2026" in text
    case, _, _ = case_of(daemon, number)
    assert case.status == "open" and case.first_absence_day is None
    assert case.acknowledged_by == MANAGER  # still the manager's first reply


def test_the_reporters_reply_stays_a_follow_up(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon, _, _ = opened(start, capture)
    receipt = wait_until(lambda: capture.to(REPORTER), message="the receipt")[0]
    answer(daemon, receipt, sender=REPORTER, body="luk\nEt billede mere.")
    database = database_of(daemon)
    try:
        wait_until(lambda: len([row for row in list_messages(database) if row.kind]) == 2,
                   message="the follow-up processed")
        with database.read() as session:
            kinds = sorted(session.execute(select(Case.status)).scalars())
        assert kinds == ["open"]
        assert next(row.kind for row in list_messages(database)) == "follow-up"
    finally:
        database.dispose()
    assert len(capture.to(REPORTER)) == 1  # the receipt; nothing answers a follow-up



def test_the_daemons_scheduler_sends_the_digest_and_a_reply_to_it_opens_nothing(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    clock = ManualClock(datetime(2026, 11, 16, 10, 0, tzinfo=ZoneInfo("Europe/Copenhagen")))
    daemon, number, _ = opened(start, capture, clock=clock, plan={"tick_seconds": 0.1})
    clock.advance(timedelta(days=7))  # the next Monday, 10:00: the weekly digest is due

    def digests() -> list[Received]:
        return [mail for mail in capture.to(MANAGER)
                if str(mail.message["Subject"]).startswith("Ugeoversigt")]

    digest = wait_until(digests, message="the weekly digest")[0]
    assert number in digest.message.get_body(("plain",)).get_content()
    escalated = wait_until(lambda: capture.to(DEPUTY), message="the escalation to the deputy")
    assert str(escalated[0].message["Subject"]).startswith(f"[Sag {number}]")
    answer(daemon, digest, sender=MANAGER, body="Tak for overblikket.")
    database = database_of(daemon)
    try:
        wait_until(lambda: any(row.kind == "not-a-report" for row in list_messages(database)),
                   message="the reply kept as not-a-report")
    finally:
        database.dispose()
    assert list_cases_of(daemon) == [number]
