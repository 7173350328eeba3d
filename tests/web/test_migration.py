"""Migration 0011 (web sessions and login links) on SQLite and PostgreSQL: up from 0010,
the models work on it, and down again."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select

from storage.database import Database
from storage.migrate import current_revision, upgrade_database
from storage.models import LoginRequest, WebSession

TABLES = {"web_session", "login_request"}


def _tables(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_0011_adds_the_web_tables_and_the_models_use_them(database_url: str) -> None:
    from alembic import command

    from storage.migrate import alembic_config

    database = Database(database_url)
    try:
        upgrade_database(database, "0010")
        assert not TABLES & _tables(database)
        upgrade_database(database, "0011")
        assert current_revision(database) == "0011"
        assert _tables(database) >= TABLES

        now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
        with database.write() as session:
            session.add(WebSession(id_sha256="a" * 64, address="leder@kommune.example",
                                   csrf_token="t" * 43, created_at=now, last_seen_at=now))
            session.add(LoginRequest(address="leder@kommune.example", client="192.0.2.1",
                                     requested_at=now, token_sha256="b" * 64,
                                     expires_at=now, next_path="/cases"))
        with database.read() as session:
            assert session.execute(select(WebSession.address)).scalar_one() == (
                "leder@kommune.example")
            assert session.execute(select(LoginRequest.expires_at)).scalar_one() == now

        config = alembic_config(database)
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0010")
        assert not TABLES & _tables(database)
        assert current_revision(database) == "0010"
    finally:
        database.dispose()
