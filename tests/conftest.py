"""Fixtures: every storage and receiver test runs on SQLite and on PostgreSQL.

Tests that start a server, a daemon or the service as a process are marked `integration`
here, by the fixtures they use or the module they are in, so
`pytest -m "not integration and not faults"` is a fast loop with no server started.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller

from intake.service.config import AppConfig
from notifier.clock import Clock
from storage.database import Database
from storage.migrate import upgrade_database
from tests import dns_server
from tests.dovecot import Dovecot
from tests.mail_flow import CapturingRelay
from tests.support import DaemonThread, free_port, make_config, postgres_schema

# Fixtures that start a server or a daemon: a test using one is an integration test.
SERVER_FIXTURES = frozenset({
    "daemon", "dovecot", "relay", "start", "dkim_dns", "make_daemon", "browser", "tsa",
    "token_server", "authorization_server", "oauth_dovecot", "run_postfix", "notify_socket",
    "world", "signed_world", "wheel",
})
# Modules whose tests start servers, daemons or the service as a process in their own bodies.
INTEGRATION_MODULES = frozenset({
    "commands/test_cases_list.py", "commands/test_cli_registration.py",
    "commands/test_demo.py", "commands/test_export.py",
    "commands/test_imap_cli.py", "commands/test_reply_actions.py",
    "pipeline/test_cases_flow.py", "pipeline/test_extract_pipeline.py",
    "receive/test_dovecot_fixture.py", "receive/test_imap_batch.py",
    "receive/test_imap_daemon.py", "receive/test_imap_oauth.py",
    "receive/test_imap_receiver.py", "receive/test_oauth.py", "receive/test_postfix.py",
    "receive/test_smtp.py", "service/test_crash_safety.py", "service/test_health.py",
    "service/test_several_daemons.py", "service/test_smoke_daemon.py",
    "service/test_systemd.py", "storage/test_backup.py", "storage/test_permissions.py",
    "notifier/test_sender.py",
    "notifier/test_timestamps.py",
    "web/test_login.py", "web/test_web_health.py", "web/test_cli_link.py",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that starts a server, a daemon or the service as a process `integration`."""
    tests_root = Path(__file__).parent
    for item in items:
        module = item.path.relative_to(tests_root).as_posix()
        if module in INTEGRATION_MODULES or SERVER_FIXTURES & set(
                getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """`configure_logging` (called by CLI commands) replaces the root handlers; put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty database of its own, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database on each backend."""
    db = Database(database_url)
    upgrade_database(db)
    yield db
    db.dispose()


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> AppConfig:
    """A daemon configuration with its own data dir and database."""
    return make_config(tmp_path / "data", database_url)


@pytest.fixture
def daemon(config: AppConfig) -> Iterator[DaemonThread]:
    """A running daemon (SMTP on a free port, worker on) for the test."""
    with DaemonThread(config) as running:
        yield running


@pytest.fixture(scope="session")
def certificate_authority_for_imap() -> trustme.CA:
    """One test CA for the Dovecot instances."""
    return trustme.CA()


@pytest.fixture
def dovecot(certificate_authority_for_imap: trustme.CA) -> Iterator[Dovecot]:
    """A running Dovecot with the user `intake` (password `secret`)."""
    # Dovecot's auth and mail processes run as other users: pytest's own temporary folders
    # (0700, root) are closed to them, so the server gets a folder of its own.
    base = Path(tempfile.mkdtemp(prefix="chik-dovecot-"))
    os.chmod(base, 0o755)  # noqa: S103  # the dovecot and mail users must reach it
    server = Dovecot(base, {"intake": "secret"}, certificate_authority_for_imap)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def relay() -> Iterator[tuple[CapturingRelay, int]]:
    """A capturing SMTP relay on a free port: (what it received, its port)."""
    handler = CapturingRelay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def start(tmp_path: Path, database_url: str,
          relay: tuple[CapturingRelay, int]) -> Iterator[Callable[..., DaemonThread]]:
    """Start daemons that send through the relay: start(**notify, plan=…, routing=…,
    clock=…); all are stopped after the test."""
    started: list[DaemonThread] = []

    def run(*, plan: dict[str, Any] | None = None, routing: dict[str, Any] | None = None,
            clock: Clock | None = None, **notify: Any) -> DaemonThread:
        config = make_config(tmp_path / "data", database_url, extract={"ocr": False},
                             notify={"smtp_host": "127.0.0.1", "smtp_port": relay[1],
                                     **notify},
                             plan=plan or {}, routing=routing or {})
        daemon = DaemonThread(config, clock=clock).start()
        started.append(daemon)
        return daemon

    yield run
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def dkim_dns() -> Iterator[dns_server.DkimDns]:
    """A `tests.dns_server.DkimDns`: dnsmasq on 127.0.0.1 serving DKIM keys, session-wide.

    `dkim_dns.settings()` is a `TrustSettings` with DKIM checking on against it (keyword
    arguments override fields); `dkim_dns.dns_servers` is just its `dns_servers`;
    `dkim_dns.sign(raw, domain="example.dk")` returns `raw` DKIM-signed for d=`domain`
    (example.dk, kommune.dk or evil.dk; From, To, Subject, Date, Message-ID signed,
    relaxed/relaxed). A From in kommune.dk or any subdomain of it aligns with d=kommune.dk.
    `tests/dns_server.py` lists the other names it serves (a timeout, a refusal).
    """
    server = dns_server.start_dkim_dns()
    try:
        yield server
    finally:
        dns_server.stop_dkim_dns(server)
