"""`chikanemail cases list`: a page of cases newest first, `--limit`, `--all` streamed, the
JSON shape of `case_summary`, and a start-up that loads only what the listing needs (SQLite
and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import insert

from storage.cases import case_summary, format_case_number, list_cases
from storage.database import Database
from storage.migrate import MIGRATIONS_DIR, current_revision, head_revision, upgrade_database
from storage.models import Case
from tests.support import describe, run_cli, write_toml

# 2024-0001 … 2024-0030, then 2025-9990 … 2025-10049: numbers past 9999 sort after 9999
# as numbers but before it as text, so the order must come from (year, sequence).
CASES = [(2024, sequence) for sequence in range(1, 31)] + [
    (2025, sequence) for sequence in range(9990, 10050)]
NEWEST_FIRST = [format_case_number(year, sequence) for year, sequence in reversed(CASES)]


def case_row(number: int, year: int, sequence: int) -> dict[str, Any]:
    opened = datetime(year, 1, 1, 8, tzinfo=UTC) + timedelta(hours=sequence)
    closed = number % 3 == 0
    return {
        "number": format_case_number(year, sequence), "year": year, "sequence": sequence,
        "status": "closed" if closed else "open", "reporter": f"ansat{number}@kommune.example",
        "reporter_name": f"Ansat {number}" if number % 2 else None,
        "manager": "leder@kommune.example", "deputy": None, "language": "da",
        "routing_source": "default", "routing_reason": "no rule matched",
        "opened_at": opened, "closed_at": opened + timedelta(days=3) if closed else None,
        "close_reason": "afsluttet" if closed else None, "relation": "colleague",
        "medium": "mail", "first_absence_day": opened.date() if number % 5 == 0 else None,
        "witnesses": ["Kollega K"] if number % 7 == 0 else [],
        "acknowledged_at": None, "acknowledged_by": None, "escalation_level": 0,
        "legal_hold": number % 11 == 0, "hold_reason": "politiet" if number % 11 == 0 else None,
    }


@pytest.fixture
def listing(database: Database, tmp_path: Path) -> tuple[Database, Path]:
    """A migrated database holding CASES, and a config file pointing at it."""
    with database.engine.begin() as connection:
        connection.execute(insert(Case), [case_row(number, year, sequence)
                                          for number, (year, sequence) in enumerate(CASES)])
    config = write_toml(tmp_path / "cli.toml", {"storage": {
        "data_dir": str(tmp_path / "data"), "database_url": database.url.render_as_string(
            hide_password=False)}})
    return database, config


def list_json(config: Path, *args: str) -> list[dict[str, Any]]:
    result = run_cli(["--config", str(config), "cases", "list", "--json", *args])
    assert result.exit_code == 0, describe(result)
    cases: list[dict[str, Any]] = json.loads(result.stdout)
    return cases


def test_the_default_page_is_the_50_newest_cases(listing: tuple[Database, Path]) -> None:
    _, config = listing
    assert [case["number"] for case in list_json(config)] == NEWEST_FIRST[:50]


def test_limit_and_all(listing: tuple[Database, Path]) -> None:
    _, config = listing
    assert [case["number"] for case in list_json(config, "--limit", "3")] == [
        "2025-10049", "2025-10048", "2025-10047"]
    assert [case["number"] for case in list_json(config, "--all")] == NEWEST_FIRST
    assert len(list_json(config, "--limit", "1000")) == len(CASES)
    refused = run_cli(["--config", str(config), "cases", "list", "--limit", "0"])
    assert refused.exit_code == 2


def test_status_filters_before_the_page(listing: tuple[Database, Path]) -> None:
    database, config = listing
    closed = [case.number for case in list_cases(database, status="closed")]
    assert [case["number"] for case in list_json(config, "--status", "closed",
                                                 "--limit", "5")] == closed[:5]
    every_open = list_json(config, "--status", "open", "--all")
    assert {case["status"] for case in every_open} == {"open"}
    assert len(every_open) == len(CASES) - len(closed)


def test_the_json_is_case_summary_of_each_case(listing: tuple[Database, Path]) -> None:
    database, config = listing
    expected = [case_summary(case) for case in list_cases(database)]
    assert list_json(config, "--all") == expected
    held = next(case for case in expected if case["legal_hold"])
    assert held["hold_reason"] == "politiet"
    assert any(case["witnesses"] == ["Kollega K"] for case in expected)
    assert any(case["first_absence_day"] for case in expected)


def test_the_table_says_how_many_there_are_and_how_to_see_more(
        listing: tuple[Database, Path]) -> None:
    _, config = listing
    page = run_cli(["--config", str(config), "cases", "list"], env={"COLUMNS": "200"})
    assert page.exit_code == 0, describe(page)
    # In Danish, the default language.
    title = " ".join(page.stdout.split())  # the title wraps to the table's width
    assert f"50 af {len(CASES)} sager (nyeste først; --all eller --limit N for flere)" in title
    assert "2025-10049" in page.stdout and "2024-0001" not in page.stdout
    every = run_cli(["--config", str(config), "cases", "list", "--all"], env={"COLUMNS": "200"})
    assert f"{len(CASES)} sager (nyeste først)" in every.stdout
    assert "2024-0001" in every.stdout


def test_an_empty_database_lists_nothing(database: Database, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "cli.toml", {"storage": {
        "data_dir": str(tmp_path / "data"),
        "database_url": database.url.render_as_string(hide_password=False)}})
    assert list_json(config) == []
    assert list_json(config, "--all") == []


def test_the_schema_check_agrees_with_alembic(database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
    empty = Database(database_url)
    try:
        assert current_revision(empty) is None
    finally:
        empty.dispose()


def test_cases_list_loads_neither_the_daemon_nor_alembic(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    database = Database(database_url)
    upgrade_database(database)
    database.dispose()
    config = write_toml(tmp_path / "cli.toml", {"storage": {
        "data_dir": str(tmp_path / "data"), "database_url": database_url}})
    script = (
        "import sys\n"
        "from intake.commands.cli.main import main\n"
        f"main(['--config', {str(config)!r}, 'cases', 'list', '--json'],"
        " standalone_mode=False)\n"
        "heavy = ('intake.service.daemon', 'intake.pipeline', 'extract_msg', 'PIL', 'imapclient',\n"
        "         'aiosmtpd', 'alembic', 'rich', 'notifier.outbox',\n"
        "         'intake.commands.cli.case_actions')\n"
        "loaded = sorted(n for n in sys.modules if n.startswith(heavy))\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_help_lists_every_command_with_its_help() -> None:
    result = run_cli(["--help"])
    assert result.exit_code == 0, describe(result)
    for name in ("serve", "ingest", "reprocess", "messages", "outbox", "cases", "patterns",
                 "audit", "verify", "health", "quarantine", "demo", "export", "retention",
                 "imap", "db", "config"):
        assert f"  {name} " in result.stdout, name
    assert "Cases: one per report." in result.stdout
    cases = run_cli(["cases", "--help"])
    for name in ("list", "show", "note", "assign", "ack", "step", "absence", "relation",
                 "medium", "witness", "close", "hold", "unhold"):
        assert f"  {name} " in cases.stdout, name
