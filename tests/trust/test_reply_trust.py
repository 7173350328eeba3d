"""Only the real manager can act on a case (issue 15): the attacks of the issue, each on a
case of its own against one running daemon over real SMTP, and the genuine replies through
the secret reply address that do act. Each attack asserts the case is unchanged, the mail is
stored and flagged, the audit event exists and exactly the expected mails were queued."""

from __future__ import annotations

import itertools
import re
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from intake.service.daemon import composer_for
from notifier.assignment import reassign
from storage.audit import events_for_case
from storage.cases import get_case, list_cases, lock_case
from storage.database import Database
from storage.models import Case, Message, OutboxMail, ReplyToken, utc_now
from storage.reply_tokens import token_sha256
from tests.dns_server import DkimDns
from tests.dovecot import Dovecot
from tests.mail_flow import REPORTER, CapturingRelay, Received, reply_address
from tests.receive.test_imap_support import append, mailbox_for
from tests.support import INTAKE_ADDRESS, MANAGER, DaemonThread, free_port, make_config, wait_until

DEPUTY = "stedfortraeder@kommune.example"
ADMIN = "admin@kommune.example"
OTHER_MANAGER = "anden.leder@kommune.example"
ATTACKER = "random@example.dk"
TOKEN_ADDRESS = re.compile(r"chikanemail\+([a-z2-7]{32})@kommune\.example")
_counter = itertools.count(1)


@dataclass
class Opened:
    """A case opened by a report: its number, the notification and the receipt."""

    number: str
    notification: Received
    receipt: Received | None


class World:
    """One daemon and its relay, shared by the attacks; each attack opens its own case."""

    def __init__(self, daemon: DaemonThread, capture: CapturingRelay) -> None:
        self.daemon = daemon
        self.capture = capture
        self.database = Database(daemon.config.storage.effective_database_url)

    def send(self, raw: bytes, *, mail_from: str, to: str = INTAKE_ADDRESS) -> None:
        with smtplib.SMTP(*self.daemon.smtp_address) as client:
            assert client.sendmail(mail_from, [to], raw) == {}

    def open_case(self, *, sender: str = REPORTER, mail_from: str | None = None,
                  sender_header: str | None = None, subject: str | None = None,
                  expect_receipt: bool = True) -> Opened:
        before = set(self.case_numbers())
        marker = f"rapport {next(_counter)}"
        mail = EmailMessage()
        mail["From"] = sender_header or sender
        mail["To"] = INTAKE_ADDRESS
        mail["Subject"] = subject or f"VS: Du er ikke velkommen ({marker})"
        mail["Message-ID"] = make_msgid(domain="kommune.example")
        mail.set_content("Se nedenfor.\n\n---------- Forwarded message ---------\n"
                         "From: Kasper <kasper@eksempel.example>\n"
                         "Date: Wed, 18 Nov 2026 21:47:00 +0100\nSubject: Hej\n\nVi ved hvor "
                         "du bor.\n")
        self.send(mail.as_bytes(), mail_from=mail_from or sender)
        number = wait_until(lambda: next(iter(set(self.case_numbers()) - before), None),
                            message="the new case")
        notification = wait_until(lambda: self.mails_about(number, MANAGER),
                                  message="the notification")[0]
        receipt = None
        if expect_receipt:
            receipt = wait_until(lambda: self.mails_about(number, sender),
                                 message="the receipt")[0]
        return Opened(number, notification, receipt)

    def case_numbers(self) -> list[str]:
        return [case.number for case in list_cases(self.database)]

    def case(self, number: str) -> Case:
        found = get_case(self.database, number)
        assert found is not None
        return found

    def mails_about(self, number: str, address: str) -> list[Received]:
        return [mail for mail in self.capture.to(address) if number in str(mail.message["Subject"])]

    def processed(self, message_id: str, *, timeout: float = 15.0) -> Message:
        def find() -> Message | None:
            with self.database.read() as session:
                row = session.execute(select(Message).where(
                    Message.message_id == message_id)).scalar_one_or_none()
                if row is None or row.kind is None:
                    return None
                session.expunge(row)
                return row
        return wait_until(find, timeout=timeout, message=f"the mail {message_id} filed")

    def outbox_kinds(self, number: str) -> list[tuple[str, str]]:
        with self.database.read() as session:
            case_id = session.execute(select(Case.id).where(Case.number == number)).scalar_one()
            rows = session.execute(select(OutboxMail).where(OutboxMail.case_id == case_id)
                                   .order_by(OutboxMail.id)).scalars()
            return [(row.kind, row.rcpt_tos[0]) for row in rows]

    def events(self, number: str) -> list[tuple[str, dict[str, Any]]]:
        return [(event.action, dict(event.details))
                for event in events_for_case(self.database, number)]


def mail(*, sender: str, subject: str, body: str, to: str = INTAKE_ADDRESS,
         headers: dict[str, str] | None = None, message_id: bool = True) -> tuple[bytes, str]:
    """A mail as an attacker (or a manager) writes it; its Message-ID (made up if absent)."""
    built = EmailMessage()
    built["From"] = sender
    built["To"] = to
    built["Subject"] = subject
    identifier = make_msgid(domain="example.dk")
    if message_id:
        built["Message-ID"] = identifier
    for name, value in (headers or {}).items():
        built[name] = value
    built.set_content(body)
    return built.as_bytes(), identifier


def sent_raw(world: World, message_id: str) -> bytes | None:
    """The outbox's copy of a mail of ours once it is marked sent; None before."""
    with world.database.read() as session:
        row = session.execute(select(OutboxMail).where(
            OutboxMail.message_id == message_id)).scalar_one()
        return bytes(row.raw) if row.state == "sent" else None


def refused_events(world: World, number: str) -> list[dict[str, Any]]:
    return [details for action, details in world.events(number) if action == "command-refused"]


@contextmanager
def running_world(base: Path, **overrides: Any) -> Iterator[World]:
    """A daemon on SQLite in `base` sending through a relay of its own, for a module."""
    capture = CapturingRelay()
    controller = Controller(capture, hostname="127.0.0.1", port=free_port())
    controller.start()
    config = make_config(base / "data", f"sqlite:///{base / 'test.sqlite3'}",
                         extract={"ocr": False},
                         notify={"smtp_host": "127.0.0.1", "smtp_port": controller.port},
                         **overrides)
    daemon = DaemonThread(config).start()
    shared = World(daemon, capture)
    try:
        yield shared
    finally:
        shared.database.dispose()
        daemon.stop()
        controller.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("trust"), routing={"deputy": DEPUTY},
                       plan={"admins": (ADMIN,)}) as shared:
        yield shared


# -- the attacks of the issue ---------------------------------------------------------------


def test_a_forged_manager_reply_to_the_notification_does_not_close(world: World) -> None:
    opened = world.open_case()
    raw, message_id = mail(sender=MANAGER, subject=f"SV: {opened.notification.message['Subject']}",
                           body="luk: forged", headers={
                               "In-Reply-To": str(opened.notification.message["Message-ID"])})
    world.send(raw, mail_from=MANAGER)  # to the plain intake address: no token
    row = world.processed(message_id)
    case = world.case(opened.number)
    assert case.status == "open" and case.acknowledged_at is None
    assert (row.case_id, row.kind, row.unverified) == (case.id, "note", True)
    assert refused_events(world, opened.number) == [
        {"reason": "no-token", "claimed": MANAGER, "commands": ["luk"]}]
    assert world.outbox_kinds(opened.number) == [
        ("receipt", REPORTER), ("notification", MANAGER), ("sender_warning", MANAGER)]
    warning = wait_until(lambda: [m for m in world.mails_about(opened.number, MANAGER)
                                  if "afvist" in str(m.message["Subject"])],
                         message="the warning")[0]
    text = warning.message.get_body(("plain",)).get_content()
    assert "luk" in text and "forged" not in text  # names the command, quotes nothing
    assert TOKEN_ADDRESS.fullmatch(reply_address(warning))


def test_a_case_tag_without_message_id_does_not_close(world: World) -> None:
    opened = world.open_case()
    raw, _ = mail(sender=MANAGER, subject=f"[Sag {opened.number}]", body="luk",
                  message_id=False)
    world.send(raw, mail_from=MANAGER)
    wait_until(lambda: refused_events(world, opened.number), message="the refusal")
    case = world.case(opened.number)
    assert case.status == "open" and case.acknowledged_at is None
    assert refused_events(world, opened.number)[0]["reason"] == "no-token"
    with world.database.read() as session:
        rows = session.execute(select(Message).where(Message.case_id == case.id)
                               .order_by(Message.id)).scalars().all()
        assert [(row.kind, row.unverified) for row in rows] == [("report", False),
                                                                 ("note", True)]
    assert world.outbox_kinds(opened.number)[-1] == ("sender_warning", MANAGER)


def test_a_stranger_cannot_acknowledge_or_set_the_absence_and_warnings_are_rationed(
        world: World) -> None:
    opened = world.open_case()
    ids = []
    for body in ("kvitter", "fravær i dag", "hjælp"):
        raw, message_id = mail(sender=MANAGER, subject=f"[Sag {opened.number}]", body=body)
        world.send(raw, mail_from=ATTACKER)
        ids.append(message_id)
    rows = [world.processed(message_id) for message_id in ids]
    case = world.case(opened.number)
    assert case.acknowledged_at is None and case.first_absence_day is None
    assert case.escalation_level == 0
    assert all(row.unverified for row in rows)
    assert [event["commands"] for event in refused_events(world, opened.number)] == [
        ["kvitter"], ["fravær"], ["hjælp"]]
    # One warning per case and person per hour; no confirmation, no help mail.
    assert world.outbox_kinds(opened.number) == [
        ("receipt", REPORTER), ("notification", MANAGER), ("sender_warning", MANAGER)]


def test_no_receipt_to_an_address_we_cannot_vouch_for(world: World) -> None:
    victim = "victim@gmail.com"
    opened = world.open_case(
        sender=victim, mail_from="a@example.dk", expect_receipt=False,
        sender_header=f'"Klik her http://evil.example/login" <{victim}>',
        subject="Din adgangskode udløber i dag")
    case = world.case(opened.number)
    assert case.sender_unverified
    assert world.outbox_kinds(opened.number) == [("notification", MANAGER)]
    assert ("sender-unverified", {"reason": "domain-not-allowed"}) in world.events(
        opened.number)
    notification = opened.notification.message
    assert "evil.example" not in str(notification["Subject"])
    text = notification.get_body(("plain",)).get_content()
    assert "AFSENDEREN KUNNE IKKE VERIFICERES" in text and "ikke sendt kvittering" in text
    assert world.capture.to(victim) == []


def test_a_forged_envelope_from_an_allowed_domain_gets_no_receipt_either(
        world: World) -> None:
    """From an allowed domain, but not the envelope sender: casual forgery, no receipt."""
    opened = world.open_case(sender="kollega@kommune.example", mail_from="a@example.dk",
                             expect_receipt=False)
    assert world.case(opened.number).sender_unverified
    assert ("sender-unverified", {"reason": "envelope-differs"}) in world.events(
        opened.number)
    assert world.outbox_kinds(opened.number) == [("notification", MANAGER)]


def test_a_forged_follow_up_of_the_reporter_is_flagged_and_the_manager_told(
        world: World) -> None:
    opened = world.open_case()
    raw, message_id = mail(sender=REPORTER, subject=f"[Sag {opened.number}]",
                           body="Jeg trækker min anmeldelse tilbage")
    world.send(raw, mail_from=ATTACKER)
    row = world.processed(message_id)
    assert (row.kind, row.unverified) == ("follow-up", True)
    assert ("unverified-mail", {"reason": "no-token", "claimed_role": "reporter"}) in (
        world.events(opened.number))
    assert world.outbox_kinds(opened.number) == [
        ("receipt", REPORTER), ("notification", MANAGER), ("sender_warning", MANAGER)]
    assert world.case(opened.number).status == "open"


def test_an_admin_typing_a_case_number_is_told_how_to_act_on_that_case(
        world: World) -> None:
    opened = world.open_case()
    before = world.case_numbers()
    raw, message_id = mail(sender=ADMIN, subject=f"Vedr. sag {opened.number}", body="luk")
    world.send(raw, mail_from=ADMIN)
    row = world.processed(message_id)
    assert world.case_numbers() == before  # no new case
    assert (row.case_id, row.unverified) == (world.case(opened.number).id, True)
    assert refused_events(world, opened.number)[0]["claimed"] == ADMIN
    assert world.outbox_kinds(opened.number)[-1] == ("sender_warning", ADMIN)
    assert world.case(opened.number).status == "open"


def test_a_strangers_case_number_opens_a_new_case_and_reveals_nothing(world: World) -> None:
    opened = world.open_case()
    stranger = "fremmed@kommune.example"
    new = world.open_case(sender=stranger, subject=f"[Sag {opened.number}] hej")
    assert new.number != opened.number
    assert new.receipt is not None
    receipt = new.receipt.message.get_body(("plain",)).get_content()
    assert REPORTER not in receipt  # nothing of the other case: its reporter, its evidence
    with world.database.read() as session:
        first = world.case(opened.number)
        assert session.execute(select(Message.id).where(
            Message.case_id == first.id)).scalars().all().__len__() == 1


# -- the token ------------------------------------------------------------------------------


def test_the_token_is_only_in_reply_to_and_stored_hashed(world: World) -> None:
    opened = world.open_case()
    for sent in (opened.notification, opened.receipt):
        assert sent is not None
        match = TOKEN_ADDRESS.fullmatch(reply_address(sent))
        assert match is not None
        token = match.group(1)
        assert sent.raw.count(token.encode()) == 1  # in Reply-To, nowhere else
        with world.database.read() as session:
            stored = session.execute(select(ReplyToken).where(
                ReplyToken.token_sha256 == token_sha256(token))).scalar_one()
            assert stored.address == sent.rcpt_tos[0] and stored.retired_at is None
            assert session.execute(select(ReplyToken).where(
                ReplyToken.token_sha256 == token)).first() is None
        # Once sent, the outbox keeps the mail without a usable token.
        kept = wait_until(lambda: sent_raw(world, str(sent.message["Message-ID"])),  # noqa: B023
                          message="the outbox row marked sent")
        assert token.encode() not in kept


def test_a_genuine_reply_through_the_token_acts_and_the_warning_token_works(
        world: World) -> None:
    opened = world.open_case()
    # A refused command first, then the manager answers the warning: that reply acts.
    raw, _ = mail(sender=MANAGER, subject=f"[Sag {opened.number}]", body="kvitter")
    world.send(raw, mail_from=MANAGER)
    warning = wait_until(lambda: [m for m in world.mails_about(opened.number, MANAGER)
                                  if "afvist" in str(m.message["Subject"])],
                         message="the warning")[0]
    assert world.case(opened.number).acknowledged_at is None
    raw, message_id = mail(sender=MANAGER, subject=f"SV: {warning.message['Subject']}",
                           body="kvitter", to=reply_address(warning))
    world.send(raw, mail_from=MANAGER, to=reply_address(warning))
    row = world.processed(message_id)
    assert not row.unverified and row.reply_token_id is not None
    assert world.case(opened.number).acknowledged_by == MANAGER


def test_a_token_for_one_case_does_not_act_on_another(world: World) -> None:
    first = world.open_case()
    second = world.open_case()
    token_of_first = reply_address(first.notification)
    raw, message_id = mail(sender=MANAGER, subject=f"SV: [Sag {second.number}]", body="luk",
                           to=token_of_first)
    world.send(raw, mail_from=MANAGER, to=token_of_first)
    row = world.processed(message_id)
    assert row.case_id == world.case(second.number).id and row.unverified
    assert refused_events(world, second.number)[0]["reason"] == "token-for-another-case"
    assert world.case(first.number).status == "open"
    assert world.case(second.number).status == "open"


def test_closing_retires_the_cases_tokens(world: World) -> None:
    opened = world.open_case()
    token_address = reply_address(opened.notification)
    raw, _ = mail(sender=MANAGER, subject="SV: luk", body="luk", to=token_address)
    world.send(raw, mail_from=MANAGER, to=token_address)
    wait_until(lambda: world.case(opened.number).status == "closed", message="closed")
    with world.database.read() as session:
        live = session.execute(select(ReplyToken).where(
            ReplyToken.case_id == world.case(opened.number).id,
            ReplyToken.retired_at.is_(None))).scalars().all()
    assert live == []
    raw, message_id = mail(sender=MANAGER, subject="SV: kvitter", body="kvitter",
                           to=token_address)
    world.send(raw, mail_from=MANAGER, to=token_address)
    assert world.processed(message_id).unverified
    assert refused_events(world, opened.number)[-1]["reason"] == "token-retired"


# -- IMAP: the token in Delivered-To ----------------------------------------------------------


def test_an_imap_reply_with_the_token_in_delivered_to_acts(
        world: World, dovecot: Dovecot, tmp_path: Path) -> None:
    """The mailbox's server writes the plus-address it delivered to in Delivered-To; the
    To header a mail program wrote may be the plain address. A daemon of its own takes the
    Dovecot mailbox, on the same database as the SMTP daemon that opened the case."""
    opened = world.open_case()
    token_address = reply_address(opened.notification)
    config = replace(world.daemon.config, smtp=replace(world.daemon.config.smtp, enabled=False),
                     imap=(mailbox_for(dovecot, tmp_path),))
    raw, message_id = mail(sender=MANAGER, subject=f"SV: [Sag {opened.number}]", body="kvitter",
                           headers={"Delivered-To": token_address,
                                    "Return-Path": f"<{MANAGER}>"})
    with DaemonThread(config):
        append(dovecot, raw.replace(b"\n", b"\r\n"))
        # Two daemons write one SQLite database here; on a machine the other test process
        # keeps busy, one may wait for the other's write lock for a while.
        row = world.processed(message_id, timeout=45.0)
        assert (row.source, row.unverified) == ("imap", False)
        assert row.reply_token_id is not None
        wait_until(lambda: world.case(opened.number).acknowledged_by == MANAGER,
                   message="the case acknowledged over IMAP")


# -- DKIM: a signed reply acts, a changed byte does not ---------------------------------------


@pytest.fixture(scope="module")
def signed_world(tmp_path_factory: pytest.TempPathFactory,
                 dkim_dns: DkimDns) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("dkim"),
                       routing={"default_manager": SIGNED_MANAGER},
                       intake={"addresses": (SIGNED_INTAKE,)},
                       trust={"dkim": True, "dns_servers": tuple(dkim_dns.dns_servers),
                              "dns_timeout_seconds": 0.5}) as shared:
        yield shared


SIGNED_INTAKE = "chikanemail@example.dk"
SIGNED_MANAGER = "leder@example.dk"
SIGNED_REPORTER = "ansat@example.dk"


def test_a_dkim_signed_reply_through_the_token_acts_and_a_changed_byte_does_not(
        signed_world: World, dkim_dns: DkimDns) -> None:
    world = signed_world
    before = set(world.case_numbers())
    report, _ = mail(sender=SIGNED_REPORTER, subject="VS: chikane", body="Se nedenfor.\n",
                     to=SIGNED_INTAKE)
    world.send(dkim_dns.sign(report.replace(b"\n", b"\r\n"), "example.dk"),
               mail_from=SIGNED_REPORTER, to=SIGNED_INTAKE)
    number = wait_until(lambda: next(iter(set(world.case_numbers()) - before), None),
                        message="the case")
    notification = wait_until(lambda: world.mails_about(number, SIGNED_MANAGER),
                              message="the notification")[0]
    # The signed report's From is authenticated: its reporter gets a receipt.
    wait_until(lambda: world.mails_about(number, SIGNED_REPORTER), message="the receipt")
    token_address = reply_address(notification)

    raw, tampered_id = mail(sender=SIGNED_MANAGER, subject=f"SV: [Sag {number}]",
                            body="luk: forfalsket\n", to=token_address)
    signed = dkim_dns.sign(raw.replace(b"\n", b"\r\n"), "example.dk")
    tampered = signed.replace(b"luk: forfalsket", b"luk: forfalskeT")
    world.send(tampered, mail_from=SIGNED_MANAGER, to=token_address)
    row = world.processed(tampered_id)
    assert row.unverified and row.sender_check == "dkim-fail"
    assert refused_events(world, number)[0]["reason"] == "dkim-fail"
    assert world.case(number).status == "open"

    raw, genuine_id = mail(sender=SIGNED_MANAGER, subject=f"SV: [Sag {number}]",
                           body="luk: mødet er holdt\n", to=token_address)
    world.send(dkim_dns.sign(raw.replace(b"\n", b"\r\n"), "example.dk"),
               mail_from=SIGNED_MANAGER, to=token_address)
    row = world.processed(genuine_id)
    assert (row.unverified, row.sender_check, row.sender_authenticated) == (
        False, "dkim-pass", True)
    assert world.case(number).status == "closed"


def test_after_reassignment_the_old_token_is_refused_and_the_new_managers_acts(
        world: World) -> None:
    opened = world.open_case()
    old_token_address = reply_address(opened.notification)
    config = world.daemon.config
    with world.database.write() as session:
        reassign(session, lock_case(session, opened.number), manager=OTHER_MANAGER,
                 actor="cli:admin", now=utc_now(), composer=composer_for(config),
                 plan=config.plan, notify=config.notify)
    new_notification = wait_until(lambda: world.mails_about(opened.number, OTHER_MANAGER),
                                  message="the new manager's notification")[0]
    raw, old_id = mail(sender=MANAGER, subject="SV: kvitter", body="kvitter",
                       to=old_token_address)
    world.send(raw, mail_from=MANAGER, to=old_token_address)
    assert world.processed(old_id).unverified
    # The previous manager is no longer one of the case's people: their mail is a note.
    assert ("unverified-mail", {"reason": "token-retired", "claimed_role": "other"}) in (
        world.events(opened.number))
    assert world.case(opened.number).acknowledged_at is None
    new_token_address = reply_address(new_notification)
    assert new_token_address != old_token_address
    raw, new_id = mail(sender=OTHER_MANAGER, subject="SV: kvitter", body="kvitter",
                       to=new_token_address)
    world.send(raw, mail_from=OTHER_MANAGER, to=new_token_address)
    assert not world.processed(new_id).unverified
    assert world.case(opened.number).acknowledged_by == OTHER_MANAGER


def test_a_dns_failure_is_retried_and_on_the_last_try_counts_as_unverified(
        signed_world: World, dkim_dns: DkimDns) -> None:
    """broken.dk's resolver refuses: not a failed signature but a failed lookup. The step is
    tried again; on the worker's last try the sender counts as unverified, and the mail is
    filed all the same, never quarantined for it."""
    world = signed_world
    raw, message_id = mail(sender="ansat@broken.dk", subject="VS: chikane",
                           body="Se nedenfor.\n", to=SIGNED_INTAKE)
    world.send(dkim_dns.sign(raw.replace(b"\n", b"\r\n"), "broken.dk"),
               mail_from="ansat@broken.dk", to=SIGNED_INTAKE)
    row = world.processed(message_id)
    assert (row.sender_check, row.sender_authenticated) == ("dns-temporary", False)
    assert row.attempts == world.daemon.config.worker.max_attempts
    assert row.state in ("processing", "processed")
    with world.database.read() as session:
        assert session.get(Case, row.case_id).sender_unverified  # type: ignore[union-attr]
