"""STEPS is the pipeline: the worker runs exactly its steps, in order, on a real stored report;
the filing steps that write share one transaction, so a step failing there leaves nothing of
the filing and the message is tried again; the sender check runs outside that transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from intake.pipeline import STEPS
from intake.pipeline.filing.step import FilingStep
from intake.pipeline.run import Step, run_steps
from intake.pipeline.step import MessageContext
from intake.pipeline.worker import Worker
from intake.service.config import AppConfig
from intake.service.daemon import Services, open_services, pipeline_for, reprocess_steps
from storage.messages import DeliveryEnvelope, list_messages
from storage.models import (
    AuditEvent,
    Case,
    CaseCounter,
    CaseStep,
    Message,
    OutboxMail,
    ReplyToken,
)
from tests.mail_flow import REPORTER, report
from tests.support import INTAKE_ADDRESS, make_config

EVERY_STEP = [step.name for step in STEPS]
FILING_TABLES = (Case, CaseCounter, CaseStep, OutboxMail, ReplyToken)


@dataclass
class Intake:
    """A data directory and database with one report stored, not yet processed."""

    config: AppConfig
    services: Services
    message_pk: int
    woken: list[str] = field(default_factory=list)

    def steps(self) -> list[Step]:
        """The worker's steps, as the daemon builds them; the outbox wake is recorded."""
        return pipeline_for(self.config, on_outbox=lambda: self.woken.append("outbox"))

    def worker(self, steps: list[Step]) -> Worker:
        return Worker(self.services.store, self.services.database, self.config.worker, steps)

    def row(self) -> Message:
        (row,) = [row for row in list_messages(self.services.database)
                  if row.id == self.message_pk]
        return row

    def audit_actions(self) -> list[str]:
        with self.services.database.read() as session:
            return list(session.execute(
                select(AuditEvent.action).order_by(AuditEvent.seq)).scalars())

    def count(self, table: type[Any]) -> int:
        with self.services.database.read() as session:
            return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def stored_report(data_dir: Path, database_url: str) -> Intake:
    config = make_config(data_dir, database_url, extract={"ocr": False})
    services = open_services(config)
    accepted = services.intake.accept_message(
        report(), DeliveryEnvelope(source="smtp", mail_from=REPORTER, rcpt_tos=(INTAKE_ADDRESS,)))
    return Intake(config, services, accepted.message_pk)


@pytest.fixture
def intake(tmp_path: Path, database_url: str) -> Iterator[Intake]:
    """One report stored, on each database backend."""
    stored = stored_report(tmp_path / "data", database_url)
    yield stored
    stored.services.close()


@pytest.fixture
def sqlite_intake(tmp_path: Path) -> Iterator[Intake]:
    """One report stored, on SQLite."""
    stored = stored_report(tmp_path / "data", f"sqlite:///{tmp_path / 'test.sqlite3'}")
    yield stored
    stored.services.close()


def wrap(step: Step, around: Callable[[Callable[[Any], None], Any], None]) -> None:
    """Replace the step's work (`file` of a filing step, `run` of the others) by `around`,
    which gets the original and its argument."""
    method = "file" if isinstance(step, FilingStep) else "run"
    original = getattr(step, method)
    setattr(step, method, lambda argument: around(original, argument))


def record_names(steps: list[Step], executed: list[str]) -> None:
    """Have each step note its name in `executed` when it starts."""
    for step in steps:
        def noting(original: Callable[[Any], None], argument: Any, name: str = step.name) -> None:
            executed.append(name)
            original(argument)
        wrap(step, noting)


def test_the_worker_runs_exactly_steps_in_order(sqlite_intake: Intake) -> None:
    steps = sqlite_intake.steps()
    executed: list[str] = []
    record_names(steps, executed)
    assert sqlite_intake.worker(steps).process_until_idle() == 1
    assert executed == EVERY_STEP
    row = sqlite_intake.row()
    assert (row.state, row.kind, row.last_error) == ("processed", "report", None)
    assert row.case_id is not None and sqlite_intake.count(OutboxMail) == 2
    assert sqlite_intake.woken == ["outbox"]


def test_the_filing_steps_that_write_form_one_transaction_after_the_sender_check() -> None:
    writes = [bool(getattr(step, "in_transaction", False)) for step in STEPS]
    first = writes.index(True)
    last = len(writes) - 1 - writes[::-1].index(True)
    assert all(writes[first:last + 1])  # one transaction, not several
    assert (EVERY_STEP[first], EVERY_STEP[last]) == ("lock_message", "record_processed")
    assert EVERY_STEP.index("check_sender") < first < last < EVERY_STEP.index(
        "wake_outbox_sender")


def test_reprocess_runs_the_extraction_steps_only(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", f"sqlite:///{tmp_path / 'test.sqlite3'}",
                         extract={"ocr": False})
    assert [step.name for step in reprocess_steps(config)] == [
        "check_raw_message", "extract_evidence"]


def test_a_filed_message_runs_extraction_only_and_its_sender_is_not_checked_again(
        sqlite_intake: Intake) -> None:
    assert sqlite_intake.worker(sqlite_intake.steps()).process_until_idle() == 1
    events = sqlite_intake.audit_actions()
    steps = sqlite_intake.steps()
    executed: list[str] = []
    record_names(steps, executed)
    row = sqlite_intake.row()
    services = sqlite_intake.services
    run_steps(steps, MessageContext(row.id, row.sha256, row.attempts, services.store,
                                    services.database))  # as after a crash before `processed`
    assert executed == ["check_raw_message", "extract_evidence", "skip_filed_message",
                        "read_screenshots"]
    assert sqlite_intake.audit_actions()[len(events):] == ["evidence-extracted"]
    assert sqlite_intake.woken == ["outbox"]  # from the first run only


def test_the_sender_check_runs_outside_the_filing_transaction(sqlite_intake: Intake) -> None:
    """A DNS lookup must never hold SQLite's one writer: while the sender is checked, another
    connection can begin a write transaction at once."""
    database_file = sqlite_intake.services.database.url.database
    assert database_file is not None
    probed: list[str] = []

    def probe_writer(original: Callable[[Any], None], filing: Any) -> None:
        other = sqlite3.connect(database_file, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if a writer is busy
            other.execute("ROLLBACK")
        finally:
            other.close()
        probed.append("free")
        original(filing)

    steps = sqlite_intake.steps()
    (check,) = [step for step in steps if step.name == "check_sender"]
    wrap(check, probe_writer)
    assert sqlite_intake.worker(steps).process_until_idle() == 1
    assert probed == ["free"]
    assert sqlite_intake.row().state == "processed"


@pytest.mark.parametrize("failing", ["open_case", "queue_case_mails", "record_filed",
                                     "record_processed"])
def test_a_failing_filing_step_leaves_nothing_and_the_message_is_tried_again(
        intake: Intake, failing: str) -> None:
    """The step does its work, then raises: the case, its checklist, its number, the reply
    tokens, the outbox rows and the audit events written before are all rolled back; the
    failure is recorded under the step's name; the next try files the message once."""
    events_before = intake.audit_actions()
    calls: list[int] = []

    def work_then_fail_once(original: Callable[[Any], None], filing: Any) -> None:
        original(filing)
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk full")

    steps = intake.steps()
    (step,) = [step for step in steps if step.name == failing]
    wrap(step, work_then_fail_once)
    worker = intake.worker(steps)

    assert worker.process_batch() == 1
    row = intake.row()
    assert (row.state, row.attempts, row.last_error) == (
        "received", 1, f"{failing}: RuntimeError: disk full")
    assert (row.kind, row.case_id, row.from_address, row.sender_check) == (
        None, None, None, None)
    assert {table.__name__: intake.count(table) for table in FILING_TABLES} == {
        table.__name__: 0 for table in FILING_TABLES}
    # Only extraction's own event is left: it committed before the filing began.
    assert intake.audit_actions()[len(events_before):] == ["evidence-extracted"]
    assert intake.woken == []  # nothing was committed, so nothing was announced

    assert worker.process_until_idle() == 1
    row = intake.row()
    assert (row.state, row.attempts, row.kind) == ("processed", 2, "report")
    assert intake.count(Case) == 1 and intake.count(OutboxMail) == 2
    assert intake.audit_actions()[len(events_before):] == [
        "evidence-extracted", "evidence-extracted",  # each try extracts
        "case-opened", "routed", "mail-queued", "mail-queued", "filed", "processed"]
    assert intake.woken == ["outbox"]


def test_a_report_is_filed_and_recorded_processed_in_one_write_transaction(
        sqlite_intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claim, extraction, and the filing that also records the message processed: three
    write transactions for a report, no separate one to finish it."""
    database = sqlite_intake.services.database
    real_write = database.write
    writes: list[int] = []

    def counted_write() -> Any:
        writes.append(1)
        return real_write()

    monkeypatch.setattr(database, "write", counted_write)
    assert sqlite_intake.worker(sqlite_intake.steps()).process_batch() == 1
    row = sqlite_intake.row()
    assert (row.state, row.kind, row.claimed_by) == ("processed", "report", None)
    assert len(writes) == 3
    assert sqlite_intake.audit_actions()[-2:] == ["filed", "processed"]


def test_a_claim_lost_before_the_commit_leaves_nothing_of_the_filing(intake: Intake) -> None:
    """Another worker takes the message over (our lease ran out) while we check its sender:
    the filing is rolled back whole, no try is spent, and the message stays that worker's."""
    events_before = intake.audit_actions()

    def lose_the_claim(original: Callable[[Any], None], filing: Any) -> None:
        original(filing)
        with intake.services.database.write() as session:
            session.execute(update(Message).where(Message.id == intake.message_pk)
                            .values(claimed_by="other-host:1:worker"))

    steps = intake.steps()
    (check,) = [step for step in steps if step.name == "check_sender"]
    wrap(check, lose_the_claim)
    assert intake.worker(steps).process_batch() == 1
    row = intake.row()
    assert (row.state, row.claimed_by, row.kind, row.case_id, row.last_error) == (
        "processing", "other-host:1:worker", None, None, None)
    assert row.attempts == 1
    assert {table.__name__: intake.count(table) for table in FILING_TABLES} == {
        table.__name__: 0 for table in FILING_TABLES}
    assert intake.audit_actions()[len(events_before):] == ["evidence-extracted"]
    assert intake.woken == []
