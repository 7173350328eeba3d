"""Backup and restore (issue 18): a snapshot taken while mail arrives restores, into a new
folder or a new PostgreSQL schema, exactly the state at the snapshot's audit head; a second
backup copies only new blobs; a flipped byte refuses the restore, naming the blob; restore
applies retention (holds kept) and refuses a target that is not empty; a snapshot survives a
round trip through restic, and its SQLite database restores into PostgreSQL as well; on a
new machine the config and the files it names are put back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from notifier.case_actions import CaseActions
from notifier.plan.checklist import calendar_for
from storage.backup.manifest import MANIFEST_NAME, read_manifest
from storage.backup_record import last_backup
from storage.cases import list_cases, lock_case
from storage.database import Database
from storage.holds import set_hold
from storage.messages import list_messages
from storage.models import AuditEvent, utc_now
from storage.settings import RetentionSettings, StorageSettings
from tests.mail_flow import database_of, report, send
from tests.support import (
    DaemonThread,
    describe,
    message_rows,
    postgres_schema,
    run_cli,
    wait_until,
    write_toml,
)


def write_config(path: Path, storage: StorageSettings) -> Path:
    return write_toml(path, {"storage": {"data_dir": storage.data_dir,
                                         "database_url": storage.database_url}})


def cli(config_file: Path, *args: str) -> Any:
    return run_cli(["--config", str(config_file), *args])


def cli_json(config_file: Path, *args: str) -> Any:
    result = cli(config_file, *args, "--json")
    assert result.exit_code == 0, describe(result)
    return json.loads(result.output)


def processed(daemon: DaemonThread, count: int) -> bool:
    rows = message_rows(daemon.config.storage.database_url)
    return len(rows) >= count and all(row.state == "processed" for row in rows)


def send_reports(daemon: DaemonThread, first: int, count: int) -> None:
    for index in range(first, first + count):
        sender = f"ansat{index}@kommune.example"
        send(daemon, report(f"VS: Besked nummer {index}", sender=sender), mail_from=sender)


def backup_after_reports(daemon: DaemonThread, config_file: Path, snapshot: Path,
                         count: int) -> Any:
    """Send `count` reports, wait until they are processed, back up; the backup's JSON."""
    send_reports(daemon, 0, count)
    wait_until(lambda: processed(daemon, count), timeout=30, message="reports processed")
    return cli_json(config_file, "backup", "--to", str(snapshot))


def cases_opened_up_to(daemon: DaemonThread, seq: int) -> set[str]:
    """The numbers of the cases the source's audit log opened at or before event `seq`."""
    database = database_of(daemon)
    try:
        with database.read() as session:
            return {number for number in session.execute(
                select(AuditEvent.case_number).where(AuditEvent.action == "case-opened",
                                                     AuditEvent.seq <= seq)).scalars()
                    if number is not None}
    finally:
        database.dispose()


def events_up_to(events: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    return [event for event in events if event["seq"] <= seq]


@pytest.fixture
def source(tmp_path: Path, daemon: DaemonThread) -> Path:
    """The running daemon's config file."""
    return write_config(tmp_path / "source.toml", daemon.config.storage)


def test_a_backup_under_load_restores_the_state_at_its_audit_head(
        tmp_path: Path, database_url: str, daemon: DaemonThread, source: Path) -> None:
    send_reports(daemon, 0, 3)
    wait_until(lambda: processed(daemon, 3), timeout=30, message="three processed")
    sent: list[int] = []
    stop = threading.Event()

    def keep_sending() -> None:
        while not stop.is_set():
            send_reports(daemon, 100 + len(sent), 1)
            sent.append(1)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        wait_until(lambda: len(sent) >= 2, message="mail arriving")
        snapshot = tmp_path / "snapshot"
        backup = cli_json(source, "backup", "--to", str(snapshot))
        during = len(sent)
        wait_until(lambda: len(sent) > during, message="mail after the backup")
    finally:
        stop.set()
        sender.join(30)
    total = 3 + len(sent)
    manifest = read_manifest(snapshot)
    head = manifest.audit_seq
    assert (backup["audit_seq"], backup["audit_hash"]) == (head, manifest.audit_hash)
    assert backup["copied"] == len(manifest.blobs) > 0 and backup["already_there"] == 0
    assert {blob.kind for blob in manifest.blobs} >= {"raw", "derived"}
    assert [item.key for item in manifest.files] == ["config"]

    if not database_url.startswith("sqlite"):
        embedded = write_config(tmp_path / "embedded.toml",
                                StorageSettings(data_dir=str(tmp_path / "embedded")))
        refused = cli(embedded, "restore", "--from", str(snapshot))
        assert refused.exit_code == 1
        assert "it restores into PostgreSQL only" in refused.output

    with restore_target(tmp_path, database_url) as target:
        restored = cli(target, "restore", "--from", str(snapshot), "--data-dir",
                       str(tmp_path / "restored"))
        assert restored.exit_code == 0, describe(restored)
        # In Danish, the default language.
        assert f"seneste hændelse {head} med hash {manifest.audit_hash}" in restored.output
        assert restored.output.rstrip().endswith("OK"), restored.output
        check = cli(target, "verify")
        assert check.exit_code == 0, describe(check)

        source_cases = cli_json(source, "cases", "list")
        restored_cases = cli_json(target, "cases", "list")
        opened = cases_opened_up_to(daemon, head)
        assert len(opened) >= 3
        received = {row["sha256"] for row in cli_json(target, "messages", "list")}
        assert len(received) < total == len(message_rows(daemon.config.storage.database_url))
        assert {case["number"] for case in restored_cases} == opened
        assert restored_cases == [case for case in source_cases if case["number"] in opened]
        for number in sorted(opened):
            source_events = cli_json(source, "audit", "show", number)
            restored_events = cli_json(target, "audit", "show", number)
            assert events_up_to(restored_events, head) == events_up_to(source_events, head)
            assert {event["action"] for event in restored_events
                    if event["seq"] > head} <= {"viewed"}


@contextmanager
def restore_target(tmp_path: Path, database_url: str) -> Iterator[Path]:
    """A config for an empty target: a new data directory and, on PostgreSQL, a new schema."""
    with ExitStack() as stack:
        url = "" if database_url.startswith("sqlite") else stack.enter_context(postgres_schema())
        storage = StorageSettings(data_dir=str(tmp_path / "restored"), database_url=url)
        yield write_config(tmp_path / "restored.toml", storage)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_second_backup_copies_only_new_blobs_and_a_flipped_byte_refuses_the_restore(
        tmp_path: Path, daemon: DaemonThread, source: Path) -> None:
    snapshot = tmp_path / "snapshot"
    first = backup_after_reports(daemon, source, snapshot, 2)
    assert first["copied"] == first["blobs"] > 0 and first["already_there"] == 0
    send_reports(daemon, 2, 1)
    wait_until(lambda: processed(daemon, 3), timeout=30, message="third processed")
    # Work files of a killed backup (a pid above Linux's pid_max never runs) go; a running
    # process's stay.
    killed = snapshot / "blobs" / f".{'0' * 64}.{2 ** 22 + 1}.tmp"
    killed.write_bytes(b"half a blob")
    running = snapshot / f".another-writer.{os.getppid()}.tmp"
    running.write_bytes(b"{")
    second = cli_json(source, "backup", "--to", str(snapshot))
    assert not killed.exists()
    assert running.exists()
    running.unlink()
    assert second["already_there"] == first["blobs"]
    assert second["copied"] == second["blobs"] - first["blobs"] > 0
    assert second["audit_seq"] > first["audit_seq"]
    databases = [path.name for path in snapshot.iterdir() if path.name.startswith("database-")]
    assert databases == [read_manifest(snapshot).database_file]
    assert last_backup(daemon.config.storage.data_path) == read_manifest(snapshot).created_at

    raw = next(blob for blob in read_manifest(snapshot).blobs if blob.kind == "raw")
    damaged = snapshot / raw.relative_path
    os.chmod(damaged, 0o600)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    target = write_config(tmp_path / "restored.toml",
                         StorageSettings(data_dir=str(tmp_path / "restored")))
    refused = cli(target, "restore", "--from", str(snapshot))
    assert refused.exit_code == 1
    assert f"raw blob blobs/{raw.sha256}" in refused.output
    assert "restore refused" in refused.output
    restored = tmp_path / "restored"
    assert not (restored / "chikanemail.sqlite3").exists()
    assert not list(restored.rglob(raw.sha256))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_restore_refuses_an_incomplete_snapshot_and_a_target_that_is_not_empty(
        tmp_path: Path, daemon: DaemonThread, source: Path) -> None:
    snapshot = tmp_path / "snapshot"
    cli_json(source, "backup", "--to", str(snapshot))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("here before")
    target = write_config(tmp_path / "target.toml", StorageSettings(data_dir=str(occupied)))
    refused = cli(target, "restore", "--from", str(snapshot))
    assert refused.exit_code == 1 and "is not empty" in refused.output, describe(refused)
    assert sorted(path.name for path in occupied.iterdir()) == ["something"]

    (snapshot / MANIFEST_NAME).unlink()
    fresh = write_config(tmp_path / "fresh.toml",
                         StorageSettings(data_dir=str(tmp_path / "fresh")))
    incomplete = cli(fresh, "restore", "--from", str(snapshot))
    assert incomplete.exit_code == 1 and "not a complete snapshot" in incomplete.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_restore_applies_retention_and_keeps_legal_holds(
        tmp_path: Path, config: Any) -> None:
    # The source's scheduler must not delete before the backup: its retention is off.
    config = replace(config, retention=RetentionSettings(enabled=False))
    with DaemonThread(config) as daemon:
        send_reports(daemon, 0, 3)
        wait_until(lambda: processed(daemon, 3), timeout=30, message="three processed")
    database = database_of(daemon)
    try:
        cases = {case.reporter: case.number for case in list_cases(database)}
        expired, held = cases["ansat0@kommune.example"], cases["ansat1@kommune.example"]
        long_ago = utc_now() - timedelta(days=RetentionSettings().closed_case_days + 1)
        with database.write() as session:
            actions = CaseActions(calendar_for(config.plan, config.ui.zone))
            for number in (expired, held):
                actions.close(session, lock_case(session, number), "Afsluttet", actor="test",
                              now=long_ago)
        set_hold(database, held, "Politiet har bedt om det", "test", utc_now())
        expired_raw = {message.sha256 for message in list_messages(database)
                       if message.case_id is not None
                       and message.mail_from == "ansat0@kommune.example"}
    finally:
        database.dispose()
    source = write_config(tmp_path / "source.toml", config.storage)
    snapshot = tmp_path / "snapshot"
    cli_json(source, "backup", "--to", str(snapshot))
    assert expired_raw <= {blob.sha256 for blob in read_manifest(snapshot).blobs}

    target = write_config(tmp_path / "restored.toml",
                          StorageSettings(data_dir=str(tmp_path / "restored")))
    restored = cli_json(target, "restore", "--from", str(snapshot))
    assert restored["retention_deleted"] == 1 and restored["verify"]["ok"]
    numbers = {case["number"] for case in cli_json(target, "cases", "list")}
    assert numbers == set(cases.values()) - {expired}
    assert held in numbers
    assert len(expired_raw) == 1
    assert not list((tmp_path / "restored" / "blobs").rglob(next(iter(expired_raw))))


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_snapshot_goes_through_restic_and_restores_into_sqlite_and_postgresql(
        tmp_path: Path, daemon: DaemonThread, source: Path) -> None:
    snapshot = tmp_path / "snapshot"
    backup = backup_after_reports(daemon, source, snapshot, 1)
    environment = {**os.environ, "RESTIC_REPOSITORY": str(tmp_path / "restic-repo"),
                   "RESTIC_PASSWORD": "test-only", "RESTIC_CACHE_DIR": str(tmp_path / "cache")}

    def restic(*args: str) -> None:
        done = subprocess.run(["restic", "--quiet", *args], env=environment,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr

    restic("init")
    restic("backup", str(snapshot))
    restic("restore", "latest", "--target", str(tmp_path / "from-restic"))
    came_back = tmp_path / "from-restic" / snapshot.relative_to(snapshot.anchor)
    assert read_manifest(came_back).audit_hash == backup["audit_hash"]
    target = write_config(tmp_path / "restored.toml",
                          StorageSettings(data_dir=str(tmp_path / "restored")))
    restored = cli_json(target, "restore", "--from", str(came_back))
    assert restored["verify"]["ok"] and restored["blobs"] == backup["blobs"] > 0
    cases = cli_json(target, "cases", "list")
    assert len(cases) == 1

    # The same SQLite snapshot into a new PostgreSQL schema: from the embedded database to
    # a server. Cases and audit log are the same; so is the next case number.
    with postgres_schema() as url:
        server = write_config(tmp_path / "server.toml", StorageSettings(
            data_dir=str(tmp_path / "server-data"), database_url=url))
        moved = cli_json(server, "restore", "--from", str(came_back))
        assert moved["verify"]["ok"] and moved["audit_seq"] == backup["audit_seq"]
        assert cli_json(server, "cases", "list") == cases
        number = cases[0]["number"]
        assert events_up_to(cli_json(server, "audit", "show", number), backup["audit_seq"]) \
            == events_up_to(cli_json(target, "audit", "show", number), backup["audit_seq"])
        assert cli(server, "verify").exit_code == 0
        database = Database(url)
        try:
            with database.write() as session:
                for table in ("message", "case_file"):  # new rows get new ids
                    highest, following = session.execute(text(
                        f"SELECT max(id), nextval(pg_get_serial_sequence('{table}', 'id')) "
                        f"FROM {table}")).one()
                    assert following > highest >= 1
        finally:
            database.dispose()


def test_a_restore_on_a_new_machine_puts_the_config_and_its_files_back(
        tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    password = etc / "smtp-password"
    password.write_text("relay secret\n")
    os.chmod(password, 0o640)
    config_file = write_toml(etc / "chikanemail.toml", {
        "storage": {"data_dir": str(tmp_path / "old-data")},
        "notify": {"username": "chikanemail", "password_file": "smtp-password"}})
    upgraded = cli(config_file, "db", "upgrade")
    assert upgraded.exit_code == 0, describe(upgraded)
    snapshot = tmp_path / "snapshot"
    backup = cli_json(config_file, "backup", "--to", str(snapshot))
    assert backup["files"] == ["config", "notify.password_file"]

    # A new machine: none of /etc, an empty data directory.
    config_text = config_file.read_bytes()
    shutil.rmtree(etc)
    restored = cli(config_file, "restore", "--from", str(snapshot), "--data-dir",
                   str(tmp_path / "new-data"))
    assert restored.exit_code == 0, describe(restored)
    assert config_file.read_bytes() == config_text
    assert password.read_text() == "relay secret\n"
    assert oct(password.stat().st_mode & 0o777) == oct(0o640)
    # In Danish, the default language.
    assert f"config: lagt tilbage i {config_file}" in restored.output
    assert f"notify.password_file: lagt tilbage i {password}" in restored.output
    assert f"sæt [storage] data_dir = \"{tmp_path / 'new-data'}\"" in restored.output
    assert (tmp_path / "new-data" / "chikanemail.sqlite3").is_file()

    # A file already at its place is never overwritten: left alone, the copy named.
    password.write_text("a newer secret\n")
    again = cli_json(config_file, "restore", "--from", str(snapshot), "--data-dir",
                     str(tmp_path / "third-data"))
    outcomes = {item["key"]: item["outcome"] for item in again["files"]}
    assert outcomes == {"config": "already in place", "notify.password_file": "differs"}
    assert password.read_text() == "a newer secret\n"

    # A damaged copy refuses the restore before anything is written, naming the file.
    copy = snapshot / next(item.relative_path for item in read_manifest(snapshot).files
                           if item.key == "notify.password_file")
    os.chmod(copy, 0o600)
    copy.write_text("relay secreT\n")
    refused = cli(config_file, "restore", "--from", str(snapshot), "--data-dir",
                  str(tmp_path / "fourth-data"))
    assert refused.exit_code == 1
    assert "notify.password_file: the copy files/01-smtp-password does not match" in \
        refused.output
    assert not (tmp_path / "fourth-data").exists()


def test_the_oidc_client_secret_is_backed_up_with_the_config(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "oidc-secret").write_text("client secret\n")
    config_file = write_toml(etc / "chikanemail.toml", {
        "storage": {"data_dir": str(tmp_path / "data")},
        "web.oidc": {"provider": "google", "issuer": "https://accounts.google.com",
                     "client_id": "chikanemail", "client_secret_file": "oidc-secret",
                     "domains": ["kommune.example"]}})
    upgraded = cli(config_file, "db", "upgrade")
    assert upgraded.exit_code == 0, describe(upgraded)
    backup = cli_json(config_file, "backup", "--to", str(tmp_path / "snapshot"))
    assert backup["files"] == ["config", "web.oidc.client_secret_file"]
