"""Login by mail link, sessions, CSRF and the security headers, against a real daemon whose
web view listens on a free port; links are read from the outgoing Maildir.

One daemon serves the module (SQLite); each test speaks as its own client address through
the trusted proxy (X-Forwarded-For from 127.0.0.1), so the per-client limits stay apart.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from intake.web.security import CONTENT_SECURITY_POLICY
from intake.web.sessions import COOKIE_NAME
from notifier.clock import ManualClock
from storage.database import Database
from storage.models import LoginRequest, OutboxMail, WebSession
from tests.support import MANAGER, DaemonThread, postgres_schema
from tests.web.web_support import (
    ask_for_link,
    csrf_token,
    log_in,
    press_login_button,
    wait_for_login_link,
    web_daemon,
)

ADMIN = "it@kommune.example"
STRANGER = "nabo@example.org"
_clients = (f"192.0.2.{number}" for number in itertools.count(1))


class Web:
    """The module's daemon, its clock, base URL and the mails already read."""

    def __init__(self, daemon: DaemonThread, clock: ManualClock, base_url: str) -> None:
        self.daemon = daemon
        self.clock = clock
        self.base_url = base_url
        self.seen: set[str] = set()
        self.database = Database(daemon.config.storage.effective_database_url)

    def url(self, path: str) -> str:
        return self.base_url + path

    def client(self) -> tuple[requests.Session, str]:
        """A browser of its own, coming through the proxy from an address of its own."""
        address = next(_clients)
        http = requests.Session()
        http.headers["X-Forwarded-For"] = address
        return http, address

    def log_in(self, http: requests.Session, address: str = MANAGER) -> requests.Response:
        return log_in(http, self.daemon, self.base_url, address, self.seen)

    def link_for(self, http: requests.Session, address: str = MANAGER,
                 next_path: str = "") -> str:
        asked = ask_for_link(http, self.base_url, address, next_path=next_path)
        assert asked.status_code == 200, asked.text
        return wait_for_login_link(self.daemon.config, address, self.seen)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    folder: Path = tmp_path_factory.mktemp("web-login")
    with web_daemon(folder / "data", f"sqlite:///{folder / 'web.sqlite3'}",
                    web={"trusted_proxies": ("127.0.0.1",)},
                    plan={"admins": (ADMIN,)}) as (daemon, clock, base_url):
        running = Web(daemon, clock, base_url)
        yield running
        running.database.dispose()


def test_case_pages_send_a_stranger_to_the_login_with_the_way_back(web: Web) -> None:
    http, _ = web.client()
    response = http.get(web.url("/cases/2026-0001?tab=evidence"), allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fcases%2F2026-0001%3Ftab%3Devidence"


def test_a_manager_logs_in_by_the_mailed_link_and_lands_where_they_were_going(
        web: Web) -> None:
    http, _ = web.client()
    link = web.link_for(http, MANAGER, next_path="/cases/2026-0007")
    assert link.startswith(web.base_url + "/login/")
    response = press_login_button(http, link)
    assert response.status_code == 303
    assert response.headers["location"] == "/cases/2026-0007"
    cookie = next(cookie for cookie in http.cookies if cookie.name == COOKIE_NAME)
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=lax" in header
    assert not cookie.secure, "a loopback http base URL needs no Secure cookie"
    # The front page now knows who this is.
    front = http.get(web.url("/"), allow_redirects=False)
    assert front.headers["location"] == "/cases"
    # The cookie is a random id; the server keeps only its SHA-256.
    with web.database.read() as session:
        digests = set(session.execute(select(WebSession.id_sha256)).scalars())
    assert cookie.value not in digests
    assert hashlib.sha256(cookie.value.encode()).hexdigest() in digests


def test_opening_the_link_uses_nothing_and_the_button_uses_it_once(web: Web) -> None:
    http, _ = web.client()
    link = web.link_for(http)
    for _ in range(3):  # a mail scanner, a preview, the person
        page = http.get(link)
        assert page.status_code == 200
        assert "<button" in page.text
    token_digest = hashlib.sha256(link.rsplit("/", 1)[1].encode()).hexdigest()
    with web.database.read() as session:
        row = session.execute(select(LoginRequest).where(
            LoginRequest.token_sha256 == token_digest)).scalar_one()
        assert row.used_at is None
    assert press_login_button(http, link).status_code == 303

    other, _ = web.client()
    again = other.get(link)
    assert again.status_code == 400
    assert "Dette login-link virker ikke" in again.text
    reused = other.post(link, data={"csrf_token": csrf_token(web_login_page(web, other))})
    assert reused.status_code == 400
    assert COOKIE_NAME not in other.cookies


def web_login_page(web: Web, http: requests.Session) -> str:
    return http.get(web.url("/login")).text


def test_a_forged_link_is_refused(web: Web) -> None:
    http, _ = web.client()
    for token in ("A" * 43, "not-a-token", "x" * 300):
        link = web.url(f"/login/{token}")
        assert http.get(link).status_code in (400, 404)
        refused = http.post(link, data={"csrf_token": csrf_token(web_login_page(web, http))})
        assert refused.status_code in (400, 404)
    assert COOKIE_NAME not in http.cookies


def test_an_expired_link_is_refused(web: Web) -> None:
    http, _ = web.client()
    link = web.link_for(http)
    page = http.get(link)
    web.clock.advance(timedelta(minutes=15, seconds=1))
    refused = http.post(link, data={"csrf_token": csrf_token(page.text)})
    assert refused.status_code == 400
    assert "Dette login-link virker ikke" in refused.text
    assert COOKIE_NAME not in http.cookies


def test_the_page_says_the_same_for_an_unknown_address_and_sends_it_nothing(
        web: Web) -> None:
    http, _ = web.client()
    known = ask_for_link(http, web.base_url, ADMIN)
    unknown = ask_for_link(http, web.base_url, STRANGER)
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace(ADMIN, "X") == unknown.text.replace(STRANGER, "X")
    wait_for_login_link(web.daemon.config, ADMIN, web.seen)
    with web.database.read() as session:
        kinds_to_stranger = [row.kind for row in session.execute(select(OutboxMail)).scalars()
                             if STRANGER in row.rcpt_tos]
    assert kinds_to_stranger == []


def test_links_are_rate_limited_per_address(web: Web) -> None:
    address = "stedfortraeder@kommune.example"
    limit = web.daemon.config.web.login_requests_per_address
    answers = []
    for _ in range(limit + 1):
        http, _ = web.client()  # a new client each time: only the address limit applies
        answers.append(ask_for_link(http, web.base_url, address).status_code)
    assert answers == [200] * limit + [429]


def test_links_are_rate_limited_per_client(web: Web) -> None:
    http, _ = web.client()
    limit = web.daemon.config.web.login_requests_per_client
    answers = [ask_for_link(http, web.base_url, f"person{number}@example.org").status_code
               for number in range(limit + 1)]
    assert answers == [200] * limit + [429]
    # Another client is not held back by this one.
    other, _ = web.client()
    assert ask_for_link(other, web.base_url, "person0@example.org").status_code == 200


def test_a_post_without_the_form_token_is_refused(web: Web) -> None:
    http, _ = web.client()
    web.log_in(http)
    for data in ({}, {"csrf_token": "forged-token-forged-token-forged"}):
        refused = http.post(web.url("/logout"), data=data, allow_redirects=False)
        assert refused.status_code == 403
        assert "Formularen er udløbet" in refused.text
    still_in = http.get(web.url("/"), allow_redirects=False)
    assert still_in.headers["location"] == "/cases"
    asked = http.post(web.url("/login"), data={"address": MANAGER})
    assert asked.status_code == 403


def test_logout_ends_the_session_even_for_a_kept_cookie(web: Web) -> None:
    http, _ = web.client()
    web.log_in(http)
    cookie = http.cookies[COOKIE_NAME]
    # Every page of a logged-in person has the logout form in its header (here the 404).
    missing = http.get(web.url("/no-such-page"))
    assert missing.status_code == 404
    assert 'action="/logout"' in missing.text
    out = http.post(web.url("/logout"), data={"csrf_token": csrf_token(missing.text)},
                    allow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    replayed = requests.get(web.url("/cases"), cookies={COOKIE_NAME: cookie},
                            allow_redirects=False, timeout=10)
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/login")


def test_a_session_ends_after_30_idle_minutes(web: Web) -> None:
    http, _ = web.client()
    web.log_in(http)
    web.clock.advance(timedelta(minutes=29))
    assert http.get(web.url("/"), allow_redirects=False).headers["location"] == "/cases"
    web.clock.advance(timedelta(minutes=29))  # 29 since the last request: still in
    assert http.get(web.url("/"), allow_redirects=False).headers["location"] == "/cases"
    web.clock.advance(timedelta(minutes=30, seconds=1))
    assert http.get(web.url("/"), allow_redirects=False).headers["location"] == "/login"


def test_a_session_ends_12_hours_after_login_however_busy(web: Web) -> None:
    http, _ = web.client()
    web.log_in(http)
    for _ in range(35):  # a request every 20 minutes: 11 h 40 min
        web.clock.advance(timedelta(minutes=20))
        assert http.get(web.url("/"), allow_redirects=False).headers["location"] == "/cases"
    web.clock.advance(timedelta(minutes=20, seconds=1))
    assert http.get(web.url("/"), allow_redirects=False).headers["location"] == "/login"


@pytest.mark.parametrize("next_path", ["//evil.example/", "https://evil.example/",
                                       "/\\evil.example", "javascript:alert(1)"])
def test_a_login_never_redirects_off_the_site(web: Web, next_path: str) -> None:
    http, _ = web.client()
    link = web.link_for(http, MANAGER, next_path=next_path)
    response = press_login_button(http, link)
    assert response.status_code == 303
    assert response.headers["location"] == "/cases"


@pytest.mark.parametrize("path", ["/login", "/no-such-page", "/static/app.css", "/healthz"])
def test_every_response_carries_the_security_headers(web: Web, path: str) -> None:
    http, _ = web.client()
    response = http.get(web.url(path))
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if path.startswith("/static/"):
        assert "set-cookie" not in response.headers  # a cacheable answer sets no cookie
    else:
        assert response.headers["Cache-Control"] == "no-store"


def test_the_pages_load_nothing_from_elsewhere_and_speak_danish(web: Web) -> None:
    http, _ = web.client()
    page = http.get(web.url("/login")).text
    assert '<html lang="da">' in page
    assert 'href="#main"' in page and 'id="main"' in page
    assert "http://" not in page and "https://" not in page
    assert "Log ind" in page


def test_rows_of_sessions_long_over_are_deleted_at_a_later_login(web: Web) -> None:
    http, _ = web.client()
    web.log_in(http)
    digest = hashlib.sha256(http.cookies[COOKIE_NAME].encode()).hexdigest()
    web.clock.advance(timedelta(hours=12, days=1, minutes=1))
    later, _ = web.client()
    web.log_in(later)
    with web.database.read() as session:
        kept = set(session.execute(select(WebSession.id_sha256)).scalars())
    assert digest not in kept
    assert hashlib.sha256(later.cookies[COOKIE_NAME].encode()).hexdigest() in kept


def test_on_postgresql_a_link_logs_in_once_and_the_session_holds(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("web-login-pg")
    with postgres_schema() as url, web_daemon(folder / "data", url) as (daemon, clock,
                                                                          base_url):
        seen: set[str] = set()
        http = requests.Session()
        link = wait_for_login_link_after(http, daemon, base_url, seen)
        assert press_login_button(http, link).status_code == 303
        assert http.get(base_url + "/", allow_redirects=False).headers["location"] == "/cases"
        assert requests.Session().post(link, allow_redirects=False).status_code == 403
        other = requests.Session()
        page = other.get(base_url + "/login")
        assert other.post(link, data={"csrf_token": csrf_token(page.text)}).status_code == 400
        clock.advance(timedelta(minutes=31))
        assert http.get(base_url + "/", allow_redirects=False).headers["location"] == "/login"


def wait_for_login_link_after(http: requests.Session, daemon: DaemonThread, base_url: str,
                              seen: set[str]) -> str:
    """Ask for the manager's link and read it from the Maildir."""
    assert ask_for_link(http, base_url, MANAGER).status_code == 200
    return wait_for_login_link(daemon.config, MANAGER, seen)
