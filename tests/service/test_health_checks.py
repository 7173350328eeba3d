"""`chikanemail health` names what an admin must act on (issue 18): free space, the SMTP
451s of the last 15 minutes (from the status file a running daemon publishes), mail left on
IMAP servers, the worker's backlog, the age of the last backup."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import smtplib
import ssl
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from intake.receive.smtp.answers import (
    STATUS_FILE_NAME,
    RefusalReason,
    SmtpAnswers,
    read_status_file,
    refusal_reason,
    session_error_reason,
    status_file_path,
)
from intake.service.config import AppConfig
from intake.service.daemon import open_services
from intake.service.health import HEALTH_CHECKS, run_health_checks
from intake.service.health.findings import CheckStatus, Finding
from intake.service.settings import HealthSettings, ImapMailbox
from storage.backup_record import RECORD_NAME, last_backup, record_backup
from storage.database import Database
from storage.imap_state import record_oversized
from storage.messages import DeliveryEnvelope
from storage.models import MessageSource, utc_now
from tests.support import (
    INTAKE_ADDRESS,
    DaemonThread,
    describe,
    make_config,
    run_cli,
    wait_until,
    write_toml,
)

RAW = (b"From: Ansat <ansat@kommune.example>\r\nTo: <chikanemail@kommune.example>\r\n"
       b"Subject: Fwd: grim besked\r\n\r\nSe nedenfor.\r\n")


def sqlite_config(tmp_path: Path, **health: Any) -> AppConfig:
    """A config on SQLite with the given [health] settings (status file under tmp_path)."""
    config = make_config(tmp_path / "data", f"sqlite:///{tmp_path / 'test.sqlite3'}")
    settings = HealthSettings(status_dir=str(tmp_path / "run"))
    return replace(config, health=replace(settings, **health))


def finding(config: AppConfig, name: str, *, now: datetime | None = None) -> Finding:
    """One check's finding (with the database check before it when it needs one)."""
    checks = tuple(check for check in HEALTH_CHECKS if check.name in ("database", name))
    results = {result.name: result.finding
               for result in run_health_checks(config, checks, now=now)}
    return results[name]


# -- free space --------------------------------------------------------------------------


def test_free_space_warns_and_fails_below_its_thresholds(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    usage = os.statvfs(tmp_path / "data")
    free_mb = usage.f_bavail * usage.f_frsize // (1024 * 1024)

    ok = finding(sqlite_config(tmp_path, min_free_mb=0, fail_free_mb=0), "free-space")
    assert ok.status == CheckStatus.OK, ok
    assert abs(ok.details["free_mb"] - free_mb) < 64  # other tests write meanwhile

    low = finding(sqlite_config(tmp_path, min_free_mb=free_mb + 1000, fail_free_mb=0),
                  "free-space")
    assert low.status == CheckStatus.WARN, low
    assert low.summary.startswith("free space low: ")
    assert f"(warn below {free_mb + 1000} MB)" in low.summary

    floor = free_mb + 1000
    failed = finding(sqlite_config(tmp_path, min_free_mb=floor, fail_free_mb=floor),
                     "free-space")
    assert failed.status == CheckStatus.FAIL, failed
    assert failed.summary.startswith("free space: only ")
    assert f"(fail below {floor} MB)" in failed.summary


def test_free_space_is_skipped_without_a_data_directory(tmp_path: Path) -> None:
    result = finding(sqlite_config(tmp_path), "free-space")
    assert result.status == CheckStatus.SKIPPED
    assert "does not exist" in result.summary


def test_the_free_space_thresholds_are_checked_at_load(tmp_path: Path) -> None:
    config_file = write_toml(tmp_path / "bad.toml", {
        "health": {"min_free_mb": 100, "fail_free_mb": 500}})
    result = run_cli(["--config", str(config_file), "health"])
    assert result.exit_code != 0
    assert "health.fail_free_mb: must be between 0 and health.min_free_mb (100)" in (
        result.stdout + result.stderr), describe(result)


# -- 451s of the last 15 minutes ---------------------------------------------------------


def test_refusal_reasons() -> None:
    assert refusal_reason(OSError(errno.ENOSPC, "No space left on device")) == (
        RefusalReason.STORAGE_FULL)
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as quota:
            raise RuntimeError("commit failed") from quota
    except RuntimeError as wrapped:
        assert refusal_reason(wrapped) == RefusalReason.STORAGE_FULL
    full = OperationalError("INSERT …", {}, Exception("database or disk is full"))
    assert refusal_reason(full) == RefusalReason.STORAGE_FULL
    down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert refusal_reason(down) == RefusalReason.DATABASE
    assert refusal_reason(PermissionError(errno.EACCES, "denied")) == RefusalReason.STORAGE
    assert refusal_reason(RuntimeError("a bug")) == RefusalReason.OTHER
    # In aiosmtpd's handle_exception an I/O error is the connection's, not the store's.
    try:
        try:
            raise ssl.SSLError(1, "wrong version number")
        except ssl.SSLError as handshake:
            raise RuntimeError("TLS setup failed") from handshake
    except RuntimeError as tls_failure:
        assert session_error_reason(tls_failure) is None
    assert session_error_reason(BrokenPipeError(errno.EPIPE, "gone")) is None
    assert session_error_reason(down) == RefusalReason.DATABASE
    assert session_error_reason(OSError(errno.ENOSPC, "full")) == RefusalReason.STORAGE_FULL
    assert session_error_reason(RuntimeError("a bug")) == RefusalReason.OTHER


def test_smtp_answers_from_the_status_file(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    missing = finding(config, "smtp-answers")
    assert missing.status == CheckStatus.WARN
    assert "no status from the daemon at" in missing.summary

    path = status_file_path(config.health.status_dir, config.storage.data_path)
    assert path == tmp_path / "run" / STATUS_FILE_NAME
    answers = SmtpAnswers(path)
    answers.publish()
    assert finding(config, "smtp-answers").summary == "no 451 in the last 15 min"

    start = utc_now()
    answers.refused(RefusalReason.STORAGE_FULL, start - timedelta(minutes=2))
    answers.refused(RefusalReason.STORAGE_FULL, start - timedelta(minutes=1))
    answers.refused(RefusalReason.DATABASE, start)
    answers.publish()
    failed = finding(config, "smtp-answers", now=start)
    assert failed.status == CheckStatus.FAIL, failed
    assert failed.summary == ("3 messages answered 451 in the last 15 min (storage full: 2, "
                              "database: 1), the last 0 s ago; no message stored since")
    assert failed.details["refused_451"]["storage-full"] == 2
    # The same finding as a Danish reader reads it: counts, kinds and ages in words.
    assert failed.in_language("da") == (
        "3 mails fik svaret 451 de seneste 15 minutter (fuldt lager: 2, databasefejl: 1), den "
        "seneste for 0 sekunder siden; ingen mails gemt siden")
    assert failed.in_language("en") == failed.summary

    assert answers.stored(start + timedelta(seconds=30)) is True  # news: the first since
    assert answers.stored(start + timedelta(seconds=40)) is False
    answers.publish()
    recovered = finding(config, "smtp-answers", now=start + timedelta(minutes=1))
    assert recovered.status == CheckStatus.WARN, recovered
    assert recovered.summary.endswith("the last 1 min ago; mail is stored again since 20 s ago")
    assert recovered.in_language("da").endswith(
        "den seneste for 1 minut siden; mails gemmes igen, senest for 20 sekunder siden")

    later = finding(config, "smtp-answers", now=start + timedelta(minutes=16))
    assert later.status == CheckStatus.OK
    assert later.details["last_refused_at"] is None

    answers.refused(RefusalReason.OTHER, start + timedelta(minutes=15))
    answers.publish()
    other = finding(config, "smtp-answers", now=start + timedelta(minutes=16))
    assert other.status == CheckStatus.WARN
    assert other.summary.startswith("1 message answered 451 in the last 15 min for errors")
    assert other.in_language("da").startswith(
        "1 mail fik svaret 451 de seneste 15 minutter på grund af fejl hos os (se loggen)")


def test_a_failed_status_write_is_logged_once(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("not a folder")
    answers = SmtpAnswers(blocker / STATUS_FILE_NAME)
    with caplog.at_level(logging.INFO, logger="chikanemail.health"):
        answers.publish()
        answers.publish()
        blocker.unlink()
        answers.publish()
    messages = [record.getMessage() for record in caplog.records]
    assert len([text for text in messages if "cannot write the health status" in text]) == 1
    assert any("written again" in text for text in messages), messages
    assert read_status_file(blocker / STATUS_FILE_NAME) is not None
    assert not [name for name in os.listdir(blocker) if name != STATUS_FILE_NAME]


@pytest.mark.integration  # a daemon
def test_a_running_daemon_publishes_its_451s(tmp_path: Path) -> None:
    """A spool folder that cannot be used makes the daemon answer 451; `health` (its own
    process's view: the CLI) fails naming them, and says so no longer once mail is stored."""
    config = sqlite_config(tmp_path)
    config_file = write_toml(tmp_path / "health.toml", {
        "storage": {"data_dir": str(config.storage.data_path),
                    "database_url": config.storage.effective_database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"enabled": False},  # the listener check needs the port; not this test's
        "health": {"status_dir": config.health.status_dir, "min_free_mb": 0,
                   "fail_free_mb": 0},
    })
    status_file = tmp_path / "run" / STATUS_FILE_NAME
    with DaemonThread(config) as daemon:
        host, port = daemon.smtp_address
        wait_until(status_file.exists, message="the status file at start")
        incoming = config.storage.blob_root / ".incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.write_text("in the way")  # the spool file cannot be created: 451
        with smtplib.SMTP(host, port) as client, pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("ansat@kommune.example", [INTAKE_ADDRESS], RAW)
        assert refused.value.smtp_code == 451

        def storage_451s() -> int:
            status = read_status_file(status_file)
            return len(status["refused_451"]["storage"]["times"]) if status else 0
        wait_until(storage_451s, message="the 451 in the status file")

        config_on = replace(config, smtp=replace(config.smtp, port=port))
        failed = finding(config_on, "smtp-answers")
        assert failed.status == CheckStatus.FAIL, failed
        assert "(storage: 1)" in failed.summary and "no message stored since" in failed.summary
        result = run_cli(["--config", str(config_file), "health", "--json"])
        assert result.exit_code == 0, describe(result)  # enabled = false there: skipped
        assert {check["name"] for check in json.loads(result.stdout)["checks"]} == {
            check.name for check in HEALTH_CHECKS}

        incoming.unlink()
        incoming.mkdir(mode=0o700)
        with smtplib.SMTP(host, port) as client:
            assert client.sendmail("ansat@kommune.example", [INTAKE_ADDRESS], RAW) == {}

        def stored_again() -> bool:
            status = read_status_file(status_file)
            return bool(status and status["last_stored_at"])
        wait_until(stored_again, message="the 250 in the status file")
        recovered = finding(config_on, "smtp-answers")
        assert recovered.status == CheckStatus.WARN, recovered
        assert "mail is stored again since" in recovered.summary


# -- mail left on IMAP servers -----------------------------------------------------------


def test_mail_left_on_the_imap_server_is_a_warning(config: AppConfig, database: Database,
                                                  tmp_path: Path) -> None:
    assert finding(config, "imap-left").status == CheckStatus.SKIPPED  # no [[imap]]
    post = ImapMailbox(name="post", host="imap.kommune.example", username="intake")
    with_imap = replace(config, imap=(post,))
    none_left = finding(with_imap, "imap-left")
    assert (none_left.status, none_left.summary) == (CheckStatus.OK,
                                                     "no mail left on the server")

    record_oversized(database, "post", "INBOX", uidvalidity=7, uid=17, size=60 * 1024 * 1024)
    record_oversized(database, "post", "INBOX", uidvalidity=7, uid=18, size=70 * 1024 * 1024)
    left = finding(with_imap, "imap-left", now=utc_now() + timedelta(hours=3))
    assert left.status == CheckStatus.WARN, left
    assert left.summary.startswith("post: 2 left on the server (over max_message_bytes), "
                                   "oldest seen 3 h ago (UID 17 in INBOX, 60.0 MiB)")
    assert left.details["left"] == 2
    assert left.in_language("da").startswith(  # ages in words, the Danish decimal comma
        "post: 2 ligger tilbage på serveren (over max_message_bytes), den ældste set for 3 "
        "timer siden (UID 17 i INBOX, 60,0 MiB)")

    config_file = write_toml(tmp_path / "health.toml", {
        "storage": {"data_dir": str(config.storage.data_path),
                    "database_url": config.storage.effective_database_url},
        "smtp": {"enabled": False},
        "health": {"min_free_mb": 0, "fail_free_mb": 0},
    })
    with open(config_file, "a", encoding="utf-8") as handle:
        handle.write('[[imap]]\nname = "post"\nhost = "imap.kommune.example"\n'
                     'username = "intake"\npassword_file = "/dev/null"\n')
    result = run_cli(["--config", str(config_file), "health"])
    line = next(line for line in result.stdout.splitlines() if " imap-left " in line)
    # The codes first, then the finding in the workplace's language (Danish by default).
    assert line.startswith("warn") and "2 ligger tilbage på serveren" in line, describe(result)


# -- the worker's backlog ----------------------------------------------------------------


def test_the_backlog_warns_when_its_oldest_waits_too_long(config: AppConfig) -> None:
    config = replace(config, health=HealthSettings(backlog_max_age_minutes=30))
    services = open_services(config)  # migrates; no worker runs
    try:
        empty = finding(config, "backlog")
        assert (empty.status, empty.summary) == (CheckStatus.OK,
                                                 "0 messages waiting to be processed")
        for number in range(2):
            services.intake.accept_message(RAW + b"%d\r\n" % number,
                                           DeliveryEnvelope(MessageSource.SMTP))
    finally:
        services.close()
    fresh = finding(config, "backlog")
    assert fresh.status == CheckStatus.OK, fresh
    assert fresh.summary.startswith("2 messages waiting to be processed, oldest received ")
    stuck = finding(config, "backlog", now=utc_now() + timedelta(minutes=45))
    assert stuck.status == CheckStatus.WARN, stuck
    assert "oldest received 45 min ago: longer than 30 min" in stuck.summary
    assert stuck.details["waiting"] == 2


# -- the last backup ---------------------------------------------------------------------


def test_backup_record_round_trip(tmp_path: Path) -> None:
    assert last_backup(tmp_path) is None
    at = datetime(2026, 12, 6, 23, 0, 5, tzinfo=UTC)
    record_backup(tmp_path, at, audit_seq=42)
    assert last_backup(tmp_path) == at
    assert json.loads((tmp_path / RECORD_NAME).read_text()) == {
        "at": "2026-12-06T23:00:05+00:00", "audit_seq": 42}
    assert os.listdir(tmp_path) == [RECORD_NAME]  # no temporary file left
    with pytest.raises(ValueError, match="time zone"):
        record_backup(tmp_path, datetime(2026, 12, 6), audit_seq=1)
    (tmp_path / RECORD_NAME).write_text("{}")
    with pytest.raises(ValueError, match="is not a backup record"):
        last_backup(tmp_path)


def test_backup_age_warns_after_the_configured_hours(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    unchecked = finding(sqlite_config(tmp_path), "backup")
    assert unchecked.status == CheckStatus.SKIPPED
    config = sqlite_config(tmp_path, backup_max_age_hours=26)
    none = finding(config, "backup")
    assert (none.status, none.summary) == (CheckStatus.WARN,
                                           "no backup recorded: run `chikanemail backup`")
    record_backup(config.storage.data_path, utc_now(), audit_seq=3)
    recent = finding(config, "backup")
    assert recent.status == CheckStatus.OK and recent.summary.startswith("last backup ")
    old = finding(config, "backup", now=utc_now() + timedelta(hours=27))
    assert old.status == CheckStatus.WARN
    assert old.summary == "last backup 1 d ago: older than backup_max_age_hours (26)"
