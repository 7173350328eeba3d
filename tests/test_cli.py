"""The command line front door: --version, `db upgrade`, `config check` and CHIKANEMAIL_CONFIG."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from intake import __version__
from intake.cli_context import CONFIG_ERROR_EXIT
from intake.config import CONFIG_ENV_VAR
from storage.database import Database
from storage.messages import DeliveryEnvelope, HeaderSummary, record_delivery
from storage.migrate import head_revision
from storage.models import Message
from tests.support import INTAKE_ADDRESS, describe, run_cli, write_toml

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
    })
    database = Database(database_url)
    try:
        assert "message" not in inspect(database.engine).get_table_names()

        first = run_cli(["--config", str(config), "db", "upgrade"])
        assert first.exit_code == 0, describe(first)
        head = head_revision()
        assert head is not None
        assert first.stdout.strip() == f"database at revision {head}"

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
        assert second.stdout.strip() == f"database at revision {head}"
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
