"""`chikanemail verify`, `verify_if_due` and `chikanemail health` on a store filled by the
real accept path and pipeline: a clean store passes; a flipped bit, a deleted blob, a stray
file, a changed or removed audit row are each named; health follows the last verify."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, select, text

from intake.pipeline.worker import Worker
from intake.service.config import AppConfig
from intake.service.daemon import open_services, pipeline_for
from storage import audit
from storage.audit_words import label
from storage.blobstore import BlobStore
from storage.database import Database
from storage.messages import DeliveryEnvelope, list_messages
from storage.models import AuditEvent, BlobDeletion, Evidence, VerifyRun, utc_now
from storage.verify import (
    RECENT_SECONDS,
    VerifyProgress,
    check_stores,
    verify,
    verify_if_due,
)
from tests.support import (
    CORPUS,
    INTAKE_ADDRESS,
    describe,
    make_config,
    run_cli,
    write_toml,
)

# Mails with attachments and images, so both stores hold several kinds of blob.
MAILS = (
    "cpython/msg_07.txt",
    "enmime/mail/html-mime-inline.raw",
    "django-mailbox/message_with_rfc822_attachment.eml",
    "flanker/iphone.eml",
)
OLD = time.time() - 2 * RECENT_SECONDS  # a file this old may be called a stray


@dataclass(frozen=True)
class Filled:
    """A data directory with processed mails, its database, and a config file for the CLI."""

    config: AppConfig
    config_file: Path
    database: Database

    @property
    def blobs(self) -> BlobStore:
        return BlobStore(self.config.storage.blob_root)

    @property
    def derived(self) -> BlobStore:
        return BlobStore(self.config.storage.derived_root)

    def verify_json(self) -> tuple[Result, dict[str, Any]]:
        result = run_cli(["--config", str(self.config_file), "verify", "--json"])
        return result, json.loads(result.stdout)

    def health_json(self) -> tuple[Result, dict[str, Any]]:
        result = run_cli(["--config", str(self.config_file), "health", "--json"])
        report = json.loads(result.stdout)
        return result, {check["name"]: check for check in report["checks"]} | {
            "healthy": report["healthy"]}


@pytest.fixture
def filled(tmp_path: Path, database_url: str) -> Iterator[Filled]:
    """Four corpus mails accepted and run through the whole pipeline (OCR off)."""
    config = make_config(tmp_path / "data", database_url, extract={"ocr": False})
    services = open_services(config)
    try:
        for name in MAILS:
            services.intake.accept_message((CORPUS / name).read_bytes(),
                                           DeliveryEnvelope(source="ingest"))
        worker = Worker(services.store, services.database, config.worker, pipeline_for(config))
        worker.process_until_idle()
        assert {row.state for row in list_messages(services.database)} == {"processed"}
    finally:
        services.close()
    config_file = write_toml(tmp_path / "chikanemail.toml", {
        "storage": {"data_dir": str(config.storage.data_path), "database_url": database_url},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"enabled": False},  # no daemon runs here: the listener check is skipped
        "ui": {"language": "en"},  # the English texts these tests read
    })
    database = Database(database_url)
    yield Filled(config, config_file, database)
    database.dispose()


def files_in(store: BlobStore) -> list[str]:
    return list(store.iter_all())


def flip_one_bit(path: Path) -> None:
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.chmod(path, 0o400)


def evidence_rows(database: Database) -> list[Evidence]:
    with database.read() as session:
        rows = list(session.execute(select(Evidence).order_by(Evidence.id)).scalars())
        session.expunge_all()
    return rows


def execute(database: Database, statement: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(text(statement))


# -- verify ----------------------------------------------------------------------------


def test_a_clean_store_verifies_and_the_run_is_kept(filled: Filled) -> None:
    blobs, derived = files_in(filled.blobs), files_in(filled.derived)
    assert len(blobs) > len(MAILS) and derived  # parts and derived text/thumbnails exist

    result = run_cli(["--config", str(filled.config_file), "verify"])
    assert result.exit_code == 0, describe(result)
    assert result.stdout.splitlines()[-1] == "OK", describe(result)
    assert f"Checked {len(blobs) + len(derived)} blobs" in result.stdout

    result, report = filled.verify_json()
    assert result.exit_code == 0, describe(result)
    assert report["ok"] is True and report["problems"] == []
    assert report["blobs"] == len(blobs) + len(derived)
    assert report["bytes"] == sum(filled.blobs.path(sha).stat().st_size for sha in blobs) + sum(
        filled.derived.path(sha).stat().st_size for sha in derived)
    assert report["audit"]["broken"] is None and report["audit"]["events"] > 0

    with filled.database.read() as session:
        runs = list(session.execute(select(VerifyRun).order_by(VerifyRun.id)).scalars())
    assert [(run.trigger, run.ok, run.problems) for run in runs] == [("cli", True, [])] * 2
    assert runs[-1].id == report["run_id"]
    event = audit.last_event(filled.database)
    assert event is not None and event.action == "verified"
    assert event.actor.startswith("cli:")
    assert event.details == {"ok": True, "blobs": report["blobs"], "bytes": report["bytes"],
                             "problems": 0}
    assert audit.check_chain(filled.database).ok  # the runs' own events keep the chain whole


def test_a_flipped_bit_is_named_as_a_mismatch(filled: Filled) -> None:
    part = evidence_rows(filled.database)[-1]
    flip_one_bit(filled.blobs.path(part.sha256))

    result = run_cli(["--config", str(filled.config_file), "verify"])
    assert result.exit_code == 1, describe(result)
    relative = f"blobs/{part.sha256[:2]}/{part.sha256[2:4]}/{part.sha256}"
    assert f"content does not match its name (mismatch) {relative}: its content hashes to " \
        in result.stdout, describe(result)
    assert result.stdout.splitlines()[-1] == "FAILED: 1 problem"

    result, report = filled.verify_json()
    assert result.exit_code == 1
    assert [(p["kind"], p["store"], p["sha256"], p["path"]) for p in report["problems"]] == [
        ("mismatch", "blobs", part.sha256, relative)]
    with filled.database.read() as session:
        run = session.execute(select(VerifyRun).order_by(VerifyRun.id.desc())).scalars().first()
    assert run is not None and run.ok is False
    assert [problem["sha256"] for problem in run.problems] == [part.sha256]


def test_a_writable_blob_and_a_wrong_size_are_named(filled: Filled) -> None:
    (message, *_) = list_messages(filled.database)
    os.chmod(filled.blobs.path(message.sha256), 0o600)
    execute(filled.database, f"UPDATE message SET size = size + 1 WHERE id = {message.id}")

    result, report = filled.verify_json()
    assert result.exit_code == 1, describe(result)
    assert sorted((p["kind"], p["sha256"], p["detail"]) for p in report["problems"]) == [
        ("mode", message.sha256, "mode 0600, not 0400"),
        ("size-mismatch", message.sha256,
         f"{message.size} bytes on disk, message {message.id} says {message.size + 1}"),
    ]


def test_deleted_blobs_are_named_as_missing_with_their_rows(filled: Filled) -> None:
    message = list_messages(filled.database)[0]
    thumbnailed = next(row for row in evidence_rows(filled.database) if row.thumbnail_sha256)
    assert thumbnailed.thumbnail_sha256 is not None
    filled.blobs.path(message.sha256).unlink()
    filled.derived.path(thumbnailed.thumbnail_sha256).unlink()

    result = run_cli(["--config", str(filled.config_file), "verify"])
    assert result.exit_code == 1, describe(result)
    assert (f"missing blobs/{message.sha256[:2]}/{message.sha256[2:4]}/{message.sha256}: "
            f"named by message {message.id} (sha256)") in result.stdout, describe(result)
    assert (f"derived/{thumbnailed.thumbnail_sha256[:2]}/{thumbnailed.thumbnail_sha256[2:4]}/"
            f"{thumbnailed.thumbnail_sha256}: named by evidence {thumbnailed.id} "
            f"(thumbnail_sha256)") in result.stdout, describe(result)
    _, report = filled.verify_json()
    assert sorted((p["kind"], p["store"], p["sha256"]) for p in report["problems"]) == sorted([
        ("missing", "blobs", message.sha256), ("missing", "derived", thumbnailed.thumbnail_sha256)])


def test_stray_and_unexpected_files_are_named_but_not_work_areas_or_fresh_files(
        filled: Filled) -> None:
    def blob_file(store: BlobStore, *, old: bool) -> str:
        data = secrets.token_bytes(100)
        sha256 = store.put(data)
        if old:
            os.utime(store.path(sha256), (OLD, OLD))
        return sha256

    stray = blob_file(filled.blobs, old=True)
    derived_stray = blob_file(filled.derived, old=True)
    fresh = blob_file(filled.blobs, old=False)  # its row may not be committed yet
    deleting = blob_file(filled.blobs, old=True)  # retention is about to delete it
    with filled.database.write() as session:
        session.add(BlobDeletion(store="blobs", sha256=deleting, requested_at=utc_now()))
    fan_out = filled.blobs.path(stray).parent
    unexpected = fan_out / "notes.txt"
    unexpected.write_text("not a blob")
    os.utime(unexpected, (OLD, OLD))
    lock = filled.blobs.root / ".lock"  # the store's own lock file (writers and retention)
    lock.touch()
    os.utime(lock, (OLD, OLD))
    for work_area in (".incoming", ".damaged"):
        (filled.blobs.root / work_area).mkdir(exist_ok=True)
        leftover = filled.blobs.root / work_area / "123.456.tmp"
        leftover.write_bytes(b"partial")
        os.utime(leftover, (OLD, OLD))

    result = run_cli(["--config", str(filled.config_file), "verify"])
    assert result.exit_code == 1, describe(result)
    stray_derived = f"derived/{derived_stray[:2]}/{derived_stray[2:4]}/{derived_stray}"
    assert f"no row names it (stray) blobs/{stray[:2]}/{stray[2:4]}/{stray}: no row names" \
        in result.stdout
    assert f"no row names it (stray) {stray_derived}" in result.stdout
    where = unexpected.relative_to(filled.config.storage.data_path)
    assert f"not a blob (unexpected) {where}: a file " in result.stdout, describe(result)
    _, report = filled.verify_json()
    assert sorted((p["kind"], p["sha256"]) for p in report["problems"]) == sorted([
        ("stray", stray), ("stray", derived_stray), ("unexpected", None)])
    assert fresh not in result.stdout and deleting not in result.stdout


def test_a_changed_audit_row_is_named_at_its_seq(filled: Filled) -> None:
    execute(filled.database, "UPDATE audit_event SET actor = 'x' WHERE seq = 3")
    with filled.database.read() as session:
        action = session.execute(text("SELECT action FROM audit_event WHERE seq = 3")).scalar()

    result = run_cli(["--config", str(filled.config_file), "verify"])
    assert result.exit_code == 1, describe(result)
    assert (f"Audit chain broken at event 3 ({label(action, 'en')}): its content does not match "
            "its hash (the row was changed)") in result.stdout, describe(result)

    _, report = filled.verify_json()
    assert report["problems"] == []  # the blobs are fine; the chain is not
    assert report["audit"]["broken"]["seq"] == 3
    with filled.database.read() as session:
        run = session.execute(select(VerifyRun).order_by(VerifyRun.id.desc())).scalars().first()
    assert run is not None and run.ok is False
    assert run.problems == [{"kind": "audit-chain", "seq": 3, "action": action,
                             "detail": report["audit"]["broken"]["reason"]}]


def test_a_removed_last_audit_event_is_named(filled: Filled) -> None:
    with filled.database.read() as session:
        last = session.execute(text("SELECT max(seq) FROM audit_event")).scalar_one()
    execute(filled.database, f"DELETE FROM audit_event WHERE seq = {last}")

    result, report = filled.verify_json()
    assert result.exit_code == 1, describe(result)
    broken = report["audit"]["broken"]
    assert broken["seq"] == last
    assert "events were removed" in broken["reason"]
    text_result = run_cli(["--config", str(filled.config_file), "verify"])
    # The first run's own `verified` event now follows the gap: still named at the same seq.
    assert f"Audit chain broken at event {last} " in text_result.stdout, describe(text_result)


def test_progress_is_reported_up_to_every_byte(filled: Filled) -> None:
    seen: list[VerifyProgress] = []
    found = check_stores(filled.database, filled.blobs, filled.derived,
                         filled.config.storage.data_path, workers=2, on_progress=seen.append)
    assert found.problems == []
    assert [step.files_done for step in seen] == sorted({step.files_done for step in seen})
    last = seen[-1]
    assert (last.files_done, last.files_total) == (found.blobs, found.blobs)
    assert (last.bytes_done, last.bytes_total) == (found.bytes, found.bytes)


def test_the_log_says_ok_or_names_problems_by_hash_only(
        filled: Filled, caplog: pytest.LogCaptureFixture) -> None:
    stores = (filled.blobs, filled.derived, filled.config.storage.data_path)
    with caplog.at_level(logging.INFO, logger="chikanemail.storage.verify"):
        assert verify(filled.database, *stores).ok
    (ok_record,) = caplog.records
    assert ok_record.levelno == logging.INFO and ok_record.getMessage().startswith("verify ok:")

    caplog.clear()
    part = evidence_rows(filled.database)[0]
    body = filled.blobs.read_bytes(part.sha256)
    flip_one_bit(filled.blobs.path(part.sha256))
    with caplog.at_level(logging.INFO, logger="chikanemail.storage.verify"):
        result = verify(filled.database, *stores)
    assert not result.ok
    (error_record,) = caplog.records
    line = error_record.getMessage()
    assert error_record.levelno == logging.ERROR
    assert "verify failed: 1 problem(s)" in line and "mismatch=1" in line
    assert f"mismatch blobs {part.sha256}" in line
    assert body[:40].decode("latin-1") not in line  # hashes and kinds, never content


def test_verify_if_due_runs_once_per_interval(filled: Filled) -> None:
    stores = (filled.database, filled.blobs, filled.derived, filled.config.storage.data_path)
    start = utc_now()

    first = verify_if_due(*stores, 7.0, start)
    assert first is not None and first.ok
    assert verify_if_due(*stores, 7.0, start + timedelta(days=1)) is None
    assert verify_if_due(*stores, 7.0, start + timedelta(days=6, hours=23)) is None
    second = verify_if_due(*stores, 7.0, start + timedelta(days=7, minutes=1))
    assert second is not None
    assert verify_if_due(*stores, 7.0, start + timedelta(days=8)) is None

    with filled.database.read() as session:
        runs = [(trigger, started) for trigger, started in session.execute(
            select(VerifyRun.trigger, VerifyRun.started_at).order_by(VerifyRun.id))]
        events = session.execute(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "verified")).scalar_one()
    assert runs == [("scheduler", start), ("scheduler", start + timedelta(days=7, minutes=1))]
    assert events == 2


# -- health ----------------------------------------------------------------------------


def test_health_follows_the_last_verify(filled: Filled) -> None:
    result, checks = filled.health_json()
    assert result.exit_code == 0, describe(result)  # no verify yet: a warning only
    assert checks["verify"]["status"] == "warn"
    assert {checks[name]["status"] for name in ("data-dir", "database", "quarantine")} == {"ok"}
    assert checks["outbox"]["details"]["waiting"] > 0  # notifications and receipts wait
    assert checks["outbox"]["details"]["oldest_age_seconds"] >= 0
    assert checks["quarantine"]["details"]["quarantined"] == 0

    assert run_cli(["--config", str(filled.config_file), "verify"]).exit_code == 0
    result, checks = filled.health_json()
    assert result.exit_code == 0, describe(result)
    assert checks["healthy"] is True
    assert checks["verify"]["status"] == "ok" and checks["verify"]["details"]["ok"] is True

    message = list_messages(filled.database)[0]
    flip_one_bit(filled.blobs.path(message.sha256))
    assert run_cli(["--config", str(filled.config_file), "verify"]).exit_code == 1
    result, checks = filled.health_json()
    assert result.exit_code == 1, describe(result)
    assert checks["healthy"] is False
    assert checks["verify"]["status"] == "fail"
    assert checks["verify"]["details"]["problems"] == 1
    text_result = run_cli(["--config", str(filled.config_file), "health"])
    assert text_result.exit_code == 1
    assert text_result.stdout.splitlines()[-1].startswith("UNHEALTHY")
    assert "found 1 problem(s)" in text_result.stdout


def test_health_warns_when_the_last_verify_is_old(filled: Filled) -> None:
    stores = (filled.database, filled.blobs, filled.derived, filled.config.storage.data_path)
    assert verify_if_due(*stores, 7.0, utc_now() - timedelta(days=15)) is not None
    result, checks = filled.health_json()
    assert result.exit_code == 0, describe(result)
    assert checks["verify"]["status"] == "warn"
    assert "more than twice verify_every_days" in checks["verify"]["summary"]


def test_health_warns_about_messages_whose_processing_failed(filled: Filled) -> None:
    message = list_messages(filled.database)[0]
    execute(filled.database, "UPDATE message SET state = 'quarantined', quarantine_reason = "
                             f"'processing-failed' WHERE id = {message.id}")
    result, checks = filled.health_json()
    assert result.exit_code == 0, describe(result)
    assert checks["quarantine"]["status"] == "warn"
    assert checks["quarantine"]["details"] == {"quarantined": 1,
                                               "by_reason": {"processing-failed": 1}}


def test_health_fails_without_a_database(tmp_path: Path) -> None:
    config_file = write_toml(tmp_path / "down.toml", {
        "storage": {"data_dir": str(tmp_path / "data"),
                    "database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
        "intake": {"addresses": [INTAKE_ADDRESS]},
        "smtp": {"enabled": False},
        "health": {"min_free_mb": 0, "fail_free_mb": 0},  # whatever this machine has free
    })
    (tmp_path / "data").mkdir()
    result = run_cli(["--config", str(config_file), "health", "--json"])
    assert result.exit_code == 1, describe(result)
    checks = {check["name"]: check["status"] for check in json.loads(result.stdout)["checks"]}
    # Free space, the SMTP answers (from the daemon's status file) and the last backup (from
    # the data directory) are checked without the database.
    assert checks == {"data-dir": "warn", "free-space": "ok", "database": "fail",
                      "listeners": "skipped", "smtp-answers": "skipped", "imap": "skipped",
                      "imap-left": "skipped", "backlog": "skipped", "verify": "skipped",
                      "outbox": "skipped", "quarantine": "skipped", "backup": "skipped",
                      "web": "skipped"}
