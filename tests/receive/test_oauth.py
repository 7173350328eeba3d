"""OAuth2 tokens for XOAUTH2 against a real local authorization server, and Dovecot's oauth2
passdb asking that server whether a token is good."""

from __future__ import annotations

import imaplib
import json
import logging
import os
import shutil
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import trustme
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from intake.receive.imap.oauth import OAuthError, OAuthTokenSource, xoauth2_string
from intake.service.settings import ImapMailbox
from tests.dovecot import Dovecot
from tests.support import free_port

CLIENT_ID = "chikanemail-test-client"
# Test data, not credentials; "never-log-me" marks what must not reach a log or a message.
CLIENT_SECRET = "client-secret-Q~never-log-me"  # noqa: S105
FIRST_REFRESH_TOKEN = "refresh-token-1-never-log-me"  # noqa: S105
SECOND_REFRESH = "refresh-token-2-never-log-me"
THIRD_REFRESH = "refresh-token-3-never-log-me"
MICROSOFT_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
APP_ONLY_SCOPE = "https://outlook.office365.com/.default"
LIFETIME = 3600


@dataclass
class Answer:
    """One canned answer of the token endpoint."""

    status: int
    body: dict[str, Any]
    before: Callable[[], object] | None = None  # runs in the server just before it answers


@dataclass
class AuthorizationServer:
    """A local OAuth2 authorization server: a token endpoint (RFC 6749, form POST in, JSON out)
    at /token, a token endpoint that never answers in time at /slow, and token introspection
    (RFC 7662) at /introspect for Dovecot."""

    url: str = ""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    introspections: list[dict[str, str]] = field(default_factory=list)
    canned: list[Answer] = field(default_factory=list)  # answered first, in order
    rotate: bool = False  # issue a new refresh token with every refresh
    live: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    _count: int = 0

    def answer_token(self, form: dict[str, str]) -> Answer:
        self.token_requests.append(form)
        if self.canned:
            return self.canned.pop(0)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return Answer(401, {"error": "invalid_client"})
        self._count += 1
        token = f"access-token-{self._count}-never-log-me"
        self.live.add(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                                "expires_in": LIFETIME, "scope": form.get("scope", "")}
        if form.get("grant_type") == "refresh_token" and self.rotate:
            body["refresh_token"] = f"refresh-token-{self._count + 1}-never-log-me"
        return Answer(200, body)

    def answer_introspection(self, form: dict[str, str]) -> Answer:
        self.introspections.append(form)
        token = form.get("token", "")
        if token in self.live:
            return Answer(200, {"active": True, "username": "intake", "scope": "imap"})
        if token in self.revoked:
            # RFC 7662 would say only {"active": false}; the username makes Dovecot's
            # active_attribute/active_value check the one that refuses.
            return Answer(200, {"active": False, "username": "intake"})
        return Answer(401, {"active": False})


def _handler(server: AuthorizationServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(parse_qsl(self.rfile.read(length).decode("ascii")))
            server.user_agents.append(self.headers.get("User-Agent", ""))
            if self.path == "/slow":
                server.release.wait(30)  # set when the test ends; the client gave up long ago
                return
            if self.path == "/introspect":
                answer = server.answer_introspection(form)
            else:
                answer = server.answer_token(form)
            if answer.before is not None:
                answer.before()
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest's output clean

    return Handler


@pytest.fixture
def authorization_server() -> Iterator[AuthorizationServer]:
    """The authorization server, listening on a free port of 127.0.0.1."""
    server = AuthorizationServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="oauth-server",
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_mailbox(folder: Path, endpoint: str, *, refresh_token: str | None = FIRST_REFRESH_TOKEN,
                 scope: str = MICROSOFT_SCOPE, timeout: float = 10.0) -> ImapMailbox:
    secret_file = folder / "client-secret"
    secret_file.write_text(f"  {CLIENT_SECRET}\n", encoding="utf-8")  # stripped when read
    token_file = ""
    if refresh_token is not None:
        (folder / "refresh-token").write_text(refresh_token + "\n", encoding="utf-8")
        token_file = str(folder / "refresh-token")
    return ImapMailbox(
        name="kommune", host="127.0.0.1", username="intake", auth="xoauth2",
        oauth_token_endpoint=endpoint, oauth_client_id=CLIENT_ID,
        oauth_client_secret_file=str(secret_file), oauth_scope=scope,
        oauth_refresh_token_file=token_file, timeout_seconds=timeout,
    )


def test_refresh_grant_caches_until_five_minutes_before_expiry(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    clock = Clock()
    source = OAuthTokenSource(make_mailbox(tmp_path, authorization_server.url + "/token"),
                              clock=clock)
    assert source.expires_at is None

    first = source.access_token()
    (sent,) = authorization_server.token_requests
    assert sent == {"grant_type": "refresh_token", "refresh_token": FIRST_REFRESH_TOKEN,
                    "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                    "scope": MICROSOFT_SCOPE}
    assert first in authorization_server.live
    assert source.expires_at == clock.now + LIFETIME

    clock.now += LIFETIME - 300 - 1  # still more than five minutes left
    assert source.access_token() == first
    assert len(authorization_server.token_requests) == 1

    clock.now += 1  # five minutes left: time for a new one
    second = source.access_token()
    assert second != first
    assert len(authorization_server.token_requests) == 2
    assert authorization_server.token_requests[1]["refresh_token"] == FIRST_REFRESH_TOKEN
    assert source.expires_at == clock.now + LIFETIME

    source.invalidate()
    assert source.expires_at is None
    assert source.access_token() not in (first, second)
    assert len(authorization_server.token_requests) == 3


def test_threads_share_one_token(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    source = OAuthTokenSource(make_mailbox(tmp_path, authorization_server.url + "/token"))
    start = threading.Barrier(8)
    tokens: list[str] = []

    def receiver() -> None:
        start.wait(10)
        tokens.append(source.access_token())

    threads = [threading.Thread(target=receiver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert len(authorization_server.token_requests) == 1


def test_given_session_carries_the_requests(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    with requests.Session() as session:
        session.headers["User-Agent"] = "chikanemail-intake/test"
        source = OAuthTokenSource(make_mailbox(tmp_path, authorization_server.url + "/token"),
                                  session=session)
        source.access_token()
    assert authorization_server.user_agents == ["chikanemail-intake/test"]


def test_rotated_refresh_token_is_saved_atomically_and_used_next(
        tmp_path: Path, authorization_server: AuthorizationServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authorization_server.rotate = True
    clock = Clock()
    mailbox = make_mailbox(tmp_path, authorization_server.url + "/token")
    token_file = Path(mailbox.oauth_refresh_token_file)
    token_file.chmod(0o644)
    source = OAuthTokenSource(mailbox, clock=clock)

    first = source.access_token()
    assert token_file.read_text(encoding="utf-8") == SECOND_REFRESH + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["client-secret",
                                                                "refresh-token"]

    clock.now += LIFETIME
    second = source.access_token()
    assert authorization_server.token_requests[1]["refresh_token"] == SECOND_REFRESH
    assert token_file.read_text(encoding="utf-8") == THIRD_REFRESH + "\n"

    secrets = [CLIENT_SECRET, FIRST_REFRESH_TOKEN, SECOND_REFRESH, THIRD_REFRESH, first, second]
    assert not [secret for secret in secrets if secret in caplog.text]
    assert "saved the rotated refresh token" in caplog.text


def test_rotated_refresh_token_kept_in_memory_when_it_cannot_be_saved(
        tmp_path: Path, authorization_server: AuthorizationServer,
        caplog: pytest.LogCaptureFixture) -> None:
    secrets_folder = tmp_path / "secrets"
    secrets_folder.mkdir()
    authorization_server.rotate = True
    clock = Clock()
    mailbox = make_mailbox(secrets_folder, authorization_server.url + "/token")
    source = OAuthTokenSource(mailbox, clock=clock)
    # The folder disappears while the endpoint answers: the new refresh token cannot be saved.
    unsaved = "refresh-token-x-never-log-me"
    authorization_server.canned.append(Answer(200, {
        "access_token": "access-token-x", "token_type": "Bearer", "expires_in": LIFETIME,
        "refresh_token": unsaved},
        before=lambda: shutil.move(secrets_folder, tmp_path / "elsewhere")))

    assert source.access_token() == "access-token-x"
    assert "could not save the rotated refresh token" in caplog.text
    assert unsaved not in caplog.text

    # Back again: the next refresh sends the unsaved token and saves it, rotated or not.
    shutil.move(tmp_path / "elsewhere", secrets_folder)
    authorization_server.rotate = False
    clock.now += LIFETIME
    source.access_token()
    assert authorization_server.token_requests[1]["refresh_token"] == unsaved
    assert Path(mailbox.oauth_refresh_token_file).read_text(encoding="utf-8") == unsaved + "\n"


def test_invalid_grant_says_sign_in_again_and_writes_nothing(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    authorization_server.canned.append(Answer(400, {
        "error": "invalid_grant",
        "error_description": "AADSTS70008: The provided refresh token has expired due to "
                             "inactivity.\r\nTrace ID: 0c2f"}))
    mailbox = make_mailbox(tmp_path, authorization_server.url + "/token")
    before = Path(mailbox.oauth_refresh_token_file).stat()

    with pytest.raises(OAuthError) as raised:
        OAuthTokenSource(mailbox).access_token()

    message = str(raised.value)
    assert "refresh token rejected" in message and "sign in again / re-consent" in message
    assert "AADSTS70008" in message and mailbox.oauth_refresh_token_file in message
    assert CLIENT_SECRET not in message and FIRST_REFRESH_TOKEN not in message
    assert not raised.value.transient
    after = Path(mailbox.oauth_refresh_token_file).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["client-secret",
                                                                "refresh-token"]


def test_wrong_client_secret_is_named_without_the_secret(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    mailbox = make_mailbox(tmp_path, authorization_server.url + "/token")
    Path(mailbox.oauth_client_secret_file).write_text("wrong-secret\n", encoding="utf-8")

    with pytest.raises(OAuthError, match="client chikanemail-test-client rejected") as raised:
        OAuthTokenSource(mailbox).access_token()
    assert "wrong-secret" not in str(raised.value)


def test_server_error_is_transient(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    authorization_server.canned.append(Answer(503, {"error": "temporarily_unavailable"}))
    source = OAuthTokenSource(make_mailbox(tmp_path, authorization_server.url + "/token"))

    with pytest.raises(OAuthError, match="answered HTTP 503") as raised:
        source.access_token()
    assert raised.value.transient
    assert source.access_token() in authorization_server.live  # the next try works


def test_endpoint_down_is_an_oauth_error(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/token"
    source = OAuthTokenSource(make_mailbox(tmp_path, endpoint))

    with pytest.raises(OAuthError, match="unreachable") as raised:
        source.access_token()
    assert raised.value.transient
    assert source.expires_at is None


def test_slow_endpoint_times_out(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    source = OAuthTokenSource(make_mailbox(tmp_path, authorization_server.url + "/slow",
                                           timeout=0.5))
    started = time.monotonic()

    with pytest.raises(OAuthError, match=r"did not answer within 0\.5 s") as raised:
        source.access_token()
    assert raised.value.transient
    assert time.monotonic() - started < 10


def test_client_credentials_grant_without_refresh_token_file(
        tmp_path: Path, authorization_server: AuthorizationServer) -> None:
    mailbox = make_mailbox(tmp_path, authorization_server.url + "/token", refresh_token=None,
                           scope=APP_ONLY_SCOPE)
    source = OAuthTokenSource(mailbox)

    token = source.access_token()
    assert source.grant_type == "client_credentials"
    assert authorization_server.token_requests == [{
        "grant_type": "client_credentials", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "scope": APP_ONLY_SCOPE}]
    assert token in authorization_server.live
    assert sorted(path.name for path in tmp_path.iterdir()) == ["client-secret"]


@pytest.mark.parametrize(("changes", "problem"), [
    ({"auth": "password"}, 'auth is not "xoauth2"'),
    ({"oauth_token_endpoint": "http://login.example/token"}, "must be an https:// URL"),
    ({"oauth_client_id": ""}, "oauth_client_id is empty"),
    ({"oauth_refresh_token_file": "", "oauth_scope": ""}, "oauth_scope is empty"),
])
def test_unusable_settings_fail_at_once(tmp_path: Path, changes: dict[str, Any],
                                        problem: str) -> None:
    mailbox = replace(make_mailbox(tmp_path, "https://login.example/token"), **changes)
    with pytest.raises(OAuthError, match=problem):
        OAuthTokenSource(mailbox)


def test_xoauth2_string() -> None:
    assert xoauth2_string("chikanemail@kommune.dk", "tok") == (
        "user=chikanemail@kommune.dk\x01auth=Bearer tok\x01\x01")


@pytest.fixture
def oauth_dovecot(certificate_authority_for_imap: trustme.CA,
                  authorization_server: AuthorizationServer) -> Iterator[Dovecot]:
    """A running Dovecot whose oauth2 passdb asks the authorization server about tokens."""
    # Dovecot's auth and mail processes run as other users: see the `dovecot` fixture.
    base = Path(tempfile.mkdtemp(prefix="chik-dovecot-"))
    os.chmod(base, 0o755)  # noqa: S103  # the dovecot and mail users must reach it
    server = Dovecot(base, {"intake": "secret"}, certificate_authority_for_imap,
                     oauth_introspection_url=authorization_server.url + "/introspect")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_xoauth2_login_to_dovecot_with_a_fetched_token(
        tmp_path: Path, authorization_server: AuthorizationServer,
        oauth_dovecot: Dovecot) -> None:
    source = OAuthTokenSource(make_mailbox(tmp_path, authorization_server.url + "/token"))
    context = ssl.create_default_context(cafile=str(oauth_dovecot.ca_file))

    def connect() -> IMAPClient:
        return IMAPClient("127.0.0.1", port=oauth_dovecot.port, ssl=True,
                          ssl_context=context, timeout=10)

    token = source.access_token()
    with connect() as client:
        client.oauth2_login("intake", token)
        assert client.select_folder("INBOX")[b"UIDVALIDITY"] > 0
    assert authorization_server.introspections[-1]["token"] == token

    # The SASL string as built here is the one Dovecot accepts.
    with imaplib.IMAP4_SSL("127.0.0.1", oauth_dovecot.port, ssl_context=context,
                           timeout=10) as plain:
        typ, _ = plain.authenticate("XOAUTH2",
                                    lambda _: xoauth2_string("intake", token).encode())
        assert typ == "OK"
        plain.logout()

    # A token the server has revoked fails; after invalidate() a new one is fetched and works.
    # (Failures come one at a time: Dovecot doubles its penalty for back-to-back failures.)
    authorization_server.live.discard(token)
    authorization_server.revoked.add(token)
    with connect() as client, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.oauth2_login("intake", source.access_token())
    source.invalidate()
    with connect() as client:
        client.oauth2_login("intake", source.access_token())

    # A token nobody issued fails, even one that is the user's password; that still signs in
    # with LOGIN.
    password = oauth_dovecot.users["intake"]
    with connect() as client:
        client.login("intake", password)
    with connect() as client, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.oauth2_login("intake", password)
    assert authorization_server.introspections[-1]["token"] == password

    assert "method=XOAUTH2" in oauth_dovecot.log_text
