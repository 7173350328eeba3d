"""The registration form and the EASY summary on the web (issue 22, points 1 and 4) against
a real daemon: a Danish Outlook inline forward with a screenshot is mailed in over SMTP, the
manager is logged in with a server-side session and uses the pages over plain HTTP; chromium
only checks that the two pages fit 375 px and that axe-core finds nothing serious.
"""

from __future__ import annotations

import io
import re
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
import requests
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from intake.web.sessions import COOKIE_NAME, start_session
from notifier.clock import ManualClock
from notifier.plan.checklist import end_of_day
from storage.audit import check_chain
from storage.database import Database
from storage.i18n.catalogs import translations
from storage.models import AuditEvent, Case, CaseNote, CaseRegistration, CaseStep, Message
from storage.registrations import RegistrationFields, fields_sha256
from storage.time_text import long_date, long_datetime
from tests.browser import chromium
from tests.support import INTAKE_ADDRESS, MANAGER, wait_until
from tests.web.node_packages import axe_results, serious
from tests.web.web_support import web_daemon

REPORTER = "ansat@kommune.example"
REPORTER_NAME = "Mette Hansen"
ACTOR = f"web:{MANAGER}"
ZONE = ZoneInfo("Europe/Copenhagen")
NARROW = {"width": 375, "height": 812}
_ = translations("da").gettext

OUTLOOK_DA = """Hej. Den her kom i går, og jeg er bange. Jeg har også taget et skærmbillede.

-----Oprindelig meddelelse-----
Fra: Søren Østergaard <soren.ostergaard@firma.dk>
Sendt: 3. marts 2025 10:15
Til: Mette Hansen <ansat@kommune.example>
Emne: Sidste advarsel

Hvis du siger noget til nogen, ved du hvad der sker.
"""


def _screenshot() -> bytes:
    image = Image.new("RGB", (360, 240), (250, 250, 240))
    ImageDraw.Draw(image).text((20, 110), "Sidste advarsel", fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _report(subject: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"{REPORTER_NAME} <{REPORTER}>"
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = subject
    mail.set_content(OUTLOOK_DA)
    mail.add_attachment(_screenshot(), maintype="image", subtype="png",
                        filename="skaermbillede.png")
    return mail


@dataclass(frozen=True)
class Site:
    """The running daemon's web view, its database, its clock, a case, and a logged-in
    HTTP session with its CSRF token."""

    base_url: str
    database: Database
    clock: ManualClock
    number: str
    http: requests.Session
    cookie: str
    csrf: str

    def url(self, path: str = "") -> str:
        """The case's page, or one under it."""
        return f"{self.base_url}/cases/{self.number}{path}"


# Two reports: one the registration test starts from scratch, one the EASY tests register
# first (the tests may run on different workers, each with its own daemon).
SUBJECTS = ("VS: Sidste advarsel", "VS: Sidste advarsel igen")


@pytest.fixture(scope="module")
def daemon_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Site]]:
    """A daemon with its web view and the two cases the forwards opened."""
    folder = tmp_path_factory.mktemp("registration")
    with web_daemon(folder / "data", f"sqlite:///{folder / 'db.sqlite3'}") as (
            daemon, clock, base_url):
        with smtplib.SMTP(*daemon.smtp_address) as client:
            for subject in SUBJECTS:
                client.send_message(_report(subject))
        database = Database(daemon.config.storage.effective_database_url)

        def processed() -> bool:
            with database.read() as session:
                return session.execute(select(func.count()).select_from(Message).where(
                    Message.state == "processed")).scalar_one() == len(SUBJECTS)

        wait_until(processed, timeout=30, message="the reports processed")
        with database.read() as session:
            numbers = list(session.execute(select(Case.number).order_by(Case.id)).scalars())
        cookie, active = start_session(database, MANAGER, now=clock.now(), client="127.0.0.1")
        http = requests.Session()
        http.cookies.set(COOKIE_NAME, cookie)
        try:
            yield [Site(base_url, database, clock, number, http, cookie, active.csrf_token)
                   for number in numbers]
        finally:
            http.close()
            database.dispose()


@pytest.fixture(scope="module")
def site(daemon_site: list[Site]) -> Site:
    """The case the registration test fills in from scratch."""
    return daemon_site[0]


REGISTERED = {"relation": "citizen", "harassment_type": "threats", "absence": "none",
              "description": "Truende mail; også en sms dagen efter."}


@pytest.fixture(scope="module")
def easy_site(daemon_site: list[Site]) -> Site:
    """The other case, registered once from its prefilled form."""
    site = daemon_site[1]
    values = _form(_get(site, "/registration").text).values
    values.pop("csrf_token", None)
    response = _post(site, "/registration", {**values, **REGISTERED})
    assert response.headers["location"].endswith("?result=done&saved=1#result")
    return site


class _Form(HTMLParser):
    """The values a page's form fields hold (input, select's selected option, textarea),
    and each field's problem text."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        name = found.get("name", "")
        if tag == "input" and name:
            self.values[name] = found.get("value", "")
        elif tag == "select":
            self._select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in found:
            self.values[self._select] = found.get("value", "")
        elif tag == "textarea":
            self._textarea = name
            self.values[name] = ""
        elif tag == "p" and "field-problem" in found.get("class", ""):
            self._problem = found.get("id", "").removeprefix("registration-").removesuffix(
                "-problem").replace("-", "_")
            self.problems[self._problem] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "p":
            self._problem = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data
        if self._problem:
            self.problems[self._problem] += data


def _form(html: str) -> _Form:
    reader = _Form()
    reader.feed(html)
    return reader


def _text(html: str) -> str:
    """The page's text with tags removed and spaces collapsed (entities left as they are,
    so compare with texts without quotes or ampersands)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _get(site: Site, path: str = "", **params: str) -> requests.Response:
    response = site.http.get(site.url(path), params=params, timeout=10)
    assert response.status_code == 200, (path, response.status_code)
    return response


def _post(site: Site, path: str, data: dict[str, str]) -> requests.Response:
    return site.http.post(site.url(path), data={"csrf_token": site.csrf, **data},
                          allow_redirects=False, timeout=10)


def _case(site: Site) -> Case:
    with site.database.read() as session:
        case = session.execute(select(Case).where(Case.number == site.number)).scalar_one()
        session.expunge(case)
    return case


def _versions(site: Site) -> list[CaseRegistration]:
    with site.database.read() as session:
        rows = list(session.execute(
            select(CaseRegistration).join(Case, Case.id == CaseRegistration.case_id)
            .where(Case.number == site.number).order_by(CaseRegistration.version)).scalars())
        session.expunge_all()
    return rows


def _events(site: Site, action: str) -> list[AuditEvent]:
    with site.database.read() as session:
        events = list(session.execute(select(AuditEvent).where(
            AuditEvent.case_number == site.number, AuditEvent.action == action)
            .order_by(AuditEvent.seq)).scalars())
        session.expunge_all()
    return events


def _mark_registration_step(site: Site) -> str:
    with site.database.read() as session:
        position = session.execute(
            select(CaseStep.position).join(Case, Case.id == CaseStep.case_id)
            .where(Case.number == site.number, CaseStep.key == "registration")
        ).scalar_one()
    response = _post(site, "/actions/step", {"step": str(position)})
    assert response.status_code == 303
    return str(response.headers["location"])


def test_registration_prefill_versions_problems_and_the_step(site: Site) -> None:
    # Before any registration: the step waits for one, worded with a link to the form.
    location = _mark_registration_step(site)
    assert location.endswith("result=step:needs-registration#actions")
    page = site.http.get(site.base_url + location, timeout=10).text
    assert _("This step is done once the incident is registered: fill in the registration "
             "first.") in page
    assert f'href="/cases/{site.number}/registration"' in page

    # The form, prefilled from the Danish Outlook forward and the case.
    html = _get(site, "/registration").text
    values = _form(html).values
    assert REPORTER in values["affected_employee"]
    assert REPORTER_NAME in values["affected_employee"]
    assert "soren.ostergaard@firma.dk" in values["harasser"]
    assert values["period_start"] == "2025-03-03"
    assert values["medium"] == "mail"
    assert values["handler"] == MANAGER
    assert _("Not registered yet: the form is filled in from the case. Check every field.") in html
    # Words, never codes, for the choices; labels in Danish.
    assert ">" + _("a citizen") + "<" in html and _("Type of harassment") in html
    assert 'type="date"' in html and "<textarea" in html

    # The EASY summary asks for the registration first and shows what the case knows.
    easy = _get(site, "/easy").text
    assert _("The incident is not registered yet: <a href=\"%(url)s\">fill in the "
             "registration</a> first. Below is what the case knows so far.") % {
        "url": f"/cases/{site.number}/registration"} in easy
    assert long_date(date(2025, 3, 3), "da") in _text(easy)

    # A bad post: nothing saved, each problem in Danish next to its field, the values kept.
    bad = {**values, "description": "", "period_end": "2025-03-01", "relation": "stranger",
           "harassment_type": "threats",
           "harasser": "Søren Ø. <soren.ostergaard@firma.dk>"}
    bad.pop("csrf_token", None)
    response = _post(site, "/registration", bad)
    assert response.status_code == 400
    form = _form(response.text)
    assert form.problems == {
        "description": _("Fill in this field."),
        "period_end": _("The last day is before the first day."),
        "relation": _("Choose one of the listed options."),
    }
    assert form.values["harasser"] == "Søren Ø. <soren.ostergaard@firma.dk>"
    assert form.values["period_end"] == "2025-03-01"
    assert _versions(site) == []

    # Two saves with a change: versions 1 and 2, both kept, each chained in the audit log.
    good = {**values, "relation": "citizen", "harassment_type": "threats",
            "description": "Truende mail efter et møde om en afgørelse.", "absence": "none"}
    good.pop("csrf_token", None)
    response = _post(site, "/registration", good)
    assert response.status_code == 303
    assert response.headers["location"].endswith("/registration?result=done&saved=1#result")
    again = _post(site, "/registration", good)
    assert again.headers["location"].endswith("?result=already&saved=1#result")
    changed = {**good, "description": "Truende mail; også en sms dagen efter."}
    response = _post(site, "/registration", changed)
    assert response.headers["location"].endswith("?result=done&saved=2#result")
    page = site.http.get(site.base_url + response.headers["location"], timeout=10).text
    assert _("The registration is saved as version %(version)s.") % {"version": 2} \
        in _text(page)

    rows = _versions(site)
    assert [row.version for row in rows] == [1, 2]
    assert [row.author for row in rows] == [ACTOR, ACTOR]
    assert rows[0].fields["description"] == good["description"]
    assert rows[1].fields["description"] == changed["description"]
    saved = _events(site, "registration-saved")
    assert [event.details["version"] for event in saved] == [1, 2]
    assert [event.details["fields_sha256"] for event in saved] == [
        fields_sha256(RegistrationFields.from_json(row.fields)) for row in rows]
    assert [event.details["fields_sha256"] for event in saved] == [
        row.fields_sha256 for row in rows]
    assert check_chain(site.database).ok
    case = _case(site)
    assert (case.registration_version, case.relation, case.relation_detail) == (
        2, "external", "citizen")

    # The form now starts from version 2; both versions are listed, version 1 read-only.
    html = _get(site, "/registration").text
    assert _form(html).values["description"] == changed["description"]
    assert f"/cases/{site.number}/registration?version=1" in html
    assert f"/cases/{site.number}/registration?version=2" in html
    old = _get(site, "/registration", version="1").text
    assert good["description"] in old and changed["description"] not in old
    assert "<textarea" not in old and _("a citizen") in old
    assert site.http.get(site.url("/registration"), params={"version": "9"},
                         timeout=10).status_code == 404

    # The case page's section, and the step now goes through.
    case_page = _get(site).text
    assert _("Registered: version %(version)s, saved %(when)s by %(who)s.") % {
        "version": 2, "when": long_datetime(rows[1].created_at, "da", ZONE), "who": ACTOR} \
        in _text(case_page)
    assert _("threats") in case_page and _("no absence") in case_page
    assert _mark_registration_step(site).endswith("result=step:done#actions")

    # A closed case shows its registration read-only and saves nothing more.
    closed = _post(site, "/close", {"reason": "Afsluttet efter opfølgningsmødet."})
    assert closed.headers["location"].endswith("result=close:done#actions")
    html = _get(site, "/registration").text
    assert _("The case is closed: the registration can no longer be changed.") in html
    assert "<textarea" not in html and changed["description"] in html
    response = _post(site, "/registration", {**changed, "description": "Ny tekst."})
    assert response.headers["location"].endswith("?result=case-closed#result")
    assert len(_versions(site)) == 2


def _another_manager_gets_404(easy_site: Site) -> None:
    """Someone who may not see the case: 404 for both pages and the post, nothing saved."""
    cookie, active = start_session(easy_site.database, "anden.leder@kommune.example",
                                   now=easy_site.clock.now(), client="127.0.0.1")
    with requests.Session() as other:
        other.cookies.set(COOKIE_NAME, cookie)
        for path in ("/registration", "/easy"):
            assert other.get(easy_site.url(path), timeout=10).status_code == 404
        response = other.post(easy_site.url("/registration"),
                              data={"csrf_token": active.csrf_token, "description": "x"},
                              allow_redirects=False, timeout=10)
        assert response.status_code == 404
    # The manager's own post without the form's token is refused too.
    for path in ("/registration", "/easy"):
        refused = easy_site.http.post(easy_site.url(path), data={"description": "x",
                                                                 "easy_number": "1"},
                                      allow_redirects=False, timeout=10)
        assert refused.status_code == 403
    assert len(_versions(easy_site)) == 1



def _pages_fit_375_pixels_and_axe_finds_nothing_serious(easy_site: Site) -> None:
    """The form and the EASY page in chromium: no sideways scrolling at 375 px, and no
    serious or critical axe-core violation."""
    widths, found = {}, {}
    with chromium() as browser:
        # axe is a script of the test's own, which the pages' policy would refuse.
        context = browser.new_context(viewport=NARROW, bypass_csp=True)
        context.add_cookies([{"name": COOKIE_NAME, "value": easy_site.cookie,
                              "url": easy_site.base_url}])
        try:
            page = context.new_page()
            for path in ("/registration", "/easy"):
                page.goto(easy_site.url(path))
                widths[path] = page.evaluate("() => document.documentElement.scrollWidth")
                result = axe_results(page)
                assert result["passes"] > 5, path  # axe did look at the page
                found[path] = serious(result)
        finally:
            context.close()
    assert len(widths) == 2
    assert {path: width for path, width in widths.items() if width > NARROW["width"]} == {}
    assert {path: issues for path, issues in found.items() if issues} == {}


def test_easy_deadline_summary_report_access_and_browser(easy_site: Site) -> None:
    # No first day of absence yet: the case page has no EASY deadline.
    assert f"/cases/{easy_site.number}/easy" not in _get(easy_site).text
    today = easy_site.clock.now().astimezone(ZONE).date()
    absence_day = today - timedelta(days=3)
    response = _post(easy_site, "/actions/absence", {"day": absence_day.isoformat()})
    assert response.headers["location"].endswith("result=absence:done#actions")

    deadline = end_of_day(absence_day + timedelta(days=14), ZONE)
    with easy_site.database.read() as session:
        due = session.execute(select(CaseStep.due_at).join(Case, Case.id == CaseStep.case_id)
                              .where(Case.number == easy_site.number,
                                     CaseStep.key == "registration")).scalar_one()
    assert due is not None and due.replace(tzinfo=due.tzinfo or UTC) == deadline
    case_page = _text(_get(easy_site).text)
    assert long_datetime(deadline, "da", ZONE) in case_page
    assert long_date(absence_day, "da") in case_page
    assert f"/cases/{easy_site.number}/easy" in _get(easy_site).text

    views_before = len(_events(easy_site, "viewed"))
    easy = _text(_get(easy_site, "/easy").text)
    assert len(_events(easy_site, "viewed")) == views_before + 1
    assert _events(easy_site, "viewed")[-1].details == {"what": "easy", "via": "web"}
    for expected in (_("The injured employee"), REPORTER, _("Psychological injury (psykisk skade)"),
                     _("Type of harassment"), _("threats"), _("Description"),
                     "Truende mail; også en sms dagen efter.", _("First day of absence"),
                     long_date(absence_day, "da"), long_datetime(deadline, "da", ZONE),
                     _("mail"), MANAGER):
        assert expected in easy, expected
    assert _("Violence or threats from someone outside the workplace (vold og trusler), "
             "digitally") in easy
    first_day = (f"<dt>{_('First day of absence')}</dt><dd>"
                 f"{long_date(absence_day, 'da')}</dd>")
    assert _get(easy_site, "/easy").text.count(first_day) == 2  # under when and absence
    form = _form(_get(easy_site, "/easy").text)
    assert form.values["day"] == today.isoformat()

    # An empty number records nothing; a number is recorded with its day.
    assert _post(easy_site, "/easy", {"easy_number": " ", "day": today.isoformat()}
                 ).headers["location"].endswith("?result=invalid#result")
    assert _case(easy_site).easy_case_number is None
    response = _post(easy_site, "/easy", {"easy_number": "EASY-2025-0042",
                                     "day": today.isoformat()})
    assert response.headers["location"].endswith("?result=done#result")
    case = _case(easy_site)
    assert (case.easy_case_number, case.easy_reported_on, case.easy_recorded_by) == (
        "EASY-2025-0042", today, ACTOR)
    events = _events(easy_site, "easy-reported")
    assert len(events) == 1 and events[0].actor == ACTOR
    with easy_site.database.read() as session:
        notes = list(session.execute(select(CaseNote.code).where(
            CaseNote.case_id == case.id)).scalars())
    assert check_chain(easy_site.database).ok
    assert "easy-reported" in notes
    reported = _("Reported to Arbejdstilsynet through EASY on %(day)s, EASY case number "
                 "%(number)s.")
    for html in (_get(easy_site).text, _get(easy_site, "/easy").text):
        text = _text(html)
        assert "EASY-2025-0042" in text and long_date(today, "da") in text
        assert reported % {"day": long_date(today, "da"), "number": "EASY-2025-0042"} in text

    # Nobody else reaches either page; both pages pass in chromium.
    _another_manager_gets_404(easy_site)
    _pages_fit_375_pixels_and_axe_finds_nothing_serious(easy_site)
