"""The worker runs the pipeline, retries failing steps, quarantines, and gives back claims."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from intake.pipeline import worker as worker_module
from intake.pipeline.check_raw import CheckRawMessage
from intake.pipeline.step import MessageContext
from intake.pipeline.worker import Worker
from intake.receive.accept import IntakeService
from intake.receive.addresses import SenderPolicy
from intake.service.settings import WorkerSettings
from storage.blobstore import BlobStore
from storage.claims import ClaimerIdentity as WorkerIdentity
from storage.claims import process_is_alive
from storage.database import Database
from storage.messages import DeliveryEnvelope, claim_messages, list_messages
from storage.models import MessageState


class FailingStep:
    name = "always_fails"

    def __init__(self) -> None:
        self.calls = 0

    def run(self, message: MessageContext) -> None:
        self.calls += 1
        raise ValueError("cannot parse this")


class StopsWorkerStep:
    """Records the message and asks the worker to stop, as SIGTERM would mid-batch."""

    name = "stop_after_first"

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.seen: list[int] = []

    def run(self, message: MessageContext) -> None:
        self.seen.append(message.message_pk)
        assert self.worker is not None
        self.worker.stop()  # no thread runs here: only the stop request is made


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    blob_store = BlobStore(tmp_path / "blobs")
    blob_store.ensure_root()
    return blob_store


def receive(store: BlobStore, database: Database, count: int) -> None:
    service = IntakeService(store, database, SenderPolicy.from_domains([]))
    for n in range(count):
        service.accept_message(f"Subject: {n}\r\n\r\nbody {n}\r\n".encode(),
                               DeliveryEnvelope(source="smtp", mail_from="a@b.dk"))


def test_default_pipeline_processes_every_message(store: BlobStore, database: Database) -> None:
    receive(store, database, 5)
    worker = Worker(store, database, WorkerSettings(), steps=[CheckRawMessage()])
    assert worker.process_until_idle() == 5
    assert {row.state for row in list_messages(database)} == {"processed"}


def test_a_message_whose_blob_changed_is_quarantined(store: BlobStore,
                                                     database: Database) -> None:
    receive(store, database, 1)
    (row,) = list_messages(database)
    path = store.path(row.sha256)
    os.chmod(path, 0o600)
    path.write_bytes(b"altered")
    worker = Worker(store, database, WorkerSettings(retry_seconds=0), steps=[CheckRawMessage()])
    worker.process_until_idle()
    (row,) = list_messages(database)
    assert row.state == "quarantined"
    assert "does not match its name" in (row.last_error or "")


def test_failing_step_is_tried_max_attempts_then_quarantined(store: BlobStore,
                                                            database: Database) -> None:
    receive(store, database, 1)
    step = FailingStep()
    worker = Worker(store, database, WorkerSettings(retry_seconds=0, max_attempts=3),
                    steps=[step])
    worker.process_until_idle()
    assert step.calls == 3
    (row,) = list_messages(database)
    assert (row.state, row.quarantine_reason, row.attempts) == (
        "quarantined", "processing-failed", 3)
    assert row.last_error == "always_fails: ValueError: cannot parse this"


def test_a_stopping_worker_gives_back_what_it_did_not_start(store: BlobStore,
                                                           database: Database) -> None:
    receive(store, database, 4)
    step = StopsWorkerStep()
    worker = Worker(store, database, WorkerSettings(batch_size=4), steps=[step])
    step.worker = worker
    assert worker.process_batch() == 4
    assert len(step.seen) == 1
    states = sorted(row.state for row in list_messages(database))
    assert states == ["processed", "received", "received", "received"]
    assert all(row.attempts == 0 for row in list_messages(database)
               if row.state == MessageState.RECEIVED)
    # Nothing waits for a lease: another worker takes them at once.
    assert len(claim_messages(database, worker_id="other", limit=10,
                              lease=timedelta(minutes=5))) == 3


def test_a_batch_cut_short_by_the_database_is_handed_back_when_it_returns(
        store: BlobStore, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database goes away while the worker records the first message of a batch: the
    batch's claims are given back at the next round, not left to the lease."""
    receive(store, database, 3)
    worker = Worker(store, database, WorkerSettings(batch_size=3), steps=[CheckRawMessage()])
    real_mark_processed = worker_module.mark_processed

    def database_gone(*args: object, **kwargs: object) -> bool:
        raise OperationalError("UPDATE message", {}, Exception("server closed the connection"))

    monkeypatch.setattr(worker_module, "mark_processed", database_gone)
    with pytest.raises(OperationalError):
        worker.process_batch()
    assert [row.state for row in list_messages(database)] == ["processing"] * 3
    monkeypatch.setattr(worker_module, "mark_processed", real_mark_processed)

    assert worker.process_until_idle() == 3
    rows = list_messages(database)
    assert {row.state for row in rows} == {"processed"}
    # Handing back spends no try: each message was claimed once to be processed.
    assert {row.attempts for row in rows} == {1}


def test_claims_of_a_dead_process_on_this_host_are_abandoned() -> None:
    identity = WorkerIdentity()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    assert not process_is_alive(dead_pid)
    assert identity.is_abandoned(f"{identity.host}:{dead_pid}:abcd")
    assert identity.is_abandoned(f"{identity.host}:{identity.pid}:earlier")
    assert not identity.is_abandoned(str(identity))
    assert not identity.is_abandoned(str(WorkerIdentity()))  # another worker of this run
    assert not identity.is_abandoned(f"{identity.host}:1:abcd")  # init runs
    assert not identity.is_abandoned(f"other-host:{dead_pid}:abcd")  # its lease decides


def test_work_files_of_dead_writers_are_removed(store: BlobStore) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    sha256 = store.put(b"kept")
    folder = store.path(sha256).parent
    stale = folder / f".{'a' * 64}.{dead_pid}.123.tmp"
    stale.write_bytes(b"half")
    live = folder / f".{'b' * 64}.1.123.tmp"  # pid 1 runs
    live.write_bytes(b"in flight")
    with store.writer() as writer:  # leaves nothing: aborted
        writer.write(b"x")
    incoming_stale = store.root / ".incoming" / f"{dead_pid}.5.tmp"
    incoming_stale.write_bytes(b"half")
    assert store.remove_abandoned_work_files(is_alive=process_is_alive) == 2
    assert not stale.exists() and not incoming_stale.exists()
    assert live.exists()
    assert store.read_bytes(sha256) == b"kept"
