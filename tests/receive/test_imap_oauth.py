"""The receiver signing in with XOAUTH2 to a real Dovecot whose oauth2 passdb asks a local
authorization server about each token: a token the server refuses is invalidated, a new one
is fetched, and mail keeps coming in."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import trustme

from intake.receive.imap.receiver import ImapReceiver
from intake.service.daemon import Services
from intake.service.settings import ImapMailbox
from tests.dovecot import Dovecot
from tests.receive.test_imap_support import (
    append,
    drop_sessions,
    make_mail,
    running,
    services_for,
    stored_row,
)
from tests.support import wait_until

CLIENT_ID = "chikanemail-imap-test"


@dataclass
class TokenServer:
    """A token endpoint (refresh grant) at /token and token introspection at /introspect."""

    url: str = ""
    issued: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    asked_about: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if path == "/introspect":
                token = form.get("token", "")
                self.asked_about.append(token)
                if token in self.issued and token not in self.refused:
                    return 200, {"active": True, "username": "intake"}
                return 200, {"active": False, "username": "intake"}
            if (form.get("grant_type"), form.get("refresh_token")) != ("refresh_token",
                                                                        "refresh-1"):
                return 400, {"error": "invalid_grant"}
            token = f"imap-access-token-{len(self.issued) + 1}"
            self.issued.append(token)
            return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    state = TokenServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            status, body = state.answer(self.path, dict(parse_qsl(
                self.rfile.read(length).decode("ascii"))))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def oauth_dovecot(certificate_authority_for_imap: trustme.CA,
                  token_server: TokenServer) -> Iterator[Dovecot]:
    base = Path(tempfile.mkdtemp(prefix="chik-dovecot-"))
    os.chmod(base, 0o755)  # noqa: S103  # the dovecot and mail users must reach it
    server = Dovecot(base, {"intake": "secret"}, certificate_authority_for_imap,
                     oauth_introspection_url=token_server.url + "/introspect")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[Services]:
    _config, built = services_for(tmp_path, database_url)
    yield built
    built.close()


def test_refused_token_is_invalidated_and_a_new_one_signs_in(
        tmp_path: Path, token_server: TokenServer, oauth_dovecot: Dovecot,
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chikanemail")
    (tmp_path / "client-secret").write_text("client-secret\n", encoding="utf-8")
    (tmp_path / "refresh-token").write_text("refresh-1\n", encoding="utf-8")
    mailbox = ImapMailbox(
        name="m365", host="127.0.0.1", username="intake", port=oauth_dovecot.port,
        auth="xoauth2", oauth_token_endpoint=token_server.url + "/token",
        oauth_client_id=CLIENT_ID, oauth_client_secret_file=str(tmp_path / "client-secret"),
        oauth_refresh_token_file=str(tmp_path / "refresh-token"),
        ca_file=str(oauth_dovecot.ca_file), timeout_seconds=10.0)
    receiver = ImapReceiver(mailbox, services.intake, 1024 * 1024, initial_backoff=0.05,
                            max_backoff=0.5, idle_check_seconds=0.2)
    with running(receiver):
        first = make_mail("over xoauth2")
        append(oauth_dovecot, first)
        wait_until(lambda: stored_row(services, first) is not None, message="first stored")
        wait_until(lambda: receiver.state == "idle", message="in IDLE")
        assert token_server.issued == ["imap-access-token-1"]

        # The provider revokes the token and the connection drops: signing in again with the
        # cached token is refused, so it is thrown away and a new one fetched.
        token_server.refused.add("imap-access-token-1")
        drop_sessions(oauth_dovecot)
        second = make_mail("after the new token")
        append(oauth_dovecot, second)  # as a mail program would, with the password
        wait_until(lambda: stored_row(services, second) is not None, message="second stored")
    assert token_server.issued == ["imap-access-token-1", "imap-access-token-2"]
    assert token_server.asked_about.count("imap-access-token-1") >= 2  # refused once
    messages = [record.getMessage() for record in caplog.records]
    assert sum("sign-in failed" in message for message in messages) == 1
    assert any("signed in again" in message for message in messages)
    assert not any("imap-access-token" in message or "refresh-1" in message
                   for message in messages)

