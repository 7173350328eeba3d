"""The admin pages (issue 21, point 3) on a real daemon, over real sockets: only `[plan]
admins` see them (anyone else a 404); health, the outbox with a mail a relay refused and its
retry, the kept-out mails with show and retry, IMAP, verify runs and patterns across cases.

One daemon for the module: two reports forwarding mail from the same harasser (one pattern
group, whose mails the relay refuses for the manager) and one report from a domain that is
not allowed (kept out). The tests run in the order written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from sqlalchemy import select

from intake.service.settings import ImapMailbox
from intake.web.login_links import login_url, record_request
from intake.web.settings import WebSettings
from notifier.clock import ManualClock
from storage.database import Database
from storage.imap_state import FolderStatus, folder_status, record_oversized
from storage.models import AuditEvent, Message, OutboxMail, OutboxState, utc_now
from storage.outbox_retry import OutboxRetryRefused, retry_failed_outbox
from tests.browser import chromium
from tests.mail_flow import REPORTER, list_cases_of, report, send
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    DaemonThread,
    describe,
    free_port,
    make_config,
    run_cli,
    wait_until,
    write_toml,
)
from tests.web.node_packages import axe_results, serious
from tests.web.web_support import csrf_token, press_login_button

pytestmark = pytest.mark.integration

ADMIN = "it@kommune.example"
IMAP_NAME = "postkasse"
FOREIGN = "nabo@andetsted.example"
# A line of the kept-out mail's body: no admin page may show it.
FOREIGN_BODY_LINE = "Hemmelig linje fra naboen"
ADMIN_PAGES = ["/admin", "/admin/health", "/admin/outbox", "/admin/quarantine",
               "/admin/quarantine/1", "/admin/imap", "/admin/verify", "/admin/patterns"]
ADMIN_POSTS = ["/admin/outbox/retry", "/admin/quarantine/1/retry"]


class RefusingRelay:
    """An SMTP relay that refuses, for good (550), every mail to the addresses in `refused`
    while it is told to, and keeps the others."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused
        self.lock = threading.Lock()
        self.accepted: list[tuple[str, ...]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            if address in self.refused:
                return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.accepted.append(tuple(envelope.rcpt_tos))
        return "250 OK"

    def accept_everyone(self) -> None:
        with self.lock:
            self.refused = set()

    def got_mail_for(self, address: str) -> bool:
        with self.lock:
            return any(address in recipients for recipients in self.accepted)


@dataclass
class World:
    daemon: DaemonThread
    clock: ManualClock
    base_url: str
    relay: RefusingRelay
    database: Database
    cases: list[str]

    def session_for(self, address: str) -> requests.Session:
        """A browser session logged in as `address` (link made as `chikanemail web link`
        makes it, the button pressed as a person does)."""
        with self.database.write() as session:
            token = record_request(session, address=address, client="test",
                                   now=self.clock.now(), web=self.daemon.config.web,
                                   with_link=True)
        assert token is not None
        http = requests.Session()
        assert press_login_button(http, login_url(self.base_url, token)).status_code == 303
        return http

    def outbox(self) -> list[OutboxMail]:
        with self.database.read() as session:
            rows = list(session.execute(select(OutboxMail).order_by(OutboxMail.id)).scalars())
            session.expunge_all()
        return rows

    def events(self, action: str) -> list[AuditEvent]:
        with self.database.read() as session:
            rows = list(session.execute(select(AuditEvent).where(AuditEvent.action == action)
                                        .order_by(AuditEvent.seq)).scalars())
            session.expunge_all()
        return rows

    def kept_out(self) -> list[Message]:
        with self.database.read() as session:
            rows = list(session.execute(select(Message).where(Message.state == "quarantined"))
                        .scalars())
            session.expunge_all()
        return rows


@contextmanager
def _daemon(root: Path, database_url: str, *,
            relay_port: int) -> Iterator[tuple[DaemonThread, ManualClock, str]]:
    """The daemon of `web_daemon`, sending through the relay, and taking mail from an IMAP
    mailbox where nothing listens (so its state records an error)."""
    password = root / "imap-password"
    password.write_text("hemmeligt", encoding="utf-8")
    config = make_config(root / "data", database_url, extract={"ocr": False},
                         notify={"smtp_host": "127.0.0.1", "smtp_port": relay_port},
                         plan={"admins": (ADMIN,)},
                         intake={"allowed_sender_domains": ("kommune.example",),
                                 "foreign_sender_action": "quarantine"})
    mailbox = ImapMailbox(name=IMAP_NAME, host="127.0.0.1", port=free_port(),
                          username="chikanemail", password_file=str(password),
                          security="starttls", mode="poll", timeout_seconds=2.0)
    config = replace(config, imap=(mailbox,), web=WebSettings(listen="127.0.0.1:0"))
    clock = ManualClock(datetime.now(UTC))
    with DaemonThread(config, clock=clock) as daemon:
        assert daemon.ready_info is not None and daemon.ready_info.web_address is not None
        host, web_port = daemon.ready_info.web_address
        yield daemon, clock, f"http://{host}:{web_port}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The daemon with its web view, its relay, two related cases and a kept-out mail."""
    root = tmp_path_factory.mktemp("admin")
    relay = RefusingRelay({MANAGER})
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    database_url = f"sqlite:///{root / 'admin.sqlite3'}"
    try:
        with _daemon(root, database_url, relay_port=port) as (daemon, clock, base_url):
            database = Database(database_url)
            for count in (1, 2):
                send(daemon, report(f"VS: Du er ikke velkommen ({count})"), mail_from=REPORTER)
                wait_until(lambda c=count: len(list_cases_of(daemon)) == c,  # type: ignore[misc]
                           message=f"case {count}")
            send(daemon, report(sender=FOREIGN, body=FOREIGN_BODY_LINE + "\n"), mail_from=FOREIGN)
            world = World(daemon, clock, base_url, relay, database,
                          sorted(list_cases_of(daemon)))
            wait_until(lambda: world.kept_out(), message="the foreign report kept out")
            wait_until(lambda: [mail for mail in world.outbox()
                                if mail.state == OutboxState.FAILED], message="a failed mail")
            try:
                yield world
            finally:
                database.dispose()
    finally:
        controller.stop()


def test_nobody_but_an_admin_finds_the_admin_pages(world: World) -> None:
    anonymous = requests.Session()
    manager = world.session_for(MANAGER)
    for http in (anonymous, manager):
        for path in ADMIN_PAGES:
            assert http.get(f"{world.base_url}{path}").status_code == 404, path
    assert 'href="/admin"' not in manager.get(f"{world.base_url}/nowhere").text  # no menu entry
    token = _token_of(manager, world)
    for path in ADMIN_POSTS:
        refused = manager.post(f"{world.base_url}{path}", data={"csrf_token": token, "all": "1"},
                               allow_redirects=False)
        assert refused.status_code == 404, path
    admin = world.session_for(ADMIN)
    # Even the method is checked only for an admin: the router's 405 would give pages away.
    assert admin.get(f"{world.base_url}/admin/outbox/retry").status_code == 405
    assert manager.get(f"{world.base_url}/admin/outbox/retry").status_code == 404
    index = admin.get(f"{world.base_url}/admin")
    assert index.status_code == 200
    assert 'href="/admin"' in index.text and "Administration" in index.text


def _token_of(http: requests.Session, world: World) -> str:
    """The session's form token, read from the logout form every page carries (a 404
    page too)."""
    return csrf_token(http.get(f"{world.base_url}/nowhere").text)


def test_the_health_page_shows_the_checks_of_chikanemail_health(world: World) -> None:
    admin = world.session_for(ADMIN)
    page = admin.get(f"{world.base_url}/admin/health")
    assert page.status_code == 200
    for name in ("data-dir", "database", "listeners", "web", "outbox", "quarantine"):
        assert f"<code>{name}</code>" in page.text
    assert "Datamappe" in page.text  # the check's name in the admin's language
    # The outbox's finding in the admin's language: the mail the relay refused was given up.
    assert "opgivet" in page.text and "given up" not in page.text


def test_a_failed_mail_is_listed_and_sent_again_by_the_admin(world: World) -> None:
    admin = world.session_for(ADMIN)
    failed = [mail for mail in world.outbox() if mail.state == OutboxState.FAILED]
    mail = failed[0]
    page = admin.get(f"{world.base_url}/admin/outbox")
    assert page.status_code == 200
    assert MANAGER in page.text
    assert "Mailserveren afviste modtagerens adresse" in page.text  # the error in words
    assert "550 5.1.1 No such user here" in page.text  # and the relay's own
    assert any(f'href="/cases/{number}"' in page.text for number in world.cases)
    assert "Vi ved hvor du bor" not in page.text  # never a mail's content

    # Without the form token the post is refused and nothing changes.
    forged = admin.post(f"{world.base_url}/admin/outbox/retry", data={"mail": str(mail.id)},
                        allow_redirects=False)
    assert forged.status_code == 403
    assert {row.id: row.state for row in world.outbox()}[mail.id] == OutboxState.FAILED

    world.relay.accept_everyone()
    retried = admin.post(f"{world.base_url}/admin/outbox/retry",
                         data={"mail": str(mail.id), "csrf_token": csrf_token(page.text)},
                         allow_redirects=False)
    assert retried.status_code == 303
    assert retried.headers["location"] == "/admin/outbox?retried=1"
    wait_until(lambda: {row.id: row.state for row in world.outbox()}[mail.id]
               == OutboxState.SENT, message="the retried mail sent")
    assert world.relay.got_mail_for(MANAGER)
    (event,) = world.events("mail-retried")
    assert event.actor == f"web:{ADMIN}"
    assert event.details["message_id"] == mail.message_id
    assert event.case_number in world.cases
    # Retrying it again is refused in words: it has not failed any more.
    again = admin.post(f"{world.base_url}/admin/outbox/retry",
                       data={"mail": str(mail.id), "csrf_token": csrf_token(page.text)})
    assert again.status_code == 200 and "ikke (længere) opgivet" in again.text


def test_a_kept_out_mail_is_listed_shown_and_handed_back(world: World) -> None:
    admin = world.session_for(ADMIN)
    (kept,) = world.kept_out()
    listing = admin.get(f"{world.base_url}/admin/quarantine")
    assert listing.status_code == 200
    assert kept.sha256 in listing.text and FOREIGN in listing.text
    assert "afsenderens domæne er ikke tilladt" in listing.text
    shown = admin.get(f"{world.base_url}/admin/quarantine/{kept.id}")
    assert shown.status_code == 200
    assert kept.sha256 in shown.text
    assert FOREIGN_BODY_LINE not in listing.text + shown.text  # never the body
    viewed = [event for event in world.events("viewed")
              if event.message_sha256 == kept.sha256]
    assert [event.actor for event in viewed] == [f"web:{ADMIN}"]
    token = csrf_token(shown.text)

    # A foreign sender's mail comes back only when the admin says to let it in.
    refused = admin.post(f"{world.base_url}/admin/quarantine/{kept.id}/retry",
                         data={"csrf_token": token})
    assert refused.status_code == 200 and "blev ikke givet tilbage" in refused.text
    assert world.kept_out() != []
    handed = admin.post(f"{world.base_url}/admin/quarantine/{kept.id}/retry",
                        data={"csrf_token": token, "include_foreign": "1"},
                        allow_redirects=False)
    assert handed.status_code == 303
    assert handed.headers["location"] == "/admin/quarantine?retried=1"
    (event,) = world.events("quarantine-retried")
    assert event.actor == f"web:{ADMIN}" and event.message_sha256 == kept.sha256
    wait_until(lambda: len(list_cases_of(world.daemon)) == 3,
               message="the handed-back mail opens a case")
    assert world.kept_out() == []


def test_the_patterns_page_links_the_related_cases(world: World) -> None:
    admin = world.session_for(ADMIN)
    page = admin.get(f"{world.base_url}/admin/patterns")
    assert page.status_code == 200
    for number in world.cases:
        assert f'<a href="/cases/{number}">{number}</a>' in page.text
    assert "samme afsender" in page.text  # why, in words
    assert "kasper@eksempel.example" in page.text


def test_the_imap_page_shows_the_stored_state_and_the_mail_left(world: World) -> None:
    def recorded_error() -> FolderStatus | None:
        status = folder_status(world.database, IMAP_NAME, "INBOX")
        return status if status is not None and status.last_error else None

    status = wait_until(recorded_error, message="the mailbox's failed connection recorded")
    assert status is not None and status.last_error is not None
    record_oversized(world.database, IMAP_NAME, "INBOX", uidvalidity=77, uid=4242,
                     size=987654321)
    admin = world.session_for(ADMIN)
    page = admin.get(f"{world.base_url}/admin/imap")
    assert page.status_code == 200
    assert f"<th scope=\"row\">{IMAP_NAME}</th>" in page.text
    assert status.last_error.split(":")[0] in page.text
    assert "<td>4242</td>" in page.text and "<td>987654321</td>" in page.text


def test_the_verify_page_shows_the_daemons_run(world: World) -> None:
    # The daemon's scheduler verifies at start when no run is stored.
    wait_until(lambda: "tjenesten" in world.session_for(ADMIN).get(
        f"{world.base_url}/admin/verify").text, message="the daemon's verify run shown")


# -- the retry itself, the one function the CLI and the page call, on both databases --------


def _failed_mail(database: Database) -> int:
    with database.write() as session:
        row = OutboxMail(kind="receipt", mail_from=INTAKE_ADDRESS, rcpt_tos=[REPORTER],
                         message_id="<retry@test>", subject="Kvittering", raw=b"x",
                         state=OutboxState.FAILED, attempts=7, created_at=utc_now(),
                         next_attempt_at=utc_now(), deadline_at=utc_now(),
                         last_error="relay refused every recipient: x: 550 no")
        session.add(row)
        session.flush()
        return row.id


def test_every_admin_page_passes_axe_and_fits_375_pixels(world: World) -> None:
    admin = world.session_for(ADMIN)
    pages = [path for path in ADMIN_PAGES
             if admin.get(f"{world.base_url}{path}").status_code == 200]
    assert len(pages) >= len(ADMIN_PAGES) - 1  # the kept-out mail may be handed back by now
    found, widths = {}, {}
    with chromium() as browser:
        # axe is a script of the test's own, which the pages' policy would refuse.
        context = browser.new_context(bypass_csp=True, viewport={"width": 375, "height": 812})
        context.add_cookies([{"name": cookie.name, "value": cookie.value or "",
                              "url": world.base_url} for cookie in admin.cookies])
        page = context.new_page()
        for path in pages:
            page.goto(f"{world.base_url}{path}")
            assert page.url.endswith(path), path  # still logged in, not sent to the login
            widths[path] = page.evaluate("() => document.documentElement.scrollWidth")
            result = axe_results(page)
            assert result["passes"] > 5, path  # axe did look at the page
            found[path] = serious(result)
        context.close()
    assert {path: width for path, width in widths.items() if width > 375} == {}
    assert {path: violations for path, violations in found.items() if violations} == {}


def test_outbox_retry_queues_a_failed_mail_afresh_and_refuses_others(
        database: Database) -> None:
    mail_id = _failed_mail(database)
    before = utc_now()
    assert retry_failed_outbox(database, [mail_id], actor=f"web:{ADMIN}",
                               retry_for=timedelta(hours=1)) == [mail_id]
    with database.read() as session:
        row = session.get(OutboxMail, mail_id)
        assert row is not None
        assert (row.state, row.attempts, row.claimed_by) == (OutboxState.PENDING, 0, None)
        assert row.next_attempt_at >= before.replace(tzinfo=row.next_attempt_at.tzinfo)
        assert row.deadline_at - row.next_attempt_at == timedelta(hours=1)
        event = session.execute(select(AuditEvent).where(
            AuditEvent.action == "mail-retried")).scalar_one()
        assert event.actor == f"web:{ADMIN}"
        assert event.details["to"] == ["(reporter)"]  # the reporter by role only
        assert event.details["attempts"] == 7
    # It has not failed any more: named, it is refused; "every failed mail" skips it.
    with pytest.raises(OutboxRetryRefused):
        retry_failed_outbox(database, [mail_id], actor=f"web:{ADMIN}",
                            retry_for=timedelta(hours=1))
    assert retry_failed_outbox(database, None, actor=f"web:{ADMIN}",
                               retry_for=timedelta(hours=1)) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_chikanemail_outbox_retry_calls_the_same_function(
        database: Database, database_url: str, tmp_path: Path) -> None:
    mail_id = _failed_mail(database)
    config_file = write_toml(tmp_path / "cli.toml", {
        "storage": {"data_dir": str(tmp_path / "data"), "database_url": database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]}, "routing": {"default_manager": MANAGER}})
    done = run_cli(["--config", str(config_file), "outbox", "retry", str(mail_id)])
    assert done.exit_code == 0, describe(done)
    assert done.stdout.strip().endswith(f": {mail_id}")
    (event,) = [event for event in _events(database) if event.action == "mail-retried"]
    assert event.actor.startswith("cli:")
    refused = run_cli(["--config", str(config_file), "outbox", "retry", str(mail_id)])
    assert refused.exit_code == 1 and "has not failed" in refused.stderr


def _events(database: Database) -> list[AuditEvent]:
    with database.read() as session:
        rows = list(session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars())
        session.expunge_all()
    return rows
