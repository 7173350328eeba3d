"""Status links on SQLite and PostgreSQL: only the hash is kept, a link finds its case while
live, and it is retired by a manager or 30 days after the case closed, with one audit event;
retention deletes them with their case; revision 0013 goes up and down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import inspect, select

from storage.blobstore import BlobStore
from storage.cases import open_case
from storage.database import Database
from storage.migrate import current_revision, upgrade_database
from storage.models import AuditEvent, Case, CaseStatus, StatusLink
from storage.retention.deletion import apply_retention
from storage.settings import RetentionSettings
from storage.status_links import (
    BY_MANAGER,
    CASE_CLOSED,
    case_of_live_link,
    has_live_link,
    issue_status_link,
    new_secret,
    retire_links_of_closed_cases,
    retire_status_links,
    secret_sha256,
    without_status_secrets,
)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _case_with_link(database: Database) -> tuple[int, str]:
    secret = new_secret()
    with database.write() as session:
        case = open_case(session, reporter="ansat@kommune.example", reporter_name=None,
                         manager="leder@kommune.example", deputy=None, language="da",
                         routing_source="default", routing_reason="default manager", now=NOW)
        session.flush()
        issue_status_link(session, case, secret, now=NOW)
        return case.id, secret


def _retired_events(database: Database) -> list[tuple[str, dict[str, object]]]:
    with database.read() as session:
        return [(event.actor, event.details) for event in session.execute(
            select(AuditEvent).where(AuditEvent.action == "status-link-retired")
            .order_by(AuditEvent.seq)).scalars()]


def test_a_live_link_finds_its_case_and_only_its_hash_is_kept(database: Database) -> None:
    case_id, secret = _case_with_link(database)
    with database.read() as session:
        found = case_of_live_link(session, secret)
        assert found is not None and found.id == case_id
        assert case_of_live_link(session, new_secret()) is None
        assert case_of_live_link(session, secret[:-1]) is None  # not a secret's shape
        (row,) = session.execute(select(StatusLink)).scalars()
        assert row.secret_sha256 == secret_sha256(secret) != secret
        assert has_live_link(session, case_id)


def test_a_manager_retires_the_link_once(database: Database) -> None:
    case_id, secret = _case_with_link(database)
    for expected in (1, 0):
        with database.write() as session:
            case = session.get(Case, case_id)
            assert case is not None
            assert retire_status_links(session, case, reason=BY_MANAGER,
                                       actor="web:leder@kommune.example", now=NOW) == expected
    with database.read() as session:
        assert case_of_live_link(session, secret) is None
        assert not has_live_link(session, case_id)
    assert _retired_events(database) == [("web:leder@kommune.example", {"reason": "manager"})]


def test_the_link_goes_30_days_after_the_case_closed(database: Database) -> None:
    case_id, secret = _case_with_link(database)
    open_id, open_secret = _case_with_link(database)  # an open case keeps its link
    closed_at = NOW + timedelta(days=3)
    with database.write() as session:
        case = session.get(Case, case_id)
        assert case is not None
        case.status, case.closed_at = CaseStatus.CLOSED, closed_at
    almost = closed_at + timedelta(days=30) - timedelta(seconds=1)
    assert retire_links_of_closed_cases(database, now=almost) == 0
    assert retire_links_of_closed_cases(database, now=closed_at + timedelta(days=30)) == 1
    assert retire_links_of_closed_cases(database, now=closed_at + timedelta(days=31)) == 0
    with database.read() as session:
        assert case_of_live_link(session, secret) is None
        live = case_of_live_link(session, open_secret)
        assert live is not None and live.id == open_id
    assert _retired_events(database) == [("system", {"reason": CASE_CLOSED})]


def test_retention_deletes_the_links_with_their_case(database: Database, tmp_path: Path) -> None:
    case_id, secret = _case_with_link(database)
    with database.write() as session:
        case = session.get(Case, case_id)
        assert case is not None
        case.status, case.closed_at = CaseStatus.CLOSED, NOW
    settings = RetentionSettings(closed_case_days=1)
    evidence, derived = BlobStore(tmp_path / "blobs"), BlobStore(tmp_path / "derived")
    result = apply_retention(database, evidence, derived, settings, NOW + timedelta(days=1))
    assert len(result.deleted) == 1 and not result.failed
    with database.read() as session:
        assert session.execute(select(StatusLink)).first() is None
        assert case_of_live_link(session, secret) is None


def test_revision_0013_adds_the_table_and_takes_it_away(database_url: str) -> None:
    from alembic import command

    from storage.migrate import alembic_config

    database = Database(database_url)
    try:
        upgrade_database(database, "0012")
        assert "status_link" not in _tables(database)
        upgrade_database(database)
        assert current_revision(database) >= "0013" and "status_link" in _tables(database)
        config = alembic_config(database)
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0012")
        assert "status_link" not in _tables(database)
        assert current_revision(database) == "0012"
    finally:
        database.dispose()


def _tables(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_a_sent_mail_keeps_no_secret_even_across_soft_line_breaks() -> None:
    secret = new_secret()
    mail = EmailMessage(policy=policy.SMTP)
    long_base = "https://chikanemail.en-meget-lang-kommune-adresse.example.dk"
    mail.set_content(f"Hej, følg sagen her:\n{long_base}/status/{secret}\nHilsen",
                     cte="quoted-printable")
    mail.add_alternative(f'<p>Følg sagen: <a href="{long_base}/status/{secret}">'
                         f"{long_base}/status/{secret}</a></p>", subtype="html")
    raw = mail.as_bytes()
    assert b"=\r\n" in raw.split(b"/status/", 1)[1][:50]  # a soft break inside the secret
    kept = without_status_secrets(raw)
    assert len(kept) == len(raw)
    parsed = message_from_bytes(kept, policy=policy.default)
    texts = [part.get_content() for part in parsed.walk()
             if part.get_content_maintype() == "text"]
    assert len(texts) == 2
    for text in texts:
        assert secret not in text
        assert f"{long_base}/status/{'0' * 43}" in text
