"""The pages in a real browser against a real daemon: Debian's chromium driven by Playwright,
one daemon and one browser for the module.

Two reports are mailed in over SMTP: the first with two screenshots, an SVG carrying a
script and an HTML file carrying one; the second is then handed to another manager. The
manager logs in with the link the daemon mails to the outgoing Maildir.
"""

from __future__ import annotations

import email
import io
import re
import shutil
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import func, select, update

from intake.web.settings import WebSettings
from storage.database import Database
from storage.models import AuditEvent, Case, Evidence, Message
from tests.browser import chromium
from tests.support import INTAKE_ADDRESS, MANAGER, DaemonThread, free_port, make_config, wait_until
from tests.web.node_packages import axe_results, serious

REPOSITORY = Path(__file__).resolve().parents[3]
OTHER_MANAGER = "anden.leder@kommune.example"
REPORTER = "ansat@kommune.example"
# Set by the hostile evidence if it ever runs.
SVG_WITH_SCRIPT = (b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
                   b'<script>document.title="svg ran";alert("svg ran")</script>'
                   b'<text x="10" y="50">hej</text></svg>')
HTML_WITH_SCRIPT = (b"<html><body><h1>Du er til grin</h1>"
                    b"<script>document.title='html ran';alert('html ran')</script>"
                    b"</body></html>")
NARROW = {"width": 375, "height": 812}


def _screenshot(text: str, colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (420, 300), colour)
    ImageDraw.Draw(image).text((20, 130), text, fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _report(subject: str, attachments: list[tuple[bytes, str, str, str]]) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = REPORTER
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = subject
    mail.set_content("Se de vedhæftede skærmbilleder. Det skete i går på skolens intranet.")
    for data, maintype, subtype, filename in attachments:
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail


@dataclass(frozen=True)
class Site:
    """The running daemon's web view, its database and the cases it holds."""

    base_url: str
    database: Database
    maildir: Path
    mine: str
    others: str
    items: dict[str, int]  # evidence id by file name


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A daemon with its web view, two cases mailed in, the second another manager's."""
    folder = tmp_path_factory.mktemp("pages")
    port = free_port()
    config = make_config(folder / "data", f"sqlite:///{folder / 'db.sqlite3'}")
    config = replace(config, web=WebSettings(listen=f"127.0.0.1:{port}"))
    with DaemonThread(config) as daemon:
        with smtplib.SMTP(*daemon.smtp_address) as client:
            client.send_message(_report("Fwd: beskeder fra en forælder", [
                (_screenshot("Du er til grin", (255, 255, 255)), "image", "png", "chat-1.png"),
                (_screenshot("Vi ved hvor du bor", (230, 240, 255)), "image", "png",
                 "chat-2.png"),
                (SVG_WITH_SCRIPT, "image", "svg+xml", "tegning.svg"),
                (HTML_WITH_SCRIPT, "text", "html", "side.html"),
            ]))
            client.send_message(_report("Fwd: endnu en", []))
        database = Database(config.storage.effective_database_url)

        def processed() -> bool:
            with database.read() as session:
                return session.execute(select(func.count()).select_from(Message).where(
                    Message.state == "processed")).scalar_one() == 2

        wait_until(processed, timeout=30, message="both reports processed")
        with database.write() as session:
            numbers = list(session.execute(select(Case.number).order_by(Case.id)).scalars())
            session.execute(update(Case).where(Case.number == numbers[1])
                            .values(manager=OTHER_MANAGER))
            items = {row.filename: row.id for row in session.execute(
                select(Evidence).where(Evidence.filename.is_not(None))).scalars()}
        try:
            yield Site(f"http://127.0.0.1:{port}", database, config.storage.data_path /
                       "outgoing-maildir" / "new", numbers[0], numbers[1], items)
        finally:
            database.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, for the module."""
    with chromium() as launched:
        yield launched


def _login_link(maildir: Path, seen: set[Path]) -> str:
    """The login link of a login mail not seen before."""
    for path in sorted(maildir.iterdir()):
        if path in seen:
            continue
        mail = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        body = mail.get_body(preferencelist=("plain",))
        found = re.search(r"https?://\S+/login/[A-Za-z0-9_-]+",
                          body.get_content() if body is not None else "")
        if found:
            return found.group(0)
    return ""


@pytest.fixture(scope="module")
def logged_in(browser: Browser, site: Site) -> Iterator[BrowserContext]:
    """A browser context logged in as the manager through the mail link."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{site.base_url}/login")
    seen = set(site.maildir.iterdir())
    page.fill("#address", MANAGER)
    page.click("form[action='/login'] button[type=submit]")
    link = wait_until(lambda: _login_link(site.maildir, seen), timeout=15,
                      message="the login mail in the Maildir")
    page.goto(link)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r".*/cases.*"))
    page.close()
    try:
        yield context
    finally:
        context.close()


def _events(site: Site, action: str) -> list[AuditEvent]:
    with site.database.read() as session:
        return list(session.execute(select(AuditEvent).where(
            AuditEvent.action == action).order_by(AuditEvent.seq)).scalars())


def _no_dialog(page: Page) -> list[str]:
    """Every dialog the page opens (there must be none), dismissed."""
    dialogs: list[str] = []

    def seen(dialog: object) -> None:
        dialogs.append(getattr(dialog, "message", "?"))
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", seen)
    return dialogs


def test_list_filters_and_the_case_with_every_thumbnail(logged_in: BrowserContext,
                                                        site: Site) -> None:
    viewed_before = len(_events(site, "viewed"))
    page = logged_in.new_page()
    page.goto(f"{site.base_url}/cases")
    assert page.locator(f"a[href='/cases/{site.mine}']").count() == 1
    assert page.locator(f"a[href='/cases/{site.others}']").count() == 0
    assert len(_events(site, "viewed")) == viewed_before  # the list writes no event
    # htmx swaps the list when a filter changes; the URL follows it.
    page.check("input[name=status][value=closed]")
    page.wait_for_url(re.compile(r".*status=closed.*"))
    assert page.locator(f"a[href='/cases/{site.mine}']").count() == 0
    page.check("input[name=status][value='']")
    page.wait_for_url(re.compile(r".*status=&.*"))
    page.wait_for_selector(f"a[href='/cases/{site.mine}']")
    page.fill("#case-search", "kommune.example")
    page.press("#case-search", "Enter")
    page.wait_for_url(re.compile(r".*q=kommune.example.*"))
    page.click(f"a[href='/cases/{site.mine}']")
    page.wait_for_url(f"{site.base_url}/cases/{site.mine}")
    thumbnails = page.locator("ul.evidence img")
    assert thumbnails.count() == 2
    for index in range(thumbnails.count()):
        thumbnails.nth(index).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=thumbnails.nth(index).element_handle())
        assert thumbnails.nth(index).evaluate("img => img.naturalWidth") > 0
    assert page.get_by_text("chat-1.png").count() >= 1
    viewed = _events(site, "viewed")
    assert viewed[-1].actor == f"web:{MANAGER}" and viewed[-1].case_number == site.mine
    assert viewed[-1].details == {"what": "case", "via": "web"}
    page.close()


def test_svg_with_a_script_runs_nothing(logged_in: BrowserContext, site: Site) -> None:
    page = logged_in.new_page()
    dialogs = _no_dialog(page)
    item = site.items["tegning.svg"]
    response = page.goto(f"{site.base_url}/cases/{site.mine}/evidence/{item}")
    assert response is not None and response.status == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("sandbox")
    # Shown as its source, as text; nothing of it is an element of the page.
    assert "document.title" in page.locator("pre.text").inner_text()
    assert page.locator("svg, img.viewer").count() == 0
    with page.expect_download() as download:
        page.click(f"a[href$='/evidence/{item}/download']")
    assert download.value.suggested_filename == "tegning.svg"
    assert dialogs == [] and "ran" not in page.title()
    downloaded = _events(site, "downloaded")[-1]
    assert downloaded.actor == f"web:{MANAGER}"
    assert downloaded.details["evidence"] == item
    page.close()


def test_html_evidence_is_text_and_its_download_an_attachment(logged_in: BrowserContext,
                                                              site: Site) -> None:
    page = logged_in.new_page()
    dialogs = _no_dialog(page)
    item = site.items["side.html"]
    page.goto(f"{site.base_url}/cases/{site.mine}/evidence/{item}")
    assert "<script>document.title='html ran'" in page.locator("pre.text").inner_text()
    assert page.locator("h1").inner_text() == "side.html"  # not the evidence's <h1>
    response = logged_in.request.get(
        f"{site.base_url}/cases/{site.mine}/evidence/{item}/download")
    assert response.status == 200 and response.body() == HTML_WITH_SCRIPT
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith('attachment; filename="side.html"')
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"
    assert dialogs == [] and "ran" not in page.title()
    page.close()


def test_a_picture_is_our_own_rendering(logged_in: BrowserContext, site: Site) -> None:
    page = logged_in.new_page()
    page.goto(f"{site.base_url}/cases/{site.mine}/evidence/{site.items['chat-1.png']}")
    viewer = page.locator("img.viewer")
    assert viewer.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert viewer.evaluate("img => img.naturalWidth") == 420
    # The sandboxed page still has our stylesheet.
    assert viewer.evaluate("img => getComputedStyle(img).borderTopStyle") == "solid"
    assert page.locator("#ocr-heading").count() == 1
    page.close()


def test_another_managers_case_is_not_found(logged_in: BrowserContext, site: Site) -> None:
    page = logged_in.new_page()
    for path in (f"/cases/{site.others}", f"/cases/{site.others}/export.zip",
                 f"/cases/{site.mine}/evidence/999999", "/cases/2099-0001"):
        response = page.goto(site.base_url + path)
        assert response is not None and response.status == 404, path
    page.close()


def test_the_export_is_a_zip_attachment(logged_in: BrowserContext, site: Site) -> None:
    response = logged_in.request.get(f"{site.base_url}/cases/{site.mine}/export.zip")
    assert response.status == 200
    assert response.headers["content-disposition"].startswith(
        f'attachment; filename="{site.mine}.zip"')
    assert response.body()[:4] == b"PK\x03\x04"
    assert _events(site, "exported")[-1].actor == f"web:{MANAGER}"


def _pages(site: Site) -> list[str]:
    return ["/cases", "/cases?scope=all&overdue=1", f"/cases/{site.mine}",
            f"/cases/{site.mine}/evidence/{site.items['chat-1.png']}",
            f"/cases/{site.mine}/evidence/{site.items['side.html']}",
            f"/cases/{site.others}"]


def _visits(browser: Browser, logged_in: BrowserContext, site: Site,
            **options: object) -> Iterator[tuple[str, Page]]:
    """Every page, loaded in turn: the login page logged out, the others logged in."""
    stranger = browser.new_context(**options)  # type: ignore[arg-type]
    member = browser.new_context(storage_state=logged_in.storage_state(),
                                 **options)  # type: ignore[arg-type]
    try:
        for path, context in [("/login", stranger), *((path, member) for path in _pages(site))]:
            page = context.new_page()
            page.goto(site.base_url + path)
            yield path, page
            page.close()
    finally:
        stranger.close()
        member.close()


def test_every_page_fits_375_pixels_and_axe_finds_no_serious_violation(
        browser: Browser, logged_in: BrowserContext, site: Site) -> None:
    widths, found = {}, {}
    # axe is a script of the test's own, which the pages' policy would refuse.
    for path, page in _visits(browser, logged_in, site, viewport=NARROW, bypass_csp=True):
        widths[path] = page.evaluate("() => document.documentElement.scrollWidth")
        result = axe_results(page)
        assert result["passes"] > 5, path  # axe did look at the page
        found[path] = serious(result)
    assert len(widths) == len(found) == 7
    assert {path: width for path, width in widths.items() if width > NARROW["width"]} == {}
    assert {path: v for path, v in found.items() if v} == {}


def test_screenshot_of_the_case_page(browser: Browser, logged_in: BrowserContext,
                                     site: Site, tmp_path: Path) -> None:
    page = logged_in.new_page()
    page.goto(f"{site.base_url}/cases/{site.mine}")
    shot = tmp_path / "case-page.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    with Image.open(shot) as image:
        assert image.width == 1200 and image.height > 900
    shutil.copy(shot, "/tmp/case-page.png")
