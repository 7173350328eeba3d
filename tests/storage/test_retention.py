"""Retention and legal holds: expired cases and mail that opened no case are deleted with
their own files (shared files and everything else stay), the audit log keeps a tombstone and
still checks, a dry run changes nothing, a crash is finished by the next run, and a writer's
shared store lock keeps retention from deleting a blob it is about to reference."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import stat
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw
from sqlalchemy import func, inspect, select, text

from intake.commands.cli.main import main
from intake.pipeline import extract
from intake.pipeline.extract import ExtractEvidence
from intake.pipeline.step import MessageContext
from intake.receive import accept
from intake.receive.accept import IntakeService
from intake.receive.addresses import SenderPolicy
from intake.service.settings import ExtractSettings
from notifier.case_actions import CaseActions
from notifier.plan.checklist import calendar_for
from storage import audit, blobstore
from storage.blobstore import BlobStore
from storage.cases import get_case, list_cases, lock_case
from storage.database import Database
from storage.messages import DeliveryEnvelope, list_messages
from storage.models import (
    AuditEvent,
    BlobDeletion,
    Case,
    CaseLink,
    CaseNote,
    CaseRegistration,
    CaseStep,
    Evidence,
    Message,
    OutboxMail,
    utc_now,
)
from storage.registrations import RegistrationFields
from storage.retention import files as retention_files
from storage.retention.deletion import apply_retention, run_retention_if_enabled
from storage.retention.expiry import plan_retention
from storage.retention.items import RetentionResult
from storage.settings import RetentionSettings
from tests.mail_flow import CapturingRelay, database_of, send
from tests.support import INTAKE_ADDRESS, DaemonThread, wait_until, write_toml

FIRST = "ansat1@kommune.example"
SECOND = "ansat2@kommune.example"
SETTINGS = RetentionSettings()
CASE_PERIOD = timedelta(days=SETTINGS.closed_case_days)
MAIL_PERIOD = timedelta(days=SETTINGS.not_a_report_days)
BlobRef = tuple[str, str]
REGISTRATION = RegistrationFields(
    affected_employee=FIRST, relation="citizen", period_start=date(2026, 1, 5), medium="mail",
    harassment_type="insults", description="Grove mails.", absence="none",
    handler="leder@kommune.example")


# -- mail in, and what the database and stores hold ------------------------------------------

def screenshot() -> bytes:
    """A PNG varied enough to be a screenshot (big, not flat), the same bytes every time."""
    image = Image.new("RGB", (240, 160), "white")
    draw = ImageDraw.Draw(image)
    for index in range(12):
        top = (index * 37) % 110
        draw.rectangle((index * 20, top, index * 20 + 15, top + 45),
                       fill=(index * 20, 255 - index * 20, (index * 53) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def report_with_screenshot(sender: str, body: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = "VS: Se hvad jeg fik"
    mail.set_content(body)
    mail.add_attachment(screenshot(), maintype="image", subtype="png",
                        filename="skaermbillede.png")
    return mail.as_bytes()


def all_processed(database: Database, count: int) -> bool:
    rows = list_messages(database)
    return len(rows) == count and all(row.state == "processed" for row in rows)


def close_case(database: Database, daemon: DaemonThread, number: str, when: datetime, *,
               registered: bool = False) -> None:
    with database.write() as session:
        actions = CaseActions(calendar_for(daemon.config.plan, daemon.config.ui.zone))
        case = lock_case(session, number)
        if registered:
            assert actions.register(session, case, REGISTRATION, actor="test",
                                    now=when).outcome == "done"
        result = actions.close(session, case, "Afsluttet", actor="test", now=when)
    assert result.outcome == "done"


def stores_of(daemon: DaemonThread) -> dict[str, BlobStore]:
    storage = daemon.config.storage
    return {"blobs": BlobStore(storage.blob_root), "derived": BlobStore(storage.derived_root)}


def run(daemon: DaemonThread, database: Database, now: datetime) -> RetentionResult:
    stores = stores_of(daemon)
    return apply_retention(database, stores["blobs"], stores["derived"], SETTINGS, now)


def blobs_of_messages(database: Database, messages: list[Message]) -> set[BlobRef]:
    """Every blob the messages' rows name (worked out here, not by the code under test)."""
    refs: set[BlobRef] = set()
    with database.read() as session:
        for message in messages:
            refs.add(("blobs", message.sha256))
            if message.body_text_sha256:
                refs.add(("derived", message.body_text_sha256))
            for item in session.execute(
                    select(Evidence).where(Evidence.message_pk == message.id)).scalars():
                refs.add(("blobs", item.sha256))
                refs.update(("derived", sha) for sha in (
                    item.text_sha256, item.thumbnail_sha256, item.ocr_sha256) if sha)
    return refs


def rows_of_case(database: Database, case_id: int) -> dict[str, int]:
    with database.read() as session:
        message_ids = list(session.execute(
            select(Message.id).where(Message.case_id == case_id)).scalars())

        def count(model: Any, *conditions: Any) -> int:
            return int(session.execute(
                select(func.count()).select_from(model).where(*conditions)).scalar_one())

        return {"case": count(Case, Case.id == case_id), "messages": len(message_ids),
                "evidence": count(Evidence, Evidence.message_pk.in_(message_ids)),
                "notes": count(CaseNote, CaseNote.case_id == case_id),
                "steps": count(CaseStep, CaseStep.case_id == case_id),
                "registrations": count(CaseRegistration, CaseRegistration.case_id == case_id),
                "outbox": count(OutboxMail, OutboxMail.case_id == case_id),
                "links": count(CaseLink, (CaseLink.case_id == case_id)
                               | (CaseLink.other_case_id == case_id))}


def snapshot(database: Database, data_dir: Path) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Row counts of every table and every file under the data directory with its size."""
    tables = inspect(database.engine).get_table_names()
    with database.read() as session:
        counts = {name: int(session.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one())
                  for name in tables}
    files = sorted((str(path.relative_to(data_dir)), path.stat().st_size)
                   for path in data_dir.rglob("*") if path.is_file())
    return counts, files


def events(database: Database, action: str) -> list[AuditEvent]:
    return [event for event in audit.iter_events(database) if event.action == action]


def pending_deletions(database: Database) -> set[BlobRef]:
    with database.read() as session:
        return {(row.store, row.sha256) for row in session.execute(
            select(BlobDeletion)).scalars()}


@dataclass
class TwoCases:
    """Two reports of the same screenshot from two employees: two cases sharing a blob."""

    daemon: DaemonThread
    database: Database
    expired: Case  # closed at `closed_at`
    still_open: Case
    closed_at: datetime
    expired_message_sha256: str
    expired_blobs: set[BlobRef]
    open_blobs: set[BlobRef]


def two_cases(start: Any, capture: CapturingRelay, closed_at: datetime) -> TwoCases:
    daemon = start()
    send(daemon, report_with_screenshot(FIRST, "Det her kom i aftes."), mail_from=FIRST)
    send(daemon, report_with_screenshot(SECOND, "Jeg fik det samme billede."), mail_from=SECOND)
    database = database_of(daemon)
    wait_until(lambda: all_processed(database, 2), timeout=30, message="two processed")
    wait_until(lambda: len(capture.mails) == 4, timeout=30, message="receipts, notifications")
    daemon.stop()  # nothing else writes from here on
    cases = {case.reporter: case for case in list_cases(database)}
    expired, still_open = cases[FIRST], cases[SECOND]
    close_case(database, daemon, expired.number, closed_at, registered=True)
    (expired_message,) = [m for m in list_messages(database) if m.case_id == expired.id]
    expired_blobs = blobs_of_messages(database, [expired_message])
    open_blobs = blobs_of_messages(database, [m for m in list_messages(database)
                                              if m.case_id == still_open.id])
    return TwoCases(daemon, database, expired, still_open, closed_at, expired_message.sha256,
                    expired_blobs, open_blobs)


# -- cases --------------------------------------------------------------------------------

def test_retention_deletes_the_expired_case_and_keeps_shared_blobs_and_the_open_case(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    scene = two_cases(start, capture, utc_now())
    database, stores = scene.database, stores_of(scene.daemon)
    try:
        shared = scene.expired_blobs & scene.open_blobs
        own = scene.expired_blobs - scene.open_blobs
        image = ("blobs", blobstore.sha256_hex(screenshot()))
        assert image in shared and own  # the screenshot is shared, the rest is the case's
        expired_rows = rows_of_case(database, scene.expired.id)
        open_rows = rows_of_case(database, scene.still_open.id)
        # The registration's note and the closing note.
        assert expired_rows["links"] > 0 and expired_rows["notes"] == 2
        assert expired_rows["registrations"] == 1

        # A second before its period ends, nothing goes; a dry run at the end changes nothing.
        due = scene.closed_at + CASE_PERIOD
        assert run(scene.daemon, database, due - timedelta(seconds=1)).deleted == ()
        before = snapshot(database, scene.daemon.config.storage.data_path)
        plan = plan_retention(database, SETTINGS, due)
        assert snapshot(database, scene.daemon.config.storage.data_path) == before
        (planned,) = plan.items
        assert planned.case_number == scene.expired.number
        assert set(planned.blobs_to_delete) == own
        assert set(planned.blobs_kept_shared) == shared

        result = run(scene.daemon, database, due)
        (item,) = result.deleted
        assert item == planned
        assert result.files_deleted == len(own) and result.files_kept == 0
        assert get_case(database, scene.expired.number) is None
        assert rows_of_case(database, scene.expired.id) == {
            "case": 0, "messages": 0, "evidence": 0, "notes": 0, "steps": 0,
            "registrations": 0, "outbox": 0, "links": 0}
        # The open case lost only its links to the deleted one.
        assert rows_of_case(database, scene.still_open.id) == {**open_rows, "links": 0}
        assert all(not stores[store].exists(sha) for store, sha in own)
        assert all(stores[store].exists(sha) for store, sha in scene.open_blobs)
        assert pending_deletions(database) == set()

        (tombstone,) = events(database, "deleted-by-retention")
        assert tombstone.case_number == scene.expired.number
        details = tombstone.details
        assert details["rule"] == "closed_case_days"
        assert details["retention_days"] == SETTINGS.closed_case_days
        assert details["closed_at"] == audit.format_utc(scene.closed_at)
        counts = details["counts"]
        kinds = ("messages", "evidence", "notes", "steps", "registrations", "outbox", "links")
        assert {name: counts[name] for name in kinds} == {
            name: expired_rows[name] for name in kinds}
        assert details["message_sha256s"] == [scene.expired_message_sha256]
        deleted = {(store, sha) for store, hashes in details["deleted_blobs"].items()
                   for sha in hashes}
        kept = {(store, sha) for store, hashes in details["kept_shared_blobs"].items()
                for sha in hashes}
        assert (deleted, kept) == (own, shared)
        assert audit.check_chain(database).ok
        # The case's history is still found by its number after the rows are gone.
        assert tombstone.seq in [event.seq for event in
                                 audit.events_for_case(database, scene.expired.number)]
        # Nothing more is due: a second run deletes nothing.
        again = run(scene.daemon, database, due + timedelta(days=1))
        assert again.deleted == () and again.files_deleted == 0
        assert get_case(database, scene.still_open.number) is not None
    finally:
        database.dispose()


def test_two_expired_cases_sharing_a_blob_delete_it_with_the_second(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    closed_at = utc_now()
    scene = two_cases(start, capture, closed_at)
    database, stores = scene.database, stores_of(scene.daemon)
    try:
        close_case(database, scene.daemon, scene.still_open.number,
                   closed_at + timedelta(minutes=1))
        shared = scene.expired_blobs & scene.open_blobs
        now = closed_at + CASE_PERIOD + timedelta(days=1)
        plan = plan_retention(database, SETTINGS, now)
        # In the order they go: the first keeps the shared blob, the second deletes it.
        assert [item.case_number for item in plan.items] == [scene.expired.number,
                                                             scene.still_open.number]
        assert set(plan.items[0].blobs_kept_shared) == shared
        assert set(plan.items[1].blobs_to_delete) == scene.open_blobs
        assert plan.items[1].blobs_kept_shared == ()
        result = run(scene.daemon, database, now)
        assert result.deleted == plan.items
        every = scene.expired_blobs | scene.open_blobs
        assert result.files_deleted == len(every)
        assert all(not stores[store].exists(sha) for store, sha in every)
        assert list_cases(database) == [] and list_messages(database) == []
        assert len(events(database, "deleted-by-retention")) == 2
        assert audit.check_chain(database).ok
    finally:
        database.dispose()


class Crash(BaseException):
    """The process dying mid-way (not an error retention would catch)."""


def test_a_crash_between_commit_and_unlink_is_finished_by_the_next_run(
        start: Any, relay: tuple[CapturingRelay, int], monkeypatch: pytest.MonkeyPatch) -> None:
    capture, _ = relay
    scene = two_cases(start, capture, utc_now() - CASE_PERIOD - timedelta(days=1))
    database, stores = scene.database, stores_of(scene.daemon)
    own = scene.expired_blobs - scene.open_blobs
    unlinked: list[Path] = []

    def unlink_once_then_crash(path: Path) -> None:
        if unlinked:
            raise Crash
        path.unlink()
        unlinked.append(path)

    monkeypatch.setattr(retention_files, "_unlink_blob", unlink_once_then_crash)
    try:
        with pytest.raises(Crash):
            run(scene.daemon, database, utc_now())
        # The rows went in their transaction; the files wait in BlobDeletion rows.
        assert get_case(database, scene.expired.number) is None
        assert pending_deletions(database) == own
        still_there = {(store, sha) for store, sha in own if stores[store].exists(sha)}
        assert len(unlinked) == 1 and len(still_there) == len(own) - 1

        monkeypatch.undo()
        result = run(scene.daemon, database, utc_now())
        assert result.deleted == ()  # nothing new expired; only the files were left
        assert result.files_deleted == len(own)
        assert all(not stores[store].exists(sha) for store, sha in own)
        assert all(stores[store].exists(sha) for store, sha in scene.open_blobs)
        assert pending_deletions(database) == set()
        assert audit.check_chain(database).ok
    finally:
        database.dispose()


def test_a_held_case_is_kept_until_unheld_and_the_cli_dry_run_changes_nothing(
        start: Any, relay: tuple[CapturingRelay, int], tmp_path: Path) -> None:
    capture, _ = relay
    daemon = start()
    send(daemon, report_with_screenshot(FIRST, "Det her kom i aftes."), mail_from=FIRST)
    database = database_of(daemon)
    try:
        wait_until(lambda: all_processed(database, 1), timeout=30, message="processed")
        wait_until(lambda: len(capture.mails) == 2, timeout=30, message="two mails")
        daemon.stop()
        (case,) = list_cases(database)
        number = case.number
        close_case(database, daemon, number, utc_now() - CASE_PERIOD - timedelta(days=1))
        blobs = blobs_of_messages(database, list_messages(database))
        stores = stores_of(daemon)
        storage = daemon.config.storage
        config = write_toml(tmp_path / "cli.toml", {"storage": {
            "data_dir": storage.data_dir, "database_url": storage.effective_database_url}})
        runner = CliRunner()

        def cli(*args: str) -> str:
            result = runner.invoke(main, ["--config", str(config), *args])
            assert result.exit_code == 0, result.output
            return result.stdout

        reason = "Politiets sag 4711-2026"
        # In Danish, the default language.
        assert "er tilbageholdt" in cli("cases", "hold", number, "--reason", reason)
        assert "allerede" in cli("cases", "hold", number, "--reason", reason)
        shown = json.loads(cli("cases", "show", number, "--json"))
        assert (shown["legal_hold"], shown["hold_reason"]) == (True, reason)
        held = json.loads(cli("retention", "--json"))
        assert held["items"] == []
        assert held["kept"] == [{"case": number, "message_sha256": None,
                                 "reason": "legal-hold", "detail": reason}]
        assert get_case(database, number) is not None
        assert all(stores[store].exists(sha) for store, sha in blobs)

        assert "ophævet" in cli("cases", "unhold", number)
        assert "ikke tilbageholdt" in cli("cases", "unhold", number)
        before = snapshot(database, storage.data_path)
        dry = json.loads(cli("retention", "--dry-run", "--json"))
        assert [item["case"] for item in dry["items"]] == [number]
        assert dry["dry_run"] is True and dry["kept"] == []
        assert f"sag {number}" in cli("retention", "--dry-run")
        assert snapshot(database, storage.data_path) == before

        done = json.loads(cli("retention", "--json"))
        assert [item["case"] for item in done["items"]] == [number]
        assert done["files_deleted"] == len(blobs) and done["failed"] == []
        assert all(not stores[store].exists(sha) for store, sha in blobs)
        assert runner.invoke(main, ["--config", str(config), "cases", "show", number]
                             ).exit_code == 1
        (hold_set,) = events(database, "hold-set")
        assert hold_set.details == {"reason": reason} and hold_set.case_number == number
        (lifted,) = events(database, "hold-lifted")
        assert lifted.details["reason"] == reason
        (tombstone,) = events(database, "deleted-by-retention")
        assert tombstone.actor.startswith("cli:")
        assert audit.check_chain(database).ok
        assert runner.invoke(main, ["--config", str(config), "cases", "hold", "1999-0001",
                                    "--reason", "x"]).exit_code == 1
        assert runner.invoke(main, ["--config", str(config), "cases", "hold", number,
                                    "--reason", "  "]).exit_code == 1
    finally:
        database.dispose()


# -- mail that opened no case -------------------------------------------------------------

def test_mail_that_opened_no_case_goes_after_its_period(
        start: Any, relay: tuple[CapturingRelay, int], caplog: pytest.LogCaptureFixture) -> None:
    daemon = start()
    reply = EmailMessage()
    reply["From"] = FIRST
    reply["To"] = INTAKE_ADDRESS
    reply["Subject"] = "Automatisk svar: Ikke på kontoret"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("Jeg er på ferie til og med mandag.")
    send(daemon, reply.as_bytes(), mail_from=FIRST)
    database = database_of(daemon)
    try:
        wait_until(lambda: all_processed(database, 1), timeout=30, message="processed")
        daemon.stop()
        (message,) = list_messages(database)
        assert message.kind == "not-a-report" and message.case_id is None
        blobs = blobs_of_messages(database, [message])
        stores = stores_of(daemon)
        due = message.received_at + MAIL_PERIOD

        disabled = RetentionSettings(enabled=False)
        assert run_retention_if_enabled(database, stores["blobs"], stores["derived"], disabled,
                                        now=due + timedelta(days=999)) is None
        assert run(daemon, database, due - timedelta(seconds=1)).deleted == ()
        assert list_messages(database) != []
        with caplog.at_level(logging.INFO, logger="chikanemail.storage.retention"):
            result = run_retention_if_enabled(database, stores["blobs"], stores["derived"],
                                              SETTINGS, now=due)
        assert result is not None
        (item,) = result.deleted
        assert (item.rule, item.case_number) == ("not_a_report_days", None)
        assert list_messages(database) == []
        assert all(not stores[store].exists(sha) for store, sha in blobs)
        (tombstone,) = events(database, "deleted-by-retention")
        assert (tombstone.case_number, tombstone.message_sha256) == (None, message.sha256)
        assert tombstone.details["received_at"] == audit.format_utc(message.received_at)
        assert tombstone.details["counts"]["messages"] == 1
        assert audit.check_chain(database).ok
        assert f"retention deleted message sha256={message.sha256}" in caplog.text
        assert "ferie" not in caplog.text and "kontoret" not in caplog.text
    finally:
        database.dispose()


# -- the store lock -----------------------------------------------------------------------

def exclusive_is_free(store: BlobStore) -> bool:
    """Whether nobody holds the store's lock right now (probed without waiting)."""
    fd = os.open(store.root / blobstore.LOCK_FILE_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_the_exclusive_lock_waits_for_every_shared_holder(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    holding, release, trying, acquired = (threading.Event() for _ in range(4))
    order: list[str] = []

    def writer() -> None:
        with store.shared_lock():
            holding.set()
            assert release.wait(10)
            order.append("shared released")

    def deleter() -> None:
        trying.set()
        with store.exclusive_lock():
            order.append("exclusive acquired")
            acquired.set()

    first = threading.Thread(target=writer)
    first.start()
    assert holding.wait(10)
    second_in = threading.Event()

    def second_writer() -> None:
        with store.shared_lock():
            second_in.set()

    second = threading.Thread(target=second_writer)
    second.start()
    assert second_in.wait(10)  # shared holders do not wait for each other
    second.join(10)
    waiting = threading.Thread(target=deleter)
    waiting.start()
    assert trying.wait(10)
    assert not acquired.wait(0.3)  # still held by the first writer
    release.set()
    first.join(10)
    waiting.join(10)
    assert acquired.is_set() and order == ["shared released", "exclusive acquired"]

    # And a writer waits while retention holds the store.
    entered = threading.Event()

    def late_writer() -> None:
        with store.shared_lock():
            entered.set()

    with store.exclusive_lock():
        late = threading.Thread(target=late_writer)
        late.start()
        assert not entered.wait(0.3)
    late.join(10)
    assert entered.is_set()
    (lock_file,) = [path for path in store.root.iterdir() if path.is_file()]
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
    assert list(store.iter_all()) == []  # the lock file is no blob


def test_retention_never_deletes_a_blob_a_delivery_is_about_to_reference(
        database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path / "blobs")
    store.ensure_root()
    raw = b"From: ansat1@kommune.example\r\nSubject: igen\r\n\r\nSamme bytes.\r\n"
    sha256 = store.put(raw)  # left by a message retention deleted; its file is pending
    with database.write() as session:
        session.add(BlobDeletion(store="blobs", sha256=sha256, requested_at=utc_now()))
    stored, go = threading.Event(), threading.Event()
    record_delivery = accept.record_delivery

    def paused_record(*args: Any, **kwargs: Any) -> Any:
        stored.set()  # put() found the blob stored; the row is not written yet
        assert go.wait(10)
        return record_delivery(*args, **kwargs)

    monkeypatch.setattr(accept, "record_delivery", paused_record)
    service = IntakeService(store, database, SenderPolicy.from_domains(()))
    delivery = threading.Thread(target=service.accept_message,
                                args=(raw, DeliveryEnvelope(source="ingest")))
    delivery.start()
    assert stored.wait(10)
    outcome: list[tuple[int, int]] = []
    finished = threading.Event()

    def finish() -> None:
        outcome.append(retention_files.finish_blob_deletions(database, {"blobs": store}))
        finished.set()

    deleter = threading.Thread(target=finish)
    deleter.start()
    assert not finished.wait(0.3)  # waits for the delivery's shared lock
    go.set()
    delivery.join(10)
    deleter.join(10)
    assert outcome == [(0, 1)]  # re-checked under the lock: referenced again, kept
    assert store.exists(sha256) and pending_deletions(database) == set()

    unreferenced = store.put(b"nobody names me")
    with database.write() as session:
        session.add(BlobDeletion(store="blobs", sha256=unreferenced, requested_at=utc_now()))
    assert retention_files.finish_blob_deletions(database, {"blobs": store}) == (1, 0)
    assert not store.exists(unreferenced) and store.exists(sha256)


def test_writers_hold_the_shared_lock_until_their_rows_are_committed(
        database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, derived = BlobStore(tmp_path / "blobs"), BlobStore(tmp_path / "derived")
    store.ensure_root()
    derived.ensure_root()
    probes: list[Any] = []
    service = IntakeService(store, database, SenderPolicy.from_domains(()),
                            on_stored=lambda: probes.append(exclusive_is_free(store)))
    raw = report_with_screenshot(FIRST, "Se vedhæftet.")
    accepted = service.accept_message(raw, DeliveryEnvelope(source="ingest"))
    with store.writer() as writer:
        writer.write(b"From: ansat2@kommune.example\r\n\r\nStreamet.\r\n")
        service.accept_spooled(writer, b"From: ansat2@kommune.example\r\n\r\n",
                               DeliveryEnvelope(source="smtp"))
    assert probes == [False, False]  # both paths still held it when their row was committed
    assert exclusive_is_free(store)

    save_extraction = extract.save_extraction

    def probing_save(*args: Any, **kwargs: Any) -> None:
        probes.append((exclusive_is_free(store), exclusive_is_free(derived)))
        save_extraction(*args, **kwargs)

    monkeypatch.setattr(extract, "save_extraction", probing_save)
    step = ExtractEvidence(derived, ExtractSettings(), None)
    step.run(MessageContext(accepted.message_pk, accepted.sha256, 0, store, database))
    assert probes[2:] == [(False, False)]
    assert exclusive_is_free(store) and exclusive_is_free(derived)
    with database.read() as session:
        assert session.execute(select(func.count()).select_from(Evidence)).scalar_one() >= 2
