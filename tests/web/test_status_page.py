"""The reporter's status page (issue 21) against a real daemon over real sockets.

Two reports are mailed in over SMTP; the receipts are read from the outgoing Maildir and
their status links followed with `requests`. The manager acknowledges the first case and
writes a note by replying to the notification, then retires its link from the case page
after logging in with the mailed link; the second case is closed and its link retired by
the scheduler's job, run on a clock set 30 days on.
"""

from __future__ import annotations

import email
import hashlib
import re
import secrets
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from intake.service.config import AppConfig
from intake.service.daemon import housekeeping_jobs
from intake.web.settings import WebSettings
from intake.web.status_page.rate_limit import REQUESTS_PER_CLIENT, ClientRateLimit
from notifier.case_actions import CaseActions
from notifier.clock import ManualClock
from notifier.plan.checklist import calendar_for
from storage.database import Database
from storage.models import AuditEvent, Case, Message, OutboxMail, StatusLink
from storage.status_links import secret_sha256
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support import INTAKE_ADDRESS, MANAGER, DaemonThread, free_port, make_config, wait_until
from tests.web.node_packages import WCAG_21_AA, axe_results, serious

REPOSITORY = Path(__file__).resolve().parents[2]
REPORTER = "ansat@kommune.example"
DEPUTY = "stedfortraeder@kommune.example"
NOTE_TEXT = "Talte med Kasper i telefonen, han nægter alt"
STATUS_LINK = re.compile(r"https?://[^\s\"<>]+/status/([A-Za-z0-9_-]{43})")
SCREENSHOT = b"\x89PNG\r\n\x1a\n" + b"skaermbillede af beskeden" * 40
CHAT_LOG = b"Du er til grin. Vi ved hvor du bor.\n"
ATTACHMENTS = {"chat-1.png": SCREENSHOT, "samtale.txt": CHAT_LOG}


def _report(subject: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = REPORTER
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = subject
    mail.set_content("Se de vedhæftede filer. Det skete i går på skolens intranet.")
    mail.add_attachment(SCREENSHOT, maintype="image", subtype="png", filename="chat-1.png")
    mail.add_attachment(CHAT_LOG, maintype="text", subtype="plain", filename="samtale.txt")
    return mail


@dataclass(frozen=True)
class Site:
    """The running daemon, its web view and what the two receipts said."""

    config: AppConfig
    daemon: DaemonThread
    base_url: str
    database: Database
    maildir: Path
    first: str  # case numbers
    second: str
    links: dict[str, str]  # status link by case number
    receipts: dict[str, EmailMessage]


def _mails(maildir: Path) -> list[EmailMessage]:
    found: list[EmailMessage] = []
    if not maildir.is_dir():  # made with the first mail
        return found
    for path in sorted(maildir.iterdir()):
        mail = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(mail, EmailMessage)
        found.append(mail)
    return found


def _text(mail: EmailMessage, subtype: str) -> str:
    part = mail.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def _receipts(maildir: Path) -> dict[str, EmailMessage]:
    """The receipts in the Maildir, by the case number their subject names."""
    receipts = {}
    for mail in _mails(maildir):
        if mail["To"] is not None and REPORTER in str(mail["To"]):
            found = re.search(r"\d{4}-\d{4}", str(mail["Subject"]))
            if found:
                receipts[found.group(0)] = mail
    return receipts


def _both(receipts: dict[str, EmailMessage]) -> dict[str, EmailMessage]:
    """The receipts once both are there (empty before: wait_until tries again)."""
    return receipts if len(receipts) == 2 else {}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A daemon with its web view and two cases, each with the receipt carrying its link."""
    folder = tmp_path_factory.mktemp("status")
    port = free_port()
    config = make_config(folder / "data", f"sqlite:///{folder / 'db.sqlite3'}",
                         routing={"deputy": DEPUTY})
    config = replace(config, web=WebSettings(listen=f"127.0.0.1:{port}"))
    maildir = config.storage.data_path / "outgoing-maildir" / "new"
    with DaemonThread(config) as daemon:
        with smtplib.SMTP(*daemon.smtp_address) as client:
            client.send_message(_report("Fwd: beskeder fra en forælder"))
            client.send_message(_report("Fwd: endnu en besked"))
        receipts = wait_until(lambda: _both(_receipts(maildir)), timeout=30,
                              message="both receipts")
        first, second = sorted(receipts)
        links = {}
        for number, receipt in receipts.items():
            found = STATUS_LINK.search(_text(receipt, "plain"))
            assert found, f"the receipt of {number} carries no status link"
            links[number] = found.group(0)
        database = Database(config.storage.effective_database_url)
        try:
            yield Site(config, daemon, f"http://127.0.0.1:{port}", database, maildir, first,
                       second, links, receipts)
        finally:
            database.dispose()


def _case(site: Site, number: str) -> Case:
    with site.database.read() as session:
        case = session.execute(select(Case).where(Case.number == number)).scalar_one()
        session.expunge(case)
        return case


def _events(site: Site, action: str, number: str) -> list[AuditEvent]:
    with site.database.read() as session:
        return list(session.execute(select(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.case_number == number)
            .order_by(AuditEvent.seq)).scalars())


def _no_link_leaks(html: str, secret: str) -> None:
    """Every link and source of the page stays on this site and carries no secret."""
    for target in re.findall(r"""(?:href|src|action)=["']([^"']*)["']""", html):
        assert target.startswith(("/", "#")) and not target.startswith("//"), target
        assert secret not in target, target


def _secret(link: str) -> str:
    return link.rsplit("/", 1)[1]


def test_receipt_carries_a_link_of_its_own(site: Site) -> None:
    receipt = site.receipts[site.first]
    link = site.links[site.first]
    assert link.startswith(f"{site.base_url}/status/")
    assert link in _text(receipt, "html")
    secret = _secret(link)
    assert secret not in str(receipt["Reply-To"])  # not the reply token
    with site.database.read() as session:
        rows = list(session.execute(select(StatusLink)).scalars())
        case_ids = {row.case_id for row in rows}
        digests = {row.secret_sha256 for row in rows}
    assert len(rows) == 2 and len(case_ids) == 2
    assert secret_sha256(secret) in digests  # only the hash is kept
    assert len(_events(site, "status-link-created", site.first)) == 1
    # Once sent, the outbox keeps the receipt without the secret (as without reply token).
    def sent_receipts() -> list[bytes]:
        with site.database.read() as session:
            return [bytes(raw) for raw in session.execute(select(OutboxMail.raw).where(
                OutboxMail.kind == "receipt", OutboxMail.state == "sent")).scalars()]
    def both_sent() -> list[bytes]:
        found = sent_receipts()
        return found if len(found) == 2 else []

    for raw in wait_until(both_sent, message="both receipts marked sent"):
        kept = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(kept, EmailMessage)
        for subtype in ("plain", "html"):
            assert f"/status/{'0' * 43}" in _text(kept, subtype)
            assert secret not in _text(kept, subtype)
    # The manager's notification carries no status link.
    notifications = [mail for mail in _mails(site.maildir) if MANAGER in str(mail["To"])]
    assert notifications
    for mail in notifications:
        assert "/status/" not in _text(mail, "plain")


def test_page_shows_what_was_received_and_that_it_waits(site: Site) -> None:
    response = requests.get(site.links[site.first], timeout=10)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.text
    assert '<html lang="da">' in html
    assert site.first in html
    for name, data in ATTACHMENTS.items():
        assert name in html
        assert hashlib.sha256(data).hexdigest() in html
    raw_sha256 = _case_mail_sha256(site, site.first)
    assert raw_sha256 in html
    assert 'data-state="waiting"' in html
    assert "har endnu ikke kvitteret" in html
    assert "Psykisk førstehjælp" in html  # the plan's next step, by its title only
    assert "Mailens tekst" in html  # the body is named by what it is
    assert MANAGER not in html and DEPUTY not in html
    _no_link_leaks(html, _secret(site.links[site.first]))


def _case_mail_sha256(site: Site, number: str) -> str:
    with site.database.read() as session:
        return str(session.execute(select(Message.sha256).join(Case, Case.id == Message.case_id)
                                   .where(Case.number == number, Message.kind == "report")
                                   ).scalar_one())


def _reply_to_notification(site: Site, number: str, body: str) -> None:
    """The manager answers the notification of case `number` through its reply address."""
    notification = next(mail for mail in _mails(site.maildir)
                        if MANAGER in str(mail["To"]) and number in str(mail["Subject"]))
    address = notification["Reply-To"].addresses[0].addr_spec
    answer = EmailMessage()
    answer["From"] = MANAGER
    answer["To"] = address
    answer["Subject"] = f"SV: {notification['Subject']}"
    answer["In-Reply-To"] = str(notification["Message-ID"])
    answer.set_content(body)
    answer.add_attachment(b"referat fra moedet", maintype="text", subtype="plain",
                          filename="referat-leder.txt")
    with smtplib.SMTP(*site.daemon.smtp_address) as client:
        client.sendmail(MANAGER, [address], answer.as_bytes())


def test_acknowledged_shows_without_note_or_manager(site: Site) -> None:
    _reply_to_notification(site, site.first, f"kvitter\n\n{NOTE_TEXT}\n")
    wait_until(lambda: _case(site, site.first).acknowledged_at is not None, timeout=20,
               message="the acknowledgement")
    response = requests.get(site.links[site.first], timeout=10)
    assert response.status_code == 200
    html = response.text
    assert 'data-state="acknowledged"' in html
    assert "Den ansvarlige leder har kvitteret for sagen" in html
    assert NOTE_TEXT not in html and "Kasper" not in html
    assert "referat-leder.txt" not in html  # the manager's mail is not the reporter's
    assert MANAGER not in html and DEPUTY not in html


def test_axe_finds_no_serious_violation_and_nothing_leaves_the_site(site: Site) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=list(CHROMIUM_ARGS))
        try:
            # axe is a script of the test's own, which the page's policy would refuse.
            context = browser.new_context(bypass_csp=True, viewport={"width": 375,
                                                                     "height": 812})
            page = context.new_page()
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            page.goto(site.links[site.first])
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
            result = axe_results(page, (*WCAG_21_AA, "best-practice"))
        finally:
            browser.close()
    assert result["passes"] > 10  # axe did look at the page
    assert serious(result) == []
    # Only the page and its own style sheet were fetched: nothing carries the secret away.
    assert asked == [site.links[site.first], f"{site.base_url}/static/app.css"]


def test_a_forged_secret_gets_the_neutral_404(site: Site) -> None:
    forged = requests.get(f"{site.base_url}/status/{secrets.token_urlsafe(32)}", timeout=10)
    malformed = requests.get(f"{site.base_url}/status/{site.first}", timeout=10)
    for response in (forged, malformed):
        assert response.status_code == 404
        assert response.headers["Cache-Control"] == "no-store"
    assert forged.text == malformed.text
    assert site.first not in forged.text


def _log_in(site: Site, address: str) -> requests.Session:
    """A browser session logged in as `address` through the link the daemon mails."""
    browser = requests.Session()
    seen = set(site.maildir.iterdir())
    page = browser.get(f"{site.base_url}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    asked = browser.post(f"{site.base_url}/login", timeout=10,
                         data={"address": address, "csrf_token": token.group(1)})
    assert asked.status_code == 200

    def login_link() -> str:
        for path in sorted(set(site.maildir.iterdir()) - seen):
            mail = email.message_from_bytes(path.read_bytes(), policy=default_policy)
            assert isinstance(mail, EmailMessage)
            found = re.search(r"https?://\S+/login/[A-Za-z0-9_-]+", _text(mail, "plain"))
            if found and address in str(mail["To"]):
                return found.group(0)
        return ""

    link = wait_until(login_link, timeout=15, message="the login mail")
    confirm = browser.get(link, timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text)
    assert token
    used = browser.post(link, data={"csrf_token": token.group(1)}, timeout=10,
                        allow_redirects=False)
    assert used.status_code == 303
    return browser


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_the_manager_retires_the_link_from_the_case_page(site: Site) -> None:
    link = site.links[site.first]
    manager = _log_in(site, MANAGER)
    case_page = manager.get(f"{site.base_url}/cases/{site.first}", timeout=10)
    assert f'action="/cases/{site.first}/status-link/retire"' in case_page.text
    token = _csrf(case_page.text)
    # Without the form's token: refused, the link lives on.
    forged = manager.post(f"{site.base_url}/cases/{site.first}/status-link/retire",
                          data={}, timeout=10, allow_redirects=False)
    assert forged.status_code == 403
    assert requests.get(link, timeout=10).status_code == 200
    # The deputy may not see the case (not escalated): the same 404 as no case at all.
    deputy = _log_in(site, DEPUTY)
    deputy_token = _csrf(deputy.get(f"{site.base_url}/cases", timeout=10).text)
    refused = deputy.post(f"{site.base_url}/cases/{site.first}/status-link/retire",
                          data={"csrf_token": deputy_token}, timeout=10,
                          allow_redirects=False)
    assert refused.status_code == 404
    assert requests.get(link, timeout=10).status_code == 200

    retired = manager.post(f"{site.base_url}/cases/{site.first}/status-link/retire",
                           data={"csrf_token": token}, timeout=10)
    assert retired.status_code == 200
    assert "Statuslinket er deaktiveret" in retired.text
    gone = requests.get(link, timeout=10)
    assert gone.status_code == 404
    assert gone.headers["Cache-Control"] == "no-store"
    events = _events(site, "status-link-retired", site.first)
    assert [(event.actor, event.details) for event in events] == [
        (f"web:{MANAGER}", {"reason": "manager"})]
    # The case page's timeline names it in words.
    assert "Link til statussiden deaktiveret" in manager.get(
        f"{site.base_url}/cases/{site.first}", timeout=10).text


def test_the_link_is_retired_30_days_after_the_case_closed(site: Site) -> None:
    link = site.links[site.second]
    calendar = calendar_for(site.config.plan, site.config.ui.zone)
    with site.database.write() as session:
        case = session.execute(select(Case).where(Case.number == site.second)).scalar_one()
        CaseActions(calendar).close(session, case, "afsluttet efter samtale",
                                    actor=MANAGER, now=datetime.now(UTC))
        closed_at = case.closed_at
    assert closed_at is not None
    closed_page = requests.get(link, timeout=10)
    assert closed_page.status_code == 200
    assert 'data-state="closed"' in closed_page.text

    clock = ManualClock(closed_at + timedelta(days=29, hours=23))
    job = next(job for job in housekeeping_jobs(site.config, site.database, clock)
               if job.id == "status-links")
    job.run()
    assert requests.get(link, timeout=10).status_code == 200
    clock.set(closed_at + timedelta(days=30))
    job.run()
    assert requests.get(link, timeout=10).status_code == 404
    events = _events(site, "status-link-retired", site.second)
    assert [(event.actor, event.details) for event in events] == [
        ("system", {"reason": "case-closed"})]
    job.run()  # nothing left to retire: no second event
    assert len(_events(site, "status-link-retired", site.second)) == 1


def test_the_window_slides_per_client() -> None:
    now = [100.0]
    limit = ClientRateLimit(limit=2, window_seconds=10.0, monotonic=lambda: now[0])
    assert limit.allow("192.0.2.1") and limit.allow("192.0.2.1")
    assert not limit.allow("192.0.2.1")
    assert limit.allow("192.0.2.2")  # another client has its own count
    now[0] += 10.0
    assert limit.allow("192.0.2.1")


def test_rate_limit_per_client(site: Site) -> None:
    """Last in the module: it uses up this client's requests."""
    statuses = []
    for _ in range(REQUESTS_PER_CLIENT + 1):
        response = requests.get(f"{site.base_url}/status/{secrets.token_urlsafe(32)}",
                                timeout=10)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Cache-Control"] == "no-store"
            assert int(response.headers["Retry-After"]) > 0
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) <= {404}
