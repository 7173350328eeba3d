"""File modes: the data directory is the service user's alone, blobs are read-only, the
database file is 0600; a data directory others can read stops the service with a clear error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from click.testing import CliRunner

from intake.commands.cli.context import CONFIG_ERROR_EXIT
from intake.commands.cli.main import main
from tests.support import write_toml

MAIL = b"From: ansat@kommune.example\r\nSubject: test\r\n\r\nhej\r\n"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _config(tmp_path: Path, **storage: object) -> Path:
    return write_toml(tmp_path / "config.toml",
                      {"storage": {"data_dir": str(tmp_path / "data"), **storage}})


def _ingest(config: Path, tmp_path: Path) -> tuple[int, str]:
    mail = tmp_path / "mail.eml"
    mail.write_bytes(MAIL)
    result = CliRunner().invoke(main, ["--config", str(config), "ingest", str(mail)])
    return result.exit_code, result.output


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    config = _config(tmp_path)
    code, output = _ingest(config, tmp_path)
    assert code == 0, output
    data = tmp_path / "data"
    assert _mode(data) == 0o700
    assert _mode(data / "chikanemail.sqlite3") == 0o600
    blobs = [path for path in (data / "blobs").rglob("*") if path.is_file()
             and not path.name.startswith(".")]
    assert len(blobs) == 1
    assert _mode(blobs[0]) == 0o400
    assert {_mode(path) for path in (data / "blobs").rglob("*") if path.is_dir()} == {0o700}


def test_a_data_directory_others_can_read_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)  # noqa: S103  # the mistake under test
    config = _config(tmp_path)
    code, output = _ingest(config, tmp_path)
    assert code == CONFIG_ERROR_EXIT
    assert str(config) in output
    assert "storage.allow_shared_permissions" in output
    assert "mode 755" in output and "chmod 700" in output
    assert not (data / "blobs").exists()  # nothing was written before the refusal


def test_shared_permissions_can_be_allowed_on_purpose(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o750)  # noqa: S103  # allowed on purpose here
    config = _config(tmp_path, allow_shared_permissions=True)
    code, output = _ingest(config, tmp_path)
    assert code == 0, output
    assert _mode(data) == 0o750  # left as the admin set it


def test_a_database_file_left_readable_is_made_private(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert _ingest(config, tmp_path)[0] == 0
    database_file = tmp_path / "data" / "chikanemail.sqlite3"
    os.chmod(database_file, 0o644)  # the mistake under test
    assert _ingest(config, tmp_path)[0] == 0
    assert _mode(database_file) == 0o600


def test_the_daemon_refuses_to_start_on_a_shared_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o705)  # the mistake under test
    config = _config(tmp_path)
    result = CliRunner().invoke(main, ["--config", str(config), "serve"])
    assert result.exit_code == CONFIG_ERROR_EXIT
    assert "configuration error" in result.output
    assert "storage.allow_shared_permissions" in result.output
