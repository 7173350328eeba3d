"""Helpers for tests of the web view: a daemon with its web listener, login links read from
the outgoing Maildir, form tokens read from pages."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from intake.service.config import AppConfig
from intake.web.settings import WebSettings
from notifier.clock import ManualClock
from notifier.transport import OUTGOING_MAILDIR
from tests.support import DaemonThread, make_config, wait_until

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LINK = re.compile(r"https?://\S+/login/[A-Za-z0-9_-]+")


@contextmanager
def web_daemon(data_dir: Path, database_url: str, *, web: dict[str, Any] | None = None,
               **overrides: Any) -> Iterator[tuple[DaemonThread, ManualClock, str]]:
    """A daemon whose web view listens on a free port, on a clock the test moves: the
    daemon, the clock and the web view's base URL."""
    config = make_config(data_dir, database_url, extract={"ocr": False}, **overrides)
    config = replace(config, web=WebSettings(listen="127.0.0.1:0", **(web or {})))
    clock = ManualClock(datetime.now(UTC))
    with DaemonThread(config, clock=clock) as daemon:
        assert daemon.ready_info is not None and daemon.ready_info.web_address is not None
        host, port = daemon.ready_info.web_address
        yield daemon, clock, f"http://{host}:{port}"


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def outgoing_mails(config: AppConfig) -> dict[str, email.message.EmailMessage]:
    """Every mail in the outgoing Maildir by file name."""
    new = config.storage.data_path / OUTGOING_MAILDIR / "new"
    if not new.is_dir():
        return {}
    return {path.name: email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in new.iterdir()}  # type: ignore[misc]


def login_links_in(mail: email.message.EmailMessage) -> list[str]:
    """The login links in a mail's plain-text body."""
    body = mail.get_body(("plain",))
    assert body is not None
    return _LINK.findall(body.get_content())


def wait_for_login_link(config: AppConfig, address: str, seen: set[str]) -> str:
    """The login link of the first mail to `address` not in `seen` (which then lists it);
    waits for the outbox sender to write it."""

    def find() -> str | None:
        for name, mail in sorted(outgoing_mails(config).items()):
            if name in seen or str(mail["To"]).strip("<>") != address:
                continue
            links = login_links_in(mail)
            if links:
                seen.add(name)
                return links[0]
        return None

    return wait_until(find, timeout=20, message=f"a login link mailed to {address}")


def ask_for_link(http: requests.Session, base_url: str, address: str,
                 client: str | None = None, next_path: str = "") -> requests.Response:
    """Fill in the login form (as `client`, through the trusted proxy, when given)."""
    headers = {"X-Forwarded-For": client} if client else {}
    page = http.get(f"{base_url}/login", headers=headers)
    return http.post(f"{base_url}/login", headers=headers, allow_redirects=False,
                     data={"address": address, "next": next_path,
                           "csrf_token": csrf_token(page.text)})


def press_login_button(http: requests.Session, link: str) -> requests.Response:
    """Open a login link and press its one button."""
    page = http.get(link)
    assert page.status_code == 200, page.text
    return http.post(link, data={"csrf_token": csrf_token(page.text)}, allow_redirects=False)


def log_in(http: requests.Session, daemon: DaemonThread, base_url: str, address: str,
           seen: set[str], client: str | None = None) -> requests.Response:
    """Log `http` in as `address` the way a person does: form, mail, link, button."""
    asked = ask_for_link(http, base_url, address, client)
    assert asked.status_code == 200, asked.text
    link = wait_for_login_link(daemon.config, address, seen)
    response = press_login_button(http, link)
    assert response.status_code == 303, response.text
    return response
