"""`chikanemail imap status [--json]` and `chikanemail imap test NAME` against a real Dovecot."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner, Result

from intake.commands.cli.main import main
from intake.receive.imap.receiver import ImapReceiver
from intake.service.config import CONFIG_ENV_VAR, load_config
from intake.service.daemon import open_services
from intake.service.settings import ImapMailbox
from tests.dovecot import Dovecot
from tests.receive.test_imap_support import (
    append,
    mailbox_for,
    make_mail,
    running,
    stored_row,
    write_config,
)
from tests.support import INTAKE_ADDRESS, free_port, wait_until


def run_cli(args: list[str]) -> Result:
    return CliRunner(env={CONFIG_ENV_VAR: None}).invoke(main, args)


def describe(result: Result) -> str:
    return (f"exit={result.exit_code} exception={result.exception!r}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")


def config_file(tmp_path: Path, mailboxes: list[ImapMailbox],
                database_url: str | None = None) -> Path:
    storage: dict[str, str] = {"data_dir": str(tmp_path / "data")}
    if database_url:
        storage["database_url"] = database_url
    return write_config(tmp_path / "chikanemail.toml", {
        "storage": storage, "intake": {"addresses": [INTAKE_ADDRESS]},
        "ui": {"language": "en"},  # the English texts these tests read
    }, mailboxes)


def test_status_json_shows_each_mailbox(dovecot: Dovecot, tmp_path: Path,
                                        database_url: str) -> None:
    working = mailbox_for(dovecot, tmp_path)
    never = replace(working, name="never-started", folder="Andet")
    path = config_file(tmp_path, [working, never], database_url)
    config = load_config(path)
    services = open_services(config)
    mail = make_mail("status")
    append(dovecot, mail)
    receiver = ImapReceiver(config.imap[0], services.intake, config.smtp.max_message_bytes,
                            idle_check_seconds=0.2)
    try:
        with running(receiver):
            wait_until(lambda: receiver.state == "idle", message="the receiver in IDLE")
            assert stored_row(services, mail) is not None
            result = run_cli(["--config", str(path), "imap", "status", "--json"])
            assert result.exit_code == 0, describe(result)
            entries = json.loads(result.stdout)
            table = run_cli(["--config", str(path), "imap", "status"])
    finally:
        services.close()
    assert [entry["name"] for entry in entries] == ["intake", "never-started"]
    live, idle = entries
    assert live["folder"] == "INBOX" and live["connected"] is True
    assert isinstance(live["uidvalidity"], int) and live["last_uid"] == 1
    assert live["last_success_at"] and live["last_error"] is None
    assert live["oversized_left_on_server"] == 0
    assert idle["connected"] is False and idle["last_uid"] is None
    assert idle["last_success_at"] is None
    assert table.exit_code == 0, describe(table)
    assert "intake" in table.stdout and "never" in table.stdout

    after = json.loads(run_cli(["--config", str(path), "imap", "status", "--json"]).stdout)
    assert after[0]["connected"] is False  # the receiver said so when it stopped


def test_status_without_mailboxes(tmp_path: Path, database_url: str) -> None:
    path = config_file(tmp_path, [], database_url)
    assert run_cli(["--config", str(path), "db", "upgrade"]).exit_code == 0
    result = run_cli(["--config", str(path), "imap", "status"])
    assert result.exit_code == 0, describe(result)
    assert "No [[imap]] mailboxes" in result.stdout
    assert json.loads(run_cli(["--config", str(path), "imap", "status", "--json"]).stdout) == []


def test_imap_test_good_and_wrong_password_and_unreachable(dovecot: Dovecot,
                                                           tmp_path: Path) -> None:
    good = mailbox_for(dovecot, tmp_path)
    wrong_file = tmp_path / "wrong"
    wrong_file.write_text("nope\n", encoding="utf-8")
    wrong = replace(good, name="wrong", password_file=str(wrong_file))
    nobody = replace(good, name="nobody-listens", port=free_port())
    path = config_file(tmp_path, [good, wrong, nobody])

    result = run_cli(["--config", str(path), "imap", "test", "intake"])
    assert result.exit_code == 0, describe(result)
    assert "connected and signed in" in result.stdout
    assert "'INBOX': 0 messages" in result.stdout
    assert "IDLE yes" in result.stdout and "MOVE yes" in result.stdout

    result = run_cli(["--config", str(path), "imap", "test", "wrong"])
    assert result.exit_code == 1, describe(result)
    assert "login of intake refused: [AUTHENTICATIONFAILED]" in result.stderr
    assert "nope" not in result.stderr + result.stdout

    result = run_cli(["--config", str(path), "imap", "test", "nobody-listens"])
    assert result.exit_code == 1, describe(result)
    assert "refused the connection" in result.stderr

    result = run_cli(["--config", str(path), "imap", "test", "missing"])
    assert result.exit_code == 2, describe(result)
    assert "no [[imap]] mailbox named 'missing'" in result.stderr
    assert "intake, wrong, nobody-listens" in result.stderr


def test_imap_test_names_a_missing_folder(dovecot: Dovecot, tmp_path: Path) -> None:
    path = config_file(tmp_path, [mailbox_for(dovecot, tmp_path, folder="Findes/Ikke")])
    result = run_cli(["--config", str(path), "imap", "test", "intake"])
    assert result.exit_code == 1, describe(result)
    assert "no folder 'Findes.Ikke' on the server" in result.stderr


def test_config_check_lists_the_mailboxes(dovecot: Dovecot, tmp_path: Path) -> None:
    path = config_file(tmp_path, [mailbox_for(dovecot, tmp_path, mode="poll")])
    result = run_cli(["--config", str(path), "config", "check"])
    assert result.exit_code == 0, describe(result)
    assert (f"IMAP      intake: intake at 127.0.0.1:{dovecot.port} (ssl, password), 'INBOX' "
            "-> 'Chikanemail/Behandlet', poll") in result.stdout
