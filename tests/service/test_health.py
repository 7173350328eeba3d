"""`chikanemail health`: the listener check against a real daemon and against nothing, and
the IMAP check on the mailbox state rows the receivers write."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import Result

from intake.service.config import AppConfig
from intake.service.health import HEALTH_CHECKS, run_health_checks
from intake.service.health.findings import CheckStatus
from intake.service.settings import ImapMailbox
from storage.database import Database
from storage.imap_state import FolderPosition, advance_folder, begin_folder, record_error
from storage.models import utc_now
from tests.support import (
    INTAKE_ADDRESS,
    DaemonThread,
    describe,
    free_port,
    run_cli,
    write_toml,
)


def health(config: AppConfig, tmp_path: Path, port: int,
           **smtp: Any) -> tuple[Result, dict[str, Any]]:
    """`health --json` with a config file naming this listener port; (result, checks by name)."""
    config_file = write_toml(tmp_path / "health.toml", {
        "storage": {"data_dir": str(config.storage.data_path),
                    "database_url": config.storage.effective_database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"host": "127.0.0.1", "port": port, **smtp},
    })
    result = run_cli(["--config", str(config_file), "health", "--json"])
    report = json.loads(result.stdout)
    return result, {check["name"]: check for check in report["checks"]} | {
        "healthy": report["healthy"]}


def test_a_running_daemon_greets_the_listener_check(config: AppConfig, tmp_path: Path) -> None:
    with DaemonThread(config) as daemon:
        result, checks = health(config, tmp_path, daemon.smtp_address[1])
    assert result.exit_code == 0, describe(result)
    assert checks["healthy"] is True
    listeners = checks["listeners"]
    assert listeners["status"] == "ok", listeners
    assert listeners["details"]["greeting"].startswith("220 ")
    assert listeners["details"]["kind"] == "SMTP"
    assert checks["imap"]["status"] == "skipped"  # no [[imap]] mailboxes


def test_nothing_listening_is_unhealthy(config: AppConfig, tmp_path: Path) -> None:
    DaemonThread(config).start().stop()  # creates the data directory and the schema
    port = free_port()
    result, checks = health(config, tmp_path, port)
    assert result.exit_code == 1, describe(result)
    assert checks["healthy"] is False
    assert checks["listeners"]["status"] == "fail"
    assert f"nothing answers on 127.0.0.1:{port}" in checks["listeners"]["summary"]
    assert checks["database"]["status"] == "ok"  # only the listener is wrong

    text = run_cli(["--config", str(tmp_path / "health.toml"), "health"])
    assert text.exit_code == 1
    assert text.stdout.splitlines()[-1].startswith("UNHEALTHY")


def test_a_disabled_listener_is_skipped(config: AppConfig, tmp_path: Path) -> None:
    DaemonThread(config).start().stop()
    result, checks = health(config, tmp_path, free_port(), enabled=False)
    assert result.exit_code == 0, describe(result)
    assert checks["listeners"]["status"] == "skipped"


def imap_finding(config: AppConfig, *mailboxes: ImapMailbox,
                 later: timedelta = timedelta()) -> tuple[CheckStatus, str, dict[str, Any]]:
    checks = tuple(check for check in HEALTH_CHECKS if check.name in ("database", "imap"))
    results = run_health_checks(replace(config, imap=mailboxes), checks,
                                now=utc_now() + later)
    database_result, imap_result = results
    assert database_result.finding.status == CheckStatus.OK
    finding = imap_result.finding
    return finding.status, finding.summary, finding.details


def test_imap_mailbox_states(config: AppConfig, database: Database) -> None:
    post = ImapMailbox(name="post", host="imap.kommune.example", username="intake")
    other = ImapMailbox(name="hr", host="imap.kommune.example", username="hr")

    status, summary, _ = imap_finding(config, post)
    assert (status, summary) == (CheckStatus.WARN, "post: not checked yet")

    record_error(database, "post", "INBOX", "LOGIN failed: bad password")
    status, summary, details = imap_finding(config, post)
    assert status == CheckStatus.FAIL
    assert "never worked: LOGIN failed" in summary
    assert details["mailboxes"][0]["connected"] is False

    position = begin_folder(database, "post", "INBOX", 17)
    advance_folder(database, "post", "INBOX", FolderPosition(17, 3))
    status, summary, details = imap_finding(config, post)
    assert (status, summary) == (CheckStatus.OK, "post: ok"), position
    assert details["mailboxes"][0]["last_success_age_seconds"] < 60

    status, summary, _ = imap_finding(config, post, later=timedelta(minutes=11))
    assert status == CheckStatus.WARN and "last success 11 min ago" in summary

    record_error(database, "post", "INBOX", "connection reset")
    status, summary, _ = imap_finding(config, post)
    assert status == CheckStatus.WARN
    assert "not connected" in summary and "last error: connection reset" in summary

    record_error(database, "hr", "INBOX", "certificate verify failed")
    status, summary, details = imap_finding(config, post, other)
    assert status == CheckStatus.FAIL  # the worst mailbox decides
    assert [entry["status"] for entry in details["mailboxes"]] == ["warn", "fail"]


# Words of the English findings that a Danish reader of `chikanemail health` never meets.
ENGLISH_WORDS = ("nothing answers", "no backup", "writable", "free of", "waiting",
                 "quarantined", "no verify run", "reachable", "no status from", " ago",
                 "mailboxes configured", "healthy (")


def test_health_speaks_the_workplace_language_while_json_stays_english(
        config: AppConfig, database: Database, tmp_path: Path) -> None:
    config.storage.data_path.mkdir(parents=True, exist_ok=True)
    port = free_port()  # nothing listens there: the OS's own words follow the finding
    config_file = write_toml(tmp_path / "health.toml", {
        "storage": {"data_dir": str(config.storage.data_path),
                    "database_url": config.storage.effective_database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"host": "127.0.0.1", "port": port},
        "health": {"min_free_mb": 0, "fail_free_mb": 0, "backup_max_age_hours": 24},
    })  # no [ui] language: Danish

    text = run_cli(["--config", str(config_file), "health"])
    as_json = run_cli(["--config", str(config_file), "health", "--json"])
    assert text.exit_code == as_json.exit_code == 1, describe(text)
    report = json.loads(as_json.stdout)
    checks = {check["name"]: check for check in report["checks"]}

    # --json: the same keys, check names, status codes and English sentences as ever.
    assert report["healthy"] is False
    assert list(checks) == [check.name for check in HEALTH_CHECKS]
    assert all(set(check) == {"name", "status", "summary", "details"}
               for check in checks.values())
    listeners = checks["listeners"]
    assert listeners["status"] == "fail"
    assert listeners["summary"].startswith(f"nothing answers on 127.0.0.1:{port} (SMTP): ")
    os_words = listeners["summary"].removeprefix(f"nothing answers on 127.0.0.1:{port} (SMTP): ")
    assert os_words  # "Connection refused", as the system says it
    assert (checks["backup"]["status"], checks["backup"]["summary"]) == (
        "warn", "no backup recorded: run `chikanemail backup`")
    assert checks["verify"]["summary"] == "no verify run yet: run `chikanemail verify`"

    # The text: codes first (for grep), then the check and its finding in Danish.
    lines = text.stdout.splitlines()
    listener_line = next(line for line in lines if " listeners " in line)
    assert listener_line.startswith("fail")
    assert listener_line.endswith(f"SMTP/LMTP-modtager: intet svarer på 127.0.0.1:{port} "
                                  f"(SMTP): {os_words}")
    backup_line = next(line for line in lines if " backup " in line)
    assert backup_line.startswith("warn")
    assert backup_line.endswith("Seneste sikkerhedskopi: ingen sikkerhedskopi registreret: "
                                "kør `chikanemail backup`")
    warnings = [check["name"] for check in checks.values() if check["status"] == "warn"]
    assert {"verify", "backup"} <= set(warnings)
    assert lines[-1] == f"UNHEALTHY  Fejl: en kontrol mislykkedes ({len(warnings)} advarsler)"
    for check in checks.values():
        assert check["summary"] not in text.stdout, check
    assert [word for word in ENGLISH_WORDS if word in text.stdout.lower()] == []
