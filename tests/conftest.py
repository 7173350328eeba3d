"""Fixtures: every storage and receiver test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from sqlalchemy import create_engine, text

from intake.config import AppConfig
from storage.database import Database
from storage.migrate import upgrade_database
from tests.dovecot import Dovecot
from tests.support import DaemonThread, make_config

# PostgreSQL runs on this machine (trust auth); each test gets a schema of its own.
POSTGRES_URL = os.environ.get(
    "CHIKANEMAIL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty database of its own, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    schema = f"chik_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
