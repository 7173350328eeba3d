"""The command line front door: --version, `db upgrade`, `config check`, CHIKANEMAIL_CONFIG,
and unverified senders as `cases show` and `messages show|list` show them."""

from __future__ import annotations

import importlib.metadata
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from intake import __version__
from intake.commands.cli.context import CONFIG_ERROR_EXIT
from intake.service.config import CONFIG_ENV_VAR
from storage.database import Database
from storage.messages import DeliveryEnvelope, HeaderSummary, record_delivery
from storage.migrate import head_revision
from storage.models import Case, Message
from tests.support import INTAKE_ADDRESS, MANAGER, describe, run_cli, write_toml

# -- helpers (local to this file) ---------------------------------------------


@pytest.fixture
def good_config(tmp_path: Path) -> Path:
    return write_toml(tmp_path / "good.toml", {
        "storage": {"data_dir": "data"},  # relative: resolved against the file's folder
        "smtp": {"port": 2525, "server_hostname": "chikanemail.test"},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "worker": {"poll_seconds": 0.5},
    })


# -- --version --------------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    result = run_cli(["--version"])
    assert result.exit_code == 0, describe(result)
    assert __version__ == importlib.metadata.version("chikanemail")
    assert result.stdout == f"chikanemail, version {__version__}\n"


# -- db upgrade -------------------------------------------------------------


def test_db_upgrade_creates_tables_and_is_idempotent(tmp_path: Path, database_url: str) -> None:
    config = write_toml(tmp_path / "db.toml", {
        "storage": {"data_dir": str(tmp_path / "data"), "database_url": database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "ui": {"language": "en"},  # the English texts these tests read
    })
    database = Database(database_url)
    try:
        assert "message" not in inspect(database.engine).get_table_names()

        first = run_cli(["--config", str(config), "db", "upgrade"])
        assert first.exit_code == 0, describe(first)
        head = head_revision()
        assert head is not None
        assert first.stdout.strip() == f"Database at revision {head}"

        tables = set(inspect(database.engine).get_table_names())
        assert {"message", "alembic_version"} <= tables
        columns = {column["name"] for column in inspect(database.engine).get_columns("message")}
        assert {"id", "sha256", "size", "source", "state", "times_seen", "received_at",
                "message_id", "subject", "claimed_by", "processed_at"} <= columns

        # A row written between the two runs must survive the second one untouched.
        record_delivery(database, sha256="ab" * 32, size=3,
                        envelope=DeliveryEnvelope(source="ingest"), headers=HeaderSummary())

        second = run_cli(["--config", str(config), "db", "upgrade"])
        assert second.exit_code == 0, describe(second)
        assert second.stdout.strip() == f"Database at revision {head}"
        with database.read() as session:
            assert session.execute(select(func.count()).select_from(Message)).scalar_one() == 1
    finally:
        database.dispose()


# -- config check -----------------------------------------------------------


def test_config_check_accepts_a_good_file(good_config: Path) -> None:
    result = run_cli(["--config", str(good_config), "config", "check"])
    assert result.exit_code == 0, describe(result)
    lines = result.stdout.splitlines()
    assert lines[0] == f"configuration OK: {good_config}"
    data_dir = good_config.parent.resolve() / "data"
    assert f"data_dir  {data_dir}" in result.stdout
    assert f"sqlite:///{data_dir / 'chikanemail.sqlite3'}" in result.stdout
    assert "SMTP      127.0.0.1:2525" in result.stdout
    assert f"addresses {INTAKE_ADDRESS}" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        pytest.param({"smtp": {"prot": 25}}, "smtp.prot", id="unknown-key"),
        pytest.param({"smtp": {"port": "25"}}, "smtp.port", id="string-for-int"),
        pytest.param({"intake": {"addresses": INTAKE_ADDRESS}}, "intake.addresses",
                     id="string-for-list"),
        pytest.param({"smtpd": {"port": 25}}, "smtpd", id="unknown-table"),
        pytest.param({"smtp": {"port": 70000}}, "smtp.port", id="port-out-of-range"),
    ],
)
def test_config_check_names_the_file_and_the_bad_key(
    tmp_path: Path, tables: dict[str, dict[str, Any]], key: str
) -> None:
    config = write_toml(tmp_path / "bad.toml", tables)
    result = run_cli(["--config", str(config), "config", "check"])
    assert result.exit_code == CONFIG_ERROR_EXIT, describe(result)
    assert result.stdout == "", describe(result)
    assert str(config) in result.stderr, describe(result)
    assert f": {key}: " in result.stderr, describe(result)
    assert "configuration OK" not in result.stderr


def test_config_check_unknown_key_message(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "typo.toml", {"smtp": {"prot": 25}})
    result = run_cli(["--config", str(config), "config", "check"])
    assert result.exit_code != 0
    assert result.stderr.strip() == (
        f"chikanemail: configuration error: {config}: smtp.prot: unknown key"
    ), describe(result)


def test_config_check_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = run_cli(["--config", str(missing), "config", "check"])
    assert result.exit_code == CONFIG_ERROR_EXIT, describe(result)
    assert str(missing) in result.stderr
    assert "no such file" in result.stderr


def test_config_check_syntax_error_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[smtp\nport = 25\n", encoding="utf-8")
    result = run_cli(["--config", str(config), "config", "check"])
    assert result.exit_code == CONFIG_ERROR_EXIT, describe(result)
    assert f"{config}: (syntax):" in result.stderr


# -- CHIKANEMAIL_CONFIG -----------------------------------------------------


def test_config_environment_variable_is_honoured(good_config: Path, tmp_path: Path) -> None:
    result = run_cli(["config", "check"], env={CONFIG_ENV_VAR: str(good_config)})
    assert result.exit_code == 0, describe(result)
    assert result.stdout.splitlines()[0] == f"configuration OK: {good_config}"
    assert "127.0.0.1:2525" in result.stdout  # the file's port, not the default 8025

    bad = write_toml(tmp_path / "env-bad.toml", {"smtp": {"prot": 25}})
    result = run_cli(["config", "check"], env={CONFIG_ENV_VAR: str(bad)})
    assert result.exit_code == CONFIG_ERROR_EXIT, describe(result)
    assert str(bad) in result.stderr and "smtp.prot" in result.stderr

    # An explicit --config wins over the environment.
    result = run_cli(["--config", str(good_config), "config", "check"],
                     env={CONFIG_ENV_VAR: str(bad)})
    assert result.exit_code == 0, describe(result)
    assert f"configuration OK: {good_config}" in result.stdout


def test_without_any_config_the_defaults_run(tmp_path: Path) -> None:
    result = run_cli(["config", "check"])
    assert result.exit_code == 0, describe(result)
    assert result.stdout.splitlines()[0] == "configuration OK: (built-in defaults)"
    assert "127.0.0.1:8025" in result.stdout


# -- unverified senders in `cases show` and `messages show|list` ----------------

UNVERIFIED_MARK = "UNVERIFIED SENDER (kept as evidence, changed nothing)"
WIDE = {"COLUMNS": "300"}  # rich wraps at 80 columns otherwise


def _seed_unverified_case(database: Database) -> tuple[str, str, str]:
    """Case 2026-0007, whose report's sender was not vouched for, with the report
    (no signature) and a forged follow-up (DKIM fails, unverified): (number, report, forged)."""
    when = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    report_sha, forged_sha = "a1" * 32, "f0" * 32
    with database.write() as session:
        case = Case(number="2026-0007", year=2026, sequence=7, status="open",
                    reporter="ansat@kommune.example", manager=MANAGER, language="da",
                    routing_source="default", routing_reason="test", opened_at=when,
                    sender_unverified=True)
        session.add(case)
        session.flush()
        for sha256, kind, check, unverified in ((report_sha, "report", "no-signature", False),
                                                (forged_sha, "follow-up", "dkim-fail", True)):
            session.add(Message(sha256=sha256, size=100, source="smtp", rcpt_tos=[INTAKE_ADDRESS],
                                received_at=when, last_seen_at=when, state="processed",
                                case_id=case.id, kind=kind, from_address="ansat@kommune.example",
                                subject=f"sag 2026-0007 {kind}", sender_check=check,
                                sender_authenticated=False, unverified=unverified))
    return "2026-0007", report_sha, forged_sha


def test_cases_and_messages_show_mark_unverified_senders(tmp_path: Path,
                                                         database: Database) -> None:
    number, report_sha, forged_sha = _seed_unverified_case(database)
    config = write_toml(tmp_path / "config.toml", {
        "storage": {"data_dir": str(tmp_path / "data"),
                    "database_url": database.url.render_as_string(hide_password=False)},
        "ui": {"language": "en"},  # the English texts these tests read
    })
    base = ["--config", str(config)]

    result = run_cli([*base, "cases", "show", number, "--json"])
    assert result.exit_code == 0, describe(result)
    shown = json.loads(result.stdout)
    assert shown["sender_unverified"] is True
    by_sha = {message["sha256"]: message for message in shown["messages"]}
    assert (by_sha[forged_sha]["unverified"], by_sha[forged_sha]["sender_check"]) == (
        True, "dkim-fail")
    assert (by_sha[report_sha]["unverified"], by_sha[report_sha]["sender_check"]) == (
        False, "no-signature")
    assert by_sha[forged_sha]["sender_authenticated"] is False
    assert by_sha[forged_sha]["reply_token_id"] is None

    tree = run_cli([*base, "cases", "show", number], env=WIDE)
    assert tree.exit_code == 0, describe(tree)
    assert ("No receipt was sent: the reporter's sender address could not be verified"
            in tree.stdout)
    assert tree.stdout.count(UNVERIFIED_MARK) == 1  # the follow-up only
    lines = tree.stdout.splitlines()
    marked = lines.index(next(line for line in lines if UNVERIFIED_MARK in line))
    assert "follow-up" in lines[marked - 1]  # under its message
    assert ("Sender check: the mail's DKIM signature is invalid (the mail may have been "
            "altered or forged) (dkim-fail)") in tree.stdout
    assert "Sender check: the mail has no DKIM signature (no-signature)" in tree.stdout

    forged = run_cli([*base, "messages", "show", forged_sha, "--json"])
    assert forged.exit_code == 0, describe(forged)
    report = json.loads(forged.stdout)
    assert (report["unverified"], report["sender_check"], report["sender_authenticated"],
            report["kind"]) == (True, "dkim-fail", False, "follow-up")
    forged_tree = run_cli([*base, "messages", "show", forged_sha], env=WIDE).stdout
    assert UNVERIFIED_MARK in forged_tree
    assert ("Sender check: the mail's DKIM signature is invalid (the mail may have been "
            "altered or forged) (dkim-fail)") in forged_tree
    genuine_tree = run_cli([*base, "messages", "show", report_sha], env=WIDE).stdout
    assert UNVERIFIED_MARK not in genuine_tree
    assert "Sender check: the mail has no DKIM signature (no-signature)" in genuine_tree

    listed = json.loads(run_cli([*base, "messages", "list", "--json"]).stdout)
    assert {row["sha256"]: (row["unverified"], row["sender_check"]) for row in listed} == {
        report_sha: (False, "no-signature"), forged_sha: (True, "dkim-fail")}
    table = run_cli([*base, "messages", "list"], env=WIDE).stdout
    assert "follow-up (UNVERIFIED sender)" in table and "report (UNVERIFIED" not in table


def test_config_check_warns_about_the_old_notify_language(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "old.toml", {"notify": {"language": "en"}})
    result = run_cli(["--config", str(config), "config", "check"])
    assert result.exit_code == 0, describe(result)
    assert result.stderr.startswith(f"chikanemail: warning: {config}: [notify] language is "
                                    "deprecated"), describe(result)
    assert '[ui] language = "en"' in result.stderr
