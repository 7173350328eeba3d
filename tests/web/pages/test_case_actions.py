"""The case page's action panel in a real browser against a real daemon: Debian's chromium
driven by Playwright, one daemon and one browser for the module.

Four reports are mailed in over SMTP; the second is then handed to another manager. The
manager is logged in with a server-side session (the login itself is tested with the pages);
each action is done by filling the panel's form and pressing its button.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page
from sqlalchemy import func, select, update

from intake.web.sessions import COOKIE_NAME, start_session
from intake.web.settings import WebSettings
from storage.audit import check_chain
from storage.database import Database
from storage.i18n.catalogs import translations
from storage.models import AuditEvent, Case, CaseNote, CaseStep, Message, OutboxMail
from tests.browser import chromium
from tests.support import INTAKE_ADDRESS, MANAGER, DaemonThread, free_port, make_config, wait_until

REPOSITORY = Path(__file__).resolve().parents[3]
OTHER_MANAGER = "anden.leder@kommune.example"
DEPUTY = "stedfortraeder@kommune.example"
REPORTER = "ansat@kommune.example"
ACTOR = f"web:{MANAGER}"
_ = translations("da").gettext


@dataclass(frozen=True)
class Site:
    """The running daemon's web view, its database and its cases by what the tests do."""

    base_url: str
    database: Database
    cases: dict[str, str]  # case number by role: act, others, close, hand-over


def _report(subject: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = REPORTER
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = subject
    mail.set_content("Se den videresendte besked. Den kom i går aftes.")
    return mail


ROLES = ("act", "others", "close", "hand-over")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A daemon with its web view and four cases, the second another manager's."""
    folder = tmp_path_factory.mktemp("actions")
    port = free_port()
    config = make_config(folder / "data", f"sqlite:///{folder / 'db.sqlite3'}")
    config = replace(config, web=WebSettings(listen=f"127.0.0.1:{port}"))
    with DaemonThread(config) as daemon:
        with smtplib.SMTP(*daemon.smtp_address) as client:
            for role in ROLES:
                client.send_message(_report(f"Fwd: chikane ({role})"))
        database = Database(config.storage.effective_database_url)

        def processed() -> bool:
            with database.read() as session:
                return session.execute(select(func.count()).select_from(Message).where(
                    Message.state == "processed")).scalar_one() == len(ROLES)

        wait_until(processed, timeout=30, message="the reports processed")
        with database.write() as session:
            numbers = list(session.execute(select(Case.number).order_by(Case.id)).scalars())
            cases = dict(zip(ROLES, numbers, strict=True))
            session.execute(update(Case).where(Case.number == cases["others"])
                            .values(manager=OTHER_MANAGER))
        try:
            yield Site(f"http://127.0.0.1:{port}", database, cases)
        finally:
            database.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, for the module."""
    with chromium() as launched:
        yield launched


@dataclass
class LoggedIn:
    """A browser context with a person's session, and that session's CSRF token."""

    context: BrowserContext
    csrf_token: str


def _log_in(browser: Browser, site: Site, address: str) -> LoggedIn:
    cookie, active = start_session(site.database, address, now=datetime.now(UTC),
                                   client="127.0.0.1")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_cookies([{"name": COOKIE_NAME, "value": cookie, "url": site.base_url}])
    return LoggedIn(context, active.csrf_token)


@pytest.fixture(scope="module")
def manager(browser: Browser, site: Site) -> Iterator[LoggedIn]:
    """The manager of the cases, logged in."""
    logged_in = _log_in(browser, site, MANAGER)
    try:
        yield logged_in
    finally:
        logged_in.context.close()


def _case(site: Site, number: str) -> Case:
    with site.database.read() as session:
        case = session.execute(select(Case).where(Case.number == number)).scalar_one()
        session.expunge(case)
    return case


def _steps(site: Site, number: str) -> list[CaseStep]:
    with site.database.read() as session:
        steps = list(session.execute(
            select(CaseStep).join(Case, Case.id == CaseStep.case_id)
            .where(Case.number == number).order_by(CaseStep.position)).scalars())
        session.expunge_all()
    return steps


def _events(site: Site, number: str) -> list[AuditEvent]:
    with site.database.read() as session:
        events = list(session.execute(select(AuditEvent).where(
            AuditEvent.case_number == number).order_by(AuditEvent.seq)).scalars())
        session.expunge_all()
    return events


def _changes(site: Site, number: str) -> list[tuple[str, str | None]]:
    """The case's audit events other than views: (action, actor)."""
    return [(event.action, event.actor) for event in _events(site, number)
            if event.action != "viewed"]


def _submit(page: Page, action: str, expected: str) -> None:
    """Press the button of the panel's form for `action`; wait for the case page to show
    the result."""
    page.click(f"form[action$='/actions/{action}'] button[type=submit]")
    page.wait_for_url(re.compile(rf".*result={re.escape(action)}:{expected}#actions$"))


def _result(page: Page) -> str:
    return page.locator("#actions .action-result").inner_text()


def _timeline_labels(page: Page) -> list[str]:
    return page.locator("ol.timeline li strong").all_inner_texts()


def test_each_action_from_the_case_page(manager: LoggedIn, site: Site) -> None:
    number = site.cases["act"]
    page = manager.context.new_page()
    dialogs: list[str] = []

    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    page.goto(f"{site.base_url}/cases/{number}")
    assert page.locator("#actions h2").inner_text() == _("Act on the case")

    _submit(page, "acknowledge", "done")
    assert _result(page) == _("The case is acknowledged.")
    assert _case(site, number).acknowledged_by == ACTOR
    assert page.locator("form[action$='/actions/acknowledge']").count() == 0

    page.select_option("#action-step", "2")
    _submit(page, "step", "done")
    assert _result(page) == _("The step is marked done.")
    steps = _steps(site, number)
    assert steps[1].done_by == ACTOR and steps[0].done_at is None
    # The done step is no longer offered.
    assert "2" not in page.locator("#action-step option").evaluate_all(
        "options => options.map(o => o.value)")

    page.fill("#action-absence", "2026-11-30")
    _submit(page, "absence", "done")
    assert _case(site, number).first_absence_day == date(2026, 11, 30)
    assert page.locator("#action-absence").input_value() == "2026-11-30"

    page.select_option("#action-relation", "colleague")
    _submit(page, "relation", "done")
    page.select_option("#action-medium", "sms")
    _submit(page, "medium", "done")
    page.fill("#action-witness", "Hans Hansen, lærer, 12 34 56 78")
    _submit(page, "witness", "done")
    case = _case(site, number)
    assert (case.relation, case.medium) == ("colleague", "sms")
    assert case.witnesses == ["Hans Hansen, lærer, 12 34 56 78"]
    assert page.locator("ul.witnesses li").all_inner_texts() == case.witnesses

    hostile = "<script>alert('note ran')</script> Mødet med forælderen er holdt."
    page.fill("#action-note", hostile)
    _submit(page, "note", "done")
    assert hostile in page.locator("ul.notes .note-text").all_inner_texts()
    assert "note ran" not in page.url and "M%C3%B8det" not in page.url

    page.fill("#action-deputy", DEPUTY)
    _submit(page, "assign", "done")
    case = _case(site, number)
    assert (case.manager, case.deputy) == (MANAGER, DEPUTY)
    with site.database.read() as session:
        recipients = session.execute(select(OutboxMail.rcpt_tos).where(
            OutboxMail.case_id == case.id, OutboxMail.kind == "notification")).scalars().all()
    assert [DEPUTY] in recipients  # the new deputy's notification

    page.fill("#action-hold", "Politiets sag 1234-56789-00012-26")
    _submit(page, "hold", "done")
    case = _case(site, number)
    assert case.legal_hold and case.held_by == ACTOR
    assert "1234-56789-00012-26" in page.locator("form[action$='/actions/unhold']").inner_text()
    _submit(page, "unhold", "done")
    assert not _case(site, number).legal_hold

    expected = [("acknowledged", ACTOR), ("step-done", ACTOR), ("absence-recorded", ACTOR),
                ("relation-set", ACTOR), ("medium-set", ACTOR), ("witness-added", ACTOR),
                ("note", ACTOR), ("assigned", ACTOR), ("hold-set", ACTOR),
                ("hold-lifted", ACTOR)]
    assert [change for change in _changes(site, number) if change[1] == ACTOR] == expected
    labels = _timeline_labels(page)
    for label in ("Case acknowledged", "Step done", "First day of absence recorded",
                  "Harasser's relation recorded", "Witness added", "Note written",
                  "Case reassigned", "Legal hold set", "Legal hold lifted"):
        assert _(label) in labels, label
    assert dialogs == []
    assert check_chain(site.database).ok
    page.close()


def test_refused_and_unchanged_results_are_worded_not_reflected(manager: LoggedIn,
                                                                 site: Site) -> None:
    number = site.cases["act"]
    page = manager.context.new_page()
    page.goto(f"{site.base_url}/cases/{number}?result=<b>hej</b>")
    assert page.locator("#actions .action-result").count() == 0
    assert page.locator("b", has_text="hej").count() == 0
    before = _changes(site, number)
    response = manager.context.request.post(
        f"{site.base_url}/cases/{number}/actions/absence", max_redirects=0,
        form={"csrf_token": manager.csrf_token, "day": "i morgen"})
    assert response.status == 303
    assert response.headers["location"].endswith("?result=absence:invalid#actions")
    page.goto(f"{site.base_url}{response.headers['location']}")
    assert page.locator("#actions .action-result.failed").inner_text() == _(
        "Write the day as a date, for example 2026-11-22.")
    assert _changes(site, number) == before
    page.close()


def test_closing_asks_for_confirmation_and_names_the_steps_not_done(manager: LoggedIn,
                                                                    site: Site) -> None:
    number = site.cases["close"]
    page = manager.context.new_page()
    page.goto(f"{site.base_url}/cases/{number}")
    page.select_option("#action-step", "1")
    _submit(page, "step", "done")
    page.click(f"a[href='/cases/{number}/close']")
    page.wait_for_url(f"{site.base_url}/cases/{number}/close")
    not_done = [step for step in _steps(site, number) if step.done_at is None]
    listed = page.locator("ul.open-steps li").all_inner_texts()
    assert listed == [f"{step.position}. {step.title_da}" for step in not_done]
    assert len(listed) == len(_steps(site, number)) - 1
    assert _case(site, number).status == "open"  # the page itself changes nothing
    blank = manager.context.request.post(
        f"{site.base_url}/cases/{number}/close", max_redirects=0,
        form={"csrf_token": manager.csrf_token, "reason": "   "})
    assert blank.headers["location"] == f"/cases/{number}/close?error=empty"
    assert _case(site, number).status == "open"

    page.fill("#close-reason", "Opfølgningsmødet er holdt; medarbejderen er tilfreds.")
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r".*result=close:done#actions$"))
    case = _case(site, number)
    assert case.status == "closed"
    assert (case.close_reason or "").startswith("Opfølgningsmødet")
    closed = [event for event in _events(site, number) if event.action == "closed"]
    assert closed[-1].actor == ACTOR
    assert closed[-1].details["open_steps"] == [step.position for step in not_done]
    assert _("Case closed") in _timeline_labels(page)
    # A closed case: notes, and the legal hold that keeps it past retention; nothing else.
    forms = page.locator("#actions form").evaluate_all(
        "forms => forms.map(f => f.getAttribute('action').split('/').pop())")
    assert forms == ["note", "hold"]
    page.fill("#action-note", "Sagen er lukket, men forælderen har skrevet igen.")
    _submit(page, "note", "done")
    response = manager.context.request.post(
        f"{site.base_url}/cases/{number}/actions/step", max_redirects=0,
        form={"csrf_token": manager.csrf_token, "step": "3"})
    assert response.headers["location"].endswith("?result=step:case-closed#actions")
    assert _steps(site, number)[2].done_at is None
    page.goto(f"{site.base_url}/cases/{number}/close")
    assert page.url.endswith("?result=close:case-closed#actions")
    assert check_chain(site.database).ok
    page.close()


def test_a_manager_of_another_case_is_refused_and_nothing_changes(browser: Browser,
                                                                  site: Site) -> None:
    number = site.cases["act"]
    other = _log_in(browser, site, OTHER_MANAGER)
    try:
        before = (_changes(site, number), _case(site, number).witnesses)
        post: dict[str, Any] = {"max_redirects": 0}
        for action, field in (("note", {"note": "Jeg tager over"}),
                              ("witness", {"witness": "Nogen"}),
                              ("assign", {"manager": OTHER_MANAGER}),
                              ("hold", {"reason": "Min grund"})):
            response = other.context.request.post(
                f"{site.base_url}/cases/{number}/actions/{action}",
                form={"csrf_token": other.csrf_token, **field}, **post)
            assert response.status == 404, action
        assert other.context.request.post(
            f"{site.base_url}/cases/{number}/close",
            form={"csrf_token": other.csrf_token, "reason": "Slut"}, **post).status == 404
        assert other.context.request.get(f"{site.base_url}/cases/{number}/close").status == 404
        after = (_changes(site, number), _case(site, number).witnesses)
        assert after == before
        assert _case(site, number).status == "open"
        # The same person may act on their own case.
        own = other.context.request.post(
            f"{site.base_url}/cases/{site.cases['others']}/actions/note",
            form={"csrf_token": other.csrf_token, "note": "Set."}, **post)
        assert own.status == 303
    finally:
        other.context.close()


def test_a_post_without_the_csrf_token_is_refused(manager: LoggedIn, site: Site) -> None:
    number = site.cases["act"]
    with site.database.read() as session:
        notes_before = session.execute(select(func.count()).select_from(CaseNote)).scalar_one()
    forms: list[dict[str, str | float | bool]] = [
        {"note": "Uden token"}, {"note": "Forkert token", "csrf_token": "x" * 43}]
    for form in forms:
        response = manager.context.request.post(
            f"{site.base_url}/cases/{number}/actions/note", form=form, max_redirects=0)
        assert response.status == 403
    with site.database.read() as session:
        assert session.execute(select(func.count()).select_from(CaseNote)).scalar_one() == \
            notes_before


def test_handing_a_case_over_ends_ones_access(manager: LoggedIn, site: Site) -> None:
    number = site.cases["hand-over"]
    page = manager.context.new_page()
    page.goto(f"{site.base_url}/cases/{number}")
    page.fill("#action-manager", OTHER_MANAGER)
    page.click("form[action$='/actions/assign'] button[type=submit]")
    page.wait_for_url(f"{site.base_url}/cases/{number}/handed-over")
    assert OTHER_MANAGER in page.locator("main").inner_text()
    assert _case(site, number).manager == OTHER_MANAGER
    assert ("assigned", ACTOR) in _changes(site, number)
    assert manager.context.request.get(f"{site.base_url}/cases/{number}").status == 404
    # Another case's hand-over page is not the manager's to see.
    assert manager.context.request.get(
        f"{site.base_url}/cases/{site.cases['others']}/handed-over").status == 404
    page.close()


AXE = REPOSITORY / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = ("async () => { const r = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa',"
           " 'wcag21a', 'wcag21aa', 'best-practice']}); return {passes: r.passes.length,"
           " violations: r.violations.filter(v => ['serious', 'critical'].includes(v.impact))"
           ".map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}))}; }")


def test_the_new_pages_pass_axe_and_fit_375_pixels(browser: Browser, site: Site) -> None:
    cookie, _session = start_session(site.database, MANAGER, now=datetime.now(UTC),
                                     client="127.0.0.1")
    # axe is a script of the test's own, which the pages' policy would refuse.
    context = browser.new_context(viewport={"width": 375, "height": 812}, bypass_csp=True)
    context.add_cookies([{"name": COOKIE_NAME, "value": cookie, "url": site.base_url}])
    # The panel with a result (here one that failed, shown as an alert).
    paths = [f"/cases/{site.cases['act']}?result=absence:invalid",
             f"/cases/{site.cases['act']}/close?error=empty",
             f"/cases/{site.cases['close']}",
             f"/cases/{site.cases['hand-over']}/handed-over"]
    found, widths = {}, {}
    try:
        for path in paths:
            page = context.new_page()
            response = page.goto(site.base_url + path)
            assert response is not None and response.status == 200, path
            widths[path] = page.evaluate("() => document.documentElement.scrollWidth")
            page.add_script_tag(path=str(AXE))
            result = page.evaluate(AXE_RUN)
            assert result["passes"] > 10, path  # axe did look at the page
            found[path] = result["violations"]
            page.close()
    finally:
        context.close()
    assert {path: violations for path, violations in found.items() if violations} == {}
    assert {path: width for path, width in widths.items() if width > 375} == {}


def test_a_deputy_acts_only_once_the_case_is_escalated_to_them(browser: Browser,
                                                              site: Site) -> None:
    number = site.cases["others"]
    with site.database.write() as session:
        session.execute(update(Case).where(Case.number == number)
                        .values(deputy=DEPUTY, escalation_level=0))
    deputy = _log_in(browser, site, DEPUTY)
    url = f"{site.base_url}/cases/{number}/actions/witness"
    form: dict[str, str | float | bool] = {"csrf_token": deputy.csrf_token,
                                           "witness": "Pedellen"}
    try:
        assert deputy.context.request.post(url, form=form, max_redirects=0).status == 404
        assert _case(site, number).witnesses == []
        with site.database.write() as session:
            session.execute(update(Case).where(Case.number == number)
                            .values(escalation_level=1))
        answer = deputy.context.request.post(url, form=form, max_redirects=0)
        assert answer.headers["location"].endswith("?result=witness:done#actions")
        assert _case(site, number).witnesses == ["Pedellen"]
        assert _changes(site, number)[-1] == ("witness-added", f"web:{DEPUTY}")
    finally:
        deputy.context.close()
