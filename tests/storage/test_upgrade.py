"""An installation made at the first schema revision keeps its data through every migration,
and the application works on the upgraded database (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, DateTime, MetaData, bindparam, select, text

from storage.audit import GENESIS_HASH, check_chain
from storage.database import Database
from storage.messages import DeliveryEnvelope, HeaderSummary, list_messages, record_delivery
from storage.migrate import MIGRATIONS_DIR, current_revision, head_revision, upgrade_database
from storage.models import Case, CaseNote
from storage.routing_words import routing_words

OLD_RAW = b"From: ansat@kommune.example\r\nSubject: gammel rapport\r\n\r\nFra 0001.\r\n"
OLD_SHA256 = hashlib.sha256(OLD_RAW).hexdigest()
RECEIVED_AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
# Tables later revisions add; an upgrade must leave them empty.
NEW_TABLES = ("evidence", "case_file", "case_counter", "case_note", "outbox",
              "imap_folder_state", "imap_oversized", "case_step", "plan_notice", "case_link",
              "audit_event", "verify_run", "blob_deletion", "message_timestamp")

_INSERT_0001_MESSAGE = text(
    "INSERT INTO message (sha256, size, source, mail_from, rcpt_tos, peer, helo, tls, "
    "received_at, last_seen_at, times_seen, message_id, subject, state, quarantine_reason, "
    "attempts, last_error, not_before, claimed_by, claimed_until, processed_at) "
    "VALUES (:sha256, :size, 'smtp', 'ansat@kommune.example', :rcpt_tos, '192.0.2.7', "
    "'mail.kommune.example', :tls, :received_at, :received_at, 1, '<old-1@kommune.example>', "
    "'gammel rapport', 'received', NULL, 0, NULL, NULL, NULL, NULL, NULL)"
).bindparams(bindparam("rcpt_tos", type_=JSON()),
             bindparam("received_at", type_=DateTime(timezone=True)))


def revisions() -> list[str]:
    """Every revision this code ships, oldest first."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


@pytest.fixture
def old_database(database_url: str) -> Iterator[Database]:
    """A database at revision 0001 holding one message row, written as 0001's code would."""
    database = Database(database_url)
    upgrade_database(database, "0001")
    assert current_revision(database) == "0001"
    with database.engine.begin() as connection:
        connection.execute(_INSERT_0001_MESSAGE, {
            "sha256": OLD_SHA256, "size": len(OLD_RAW),
            "rcpt_tos": ["chikanemail@kommune.example"], "tls": True,
            "received_at": RECEIVED_AT,
        })
    yield database
    database.dispose()


def test_revisions_form_one_line_from_0001_to_head() -> None:
    names = revisions()
    assert names[0] == "0001"
    assert names[-1] == head_revision()
    assert len(names) == len(set(names)) >= 6


def test_a_0001_database_upgraded_to_head_keeps_its_data_and_works(
        old_database: Database) -> None:
    upgrade_database(old_database)
    assert current_revision(old_database) == head_revision()

    [message] = list_messages(old_database)
    assert message.sha256 == OLD_SHA256
    assert message.size == len(OLD_RAW)
    assert message.subject == "gammel rapport"
    assert message.message_id == "<old-1@kommune.example>"
    assert message.rcpt_tos == ["chikanemail@kommune.example"]
    assert message.tls is True
    assert message.state == "received"
    assert message.times_seen == 1
    assert message.received_at == RECEIVED_AT
    # Columns added later: defaults for a row that existed before them.
    assert message.automatic is False
    assert message.case_id is None
    assert message.extracted_at is None

    with old_database.engine.connect() as connection:
        head = connection.execute(text("SELECT seq, hash FROM audit_head")).all()
        counts = {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                  for table in NEW_TABLES}
    assert [tuple(row) for row in head] == [(0, GENESIS_HASH)]
    assert counts == dict.fromkeys(NEW_TABLES, 0)

    # The application works on it: a new delivery, the old bytes seen again, the chain.
    envelope = DeliveryEnvelope(source="smtp", mail_from="ansat@kommune.example",
                                rcpt_tos=("chikanemail@kommune.example",))
    new_raw = b"Subject: ny rapport\r\n\r\nEfter opgraderingen.\r\n"
    new = record_delivery(old_database, sha256=hashlib.sha256(new_raw).hexdigest(),
                          size=len(new_raw), envelope=envelope,
                          headers=HeaderSummary(subject="ny rapport"))
    assert not new.duplicate
    assert new.message_pk != message.id
    again = record_delivery(old_database, sha256=OLD_SHA256, size=len(OLD_RAW),
                            envelope=envelope, headers=HeaderSummary(subject="gammel rapport"))
    assert again.duplicate
    assert again.message_pk == message.id
    assert again.times_seen == 2
    assert [row.sha256 for row in list_messages(old_database)].count(OLD_SHA256) == 1
    assert len(list_messages(old_database)) == 2

    chain = check_chain(old_database)
    assert chain.ok, chain.broken
    assert chain.head_seq == chain.events


def test_each_revision_one_at_a_time_keeps_the_row(old_database: Database) -> None:
    names = revisions()
    for revision in names[1:]:
        upgrade_database(old_database, revision)
        assert current_revision(old_database) == revision
        with old_database.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT sha256, subject, times_seen, state FROM message")).all()
        assert [tuple(row) for row in rows] == [
            (OLD_SHA256, "gammel rapport", 1, "received")], f"after {revision}"
    assert current_revision(old_database) == head_revision()
    [message] = list_messages(old_database)
    assert message.sha256 == OLD_SHA256


def test_0010_keeps_old_cases_and_notes_as_they_were_written(database_url: str) -> None:
    """Cases and notes from before 0010 have no routing parameters and no note code: they
    keep their stored English text, which is what a reader of either language sees."""
    database = Database(database_url)
    try:
        upgrade_database(database, "0009")
        tables = MetaData()
        tables.reflect(database.engine, only=["case_file", "case_note"])
        with database.engine.begin() as connection:
            case_id = connection.execute(tables.tables["case_file"].insert().values(
                number="2026-0001", year=2026, sequence=1, status="open",
                reporter="ansat@kommune.example", manager="leder@kommune.example",
                language="da", routing_source="rule", routing_reason="rule 1: *@x.dk",
                opened_at=RECEIVED_AT, relation="unknown", witnesses=[],
            )).inserted_primary_key[0]
            connection.execute(tables.tables["case_note"].insert().values(
                case_id=case_id, author="leder@kommune.example",
                text="Acknowledged the case.", created_at=RECEIVED_AT))
        upgrade_database(database)  # through 0010 to the head, which the models describe
        with database.read() as session:
            case = session.execute(select(Case)).scalar_one()
            note = session.execute(select(CaseNote)).scalar_one()
            assert case.routing_params is None
            assert (note.code, note.params) == (None, None)
            assert routing_words(case.routing_source, case.routing_params,
                                 case.routing_reason, "da") == "rule 1: *@x.dk"
            assert note.text == "Acknowledged the case."
    finally:
        database.dispose()
