"""Several daemons on one PostgreSQL database (and one blob store): only one runs the
scheduled jobs, and when it is killed under load another takes over and nothing is lost,
doubled or numbered twice."""

from __future__ import annotations

import hashlib
import signal
import smtplib
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import select, text

from notifier.plan.checklist import calendar_for
from notifier.plan.runner import PlanRunner
from notifier.plan.scheduler import PlanScheduler
from notifier.plan.settings import PlanSettings
from storage.database import Database
from storage.leader import LeaderLock, advisory_key, lock_holder
from storage.models import Case, Message, OutboxMail
from storage.ui_settings import UiSettings
from tests.mail_flow import REPORTER, CapturingRelay
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    daemon_process,
    free_port,
    port_accepts,
    postgres_schema,
    wait_until,
    write_toml,
)

DEADLINE = 60.0
REPORTS = 60
KILL_AFTER_ACCEPTED = 20


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL on a schema of its own."""
    with postgres_schema() as url:
        yield url


# -- the lock itself ----------------------------------------------------------------------


def _terminate_holder(database: Database, name: str) -> int:
    """Kill the PostgreSQL session holding the named lock (as a dead daemon's would end)."""
    with database.engine.connect() as connection:
        schema = str(connection.execute(text("SELECT current_schema()")).scalar_one())
        key = advisory_key(name, schema) & 0xFFFF_FFFF_FFFF_FFFF
        count = connection.execute(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                 "WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
                 "AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)"),
            {"high": key >> 32, "low": key & 0xFFFF_FFFF},
        ).scalar_one()
    return int(count)


def test_only_one_holds_the_lock_and_another_takes_it_when_the_holder_dies(
        postgres_url: str) -> None:
    database = Database(postgres_url)
    first, second = LeaderLock(database), LeaderLock(database)
    try:
        assert lock_holder(database) is None
        assert first.try_acquire()
        assert first.try_acquire(), "taking a lock one holds again is a no-op"
        assert not second.try_acquire()
        assert first.held() and not second.held()
        assert lock_holder(database) == first.holder_name

        assert _terminate_holder(database, first.name) == 1  # its connection is gone
        assert not first.held(), "a failed query means the lock is lost"
        assert second.try_acquire()
        assert second.held()
        assert not first.try_acquire(), "the old holder does not take it back"

        second.release()
        assert not second.held()
        assert lock_holder(database) is None
        assert first.try_acquire(), "a released lock is free at once"
    finally:
        first.release()
        second.release()
        database.dispose()


def test_locks_in_different_schemas_do_not_block_each_other(postgres_url: str) -> None:
    with postgres_schema() as other_url:
        here, there = Database(postgres_url), Database(other_url)
        locks = [LeaderLock(here), LeaderLock(there)]
        try:
            assert [lock.try_acquire() for lock in locks] == [True, True]
        finally:
            for lock in locks:
                lock.release()
            here.dispose()
            there.dispose()


def test_sqlite_always_grants_the_lock(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'one.sqlite3'}")
    try:
        locks = [LeaderLock(database), LeaderLock(database)]
        assert [lock.try_acquire() for lock in locks] == [True, True]
        assert all(lock.held() for lock in locks)
        assert lock_holder(database) is None
    finally:
        database.dispose()


class CountingRunner:
    """Stands in for the plan runner: counts the runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.lock = threading.Lock()
        self.calendar = calendar_for(PlanSettings(), UiSettings().zone)  # the scheduler's zone

    def run_due(self) -> None:
        with self.lock:
            self.runs += 1

    def count(self) -> int:
        with self.lock:
            return self.runs


def test_only_the_leaders_scheduler_runs_jobs_and_the_other_takes_over(
        postgres_url: str) -> None:
    database = Database(postgres_url)
    runners = [CountingRunner(), CountingRunner()]
    schedulers = [PlanScheduler(cast(PlanRunner, runner), tick_seconds=0.05,
                                leader=LeaderLock(database), leader_retry_seconds=0.2)
                  for runner in runners]
    try:
        schedulers[0].start()
        schedulers[1].start()
        assert schedulers[0].leading and not schedulers[1].leading
        wait_until(lambda: runners[0].count() >= 5, message="the leader's plan runs")
        assert runners[1].count() == 0, "the other daemon ran a job without the lock"

        schedulers[0].stop()  # gives the lock back
        stopped_at = runners[0].count()
        wait_until(lambda: runners[1].count() >= 3, timeout=10,
                   message="the second scheduler taking over")
        assert schedulers[1].leading
        assert runners[0].count() == stopped_at
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        database.dispose()


# -- two real daemons, one killed under load --------------------------------------------


@dataclass
class Node:
    """One `chikanemail serve` process of the pair."""

    name: str
    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    @property
    def holder_name(self) -> str:
        assert self.process is not None
        return f"chikanemail:{socket.gethostname()}:{self.process.pid}"


def _start(node: Node, stack: ExitStack) -> None:
    node.process = stack.enter_context(daemon_process(node.config, node.log))
    process = node.process
    wait_until(lambda: process.poll() is not None or port_accepts(node.port), timeout=DEADLINE,
               interval=0.05, message=f"daemon {node.name} on port {node.port}")
    assert process.poll() is None, f"daemon {node.name} exited early:\n{node.log_text()}"


def make_report(number: int) -> bytes:
    """A distinct report (its own subject, body and Message-ID) that opens a case."""
    mail = EmailMessage()
    mail["From"] = REPORTER
    mail["To"] = INTAKE_ADDRESS
    mail["Subject"] = f"VS: besked nummer {number}"
    mail["Message-ID"] = f"<load-{number}@kommune.example>"
    mail.set_content(f"Rapport {number}.\n\n---------- Forwarded message ---------\n"
                     f"From: Kasper <kasper@eksempel.example>\n"
                     f"Subject: besked nummer {number}\nTo: <{REPORTER}>\n\n"
                     f"Vi ved hvor du bor ({number}).\n")
    return mail.as_bytes(policy=policy.SMTP)  # CRLF, as stored: its SHA-256 is the row's


@dataclass
class Load:
    """What the sending thread sent and which daemon answered 250."""

    ports: tuple[int, int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, bytes] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)  # sha256 -> port that said 250
    failures: dict[int, int] = field(default_factory=dict)  # port -> failed attempts
    done: threading.Event = field(default_factory=threading.Event)
    unsent: list[int] = field(default_factory=list)

    def accepted_count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def run(self) -> None:
        """Send the reports alternating between the two daemons; what one refuses or drops
        goes to the other, as a real MTA with two MX hosts would do."""
        try:
            for number in range(REPORTS):
                raw = make_report(number)
                sha256 = hashlib.sha256(raw).hexdigest()
                with self.lock:
                    self.sent[sha256] = raw
                preferred = self.ports[number % 2]
                other = self.ports[1 - number % 2]
                if not any(self._send(port, sha256, raw) for port in (preferred, other)):
                    self.unsent.append(number)
        finally:
            self.done.set()

    def _send(self, port: int, sha256: str, raw: bytes) -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                assert client.sendmail(REPORTER, [INTAKE_ADDRESS], raw) == {}
        except (smtplib.SMTPException, OSError):
            with self.lock:
                self.failures[port] = self.failures.get(port, 0) + 1
            return False
        with self.lock:
            self.accepted[sha256] = port
        return True


def _state(url: str) -> tuple[list[Message], list[Case], list[OutboxMail]]:
    database = Database(url)
    try:
        with database.read() as session:
            return (list(session.scalars(select(Message))),
                    list(session.scalars(select(Case))),
                    list(session.scalars(select(OutboxMail))))
    finally:
        database.dispose()


@pytest.mark.slow
def test_two_daemons_one_killed_under_load_lose_and_double_nothing(
        tmp_path: Path, postgres_url: str, relay: tuple[CapturingRelay, int]) -> None:
    captured, relay_port = relay
    data_dir = tmp_path / "data"  # shared: both daemons keep blobs in one store
    nodes = []
    for name in ("a", "b"):
        port = free_port()
        config = write_toml(tmp_path / f"{name}.toml", {
            "storage": {"data_dir": str(data_dir), "database_url": postgres_url},
            "smtp": {"port": port, "server_hostname": f"{name}.chikanemail.test"},
            "intake": {"addresses": [INTAKE_ADDRESS]},
            # A dead daemon's claims go back when their lease runs out (its peers do not
            # look at its pid), so the test keeps the worker's lease short.
            "worker": {"processes": 1, "poll_seconds": 0.1, "retry_seconds": 0.0,
                       "lease_seconds": 5.0},
            "extract": {"ocr": False},
            "routing": {"default_manager": MANAGER},
            # The sender's lease is ten times its timeout, at least 60 s.
            "notify": {"smtp_host": "127.0.0.1", "smtp_port": relay_port,
                       "poll_seconds": 0.2, "first_retry_seconds": 0.05,
                       "timeout_seconds": 5.0},
            "plan": {"tick_seconds": 5.0},
            "logging": {"level": "INFO"},
        })
        nodes.append(Node(name, config, port, tmp_path / f"{name}.log"))
    first, survivor = nodes

    with ExitStack() as stack:
        # One after the other: the first one creates the schema.
        _start(first, stack)
        wait_until(lambda: "scheduler lock taken" in first.log_text(), timeout=DEADLINE,
                   message="the first daemon taking the scheduler lock")
        _start(survivor, stack)
        wait_until(lambda: "scheduler lock held by another daemon" in survivor.log_text(),
                   timeout=DEADLINE, message="the second daemon waiting for the lock")
        database = Database(postgres_url)
        stack.callback(database.dispose)
        assert lock_holder(database) == first.holder_name

        load = Load((first.port, survivor.port))
        sender = threading.Thread(target=load.run, name="load", daemon=True)
        sender.start()
        wait_until(lambda: load.accepted_count() >= KILL_AFTER_ACCEPTED or load.done.is_set(),
                   timeout=DEADLINE, message=f"{KILL_AFTER_ACCEPTED} accepted reports")
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(DEADLINE) == -signal.SIGKILL
        accepted_before_kill = load.accepted_count()
        assert not load.done.is_set(), "the load ended before the kill"
        sender.join(DEADLINE * 2)
        assert not sender.is_alive(), "the load did not finish"

        with load.lock:
            sent, accepted, failures = dict(load.sent), dict(load.accepted), dict(load.failures)
        assert load.unsent == [], "the survivor refused a report"
        assert set(accepted) == set(sent), "every report got a 250 from one of the daemons"
        assert len(accepted) > accepted_before_kill, "reports were sent after the kill"
        assert failures.get(survivor.port, 0) == 0, f"the survivor failed sends: {failures}"
        assert failures.get(first.port, 0) > 0, "nothing was sent to the dead daemon"

        # The scheduler lock moved to the survivor.
        wait_until(lambda: lock_holder(database) == survivor.holder_name, timeout=DEADLINE,
                   message="the survivor holding the scheduler lock")
        wait_until(lambda: "scheduler lock taken" in survivor.log_text(), timeout=DEADLINE,
                   message="the survivor logging that it took the lock")

        def settled() -> tuple[list[Message], list[Case], list[OutboxMail]] | None:
            messages, cases, outbox = _state(postgres_url)
            if (len(messages) == len(sent)
                    and all(row.state == "processed" for row in messages)
                    and len(cases) == len(sent)
                    and outbox and all(row.state == "sent" for row in outbox)):
                return messages, cases, outbox
            return None

        try:
            result = wait_until(settled, timeout=DEADLINE * 2.5, interval=0.2,
                                message="every report processed and every mail sent")
        except AssertionError:
            messages, cases, outbox = _state(postgres_url)
            raise AssertionError(
                f"{len(messages)} messages for {len(sent)} sent, states "
                f"{sorted({row.state for row in messages})}; {len(cases)} cases; outbox "
                f"states {sorted({row.state for row in outbox})}\n"
                f"{survivor.log_text()[-4000:]}") from None
        assert result is not None
        messages, cases, outbox = result

        survivor_process = survivor.process
        assert survivor_process is not None
        survivor_process.send_signal(signal.SIGTERM)
        assert survivor_process.wait(DEADLINE) == 0, survivor.log_text()[-4000:]

    # Every report stored once, processed, in a case of its own.
    by_sha = {row.sha256: row for row in messages}
    assert set(by_sha) == set(sent)
    case_of = {row.sha256: row.case_id for row in messages}
    assert None not in case_of.values()
    assert len(set(case_of.values())) == len(sent), "two reports share a case"
    assert {case.id for case in cases} == set(case_of.values()), "a case without its report"
    for sha256, raw in sent.items():
        assert (data_dir / "blobs").exists()
        assert by_sha[sha256].size == len(raw)

    # Case numbers unique and gap-free.
    sequences = sorted(case.sequence for case in cases)
    assert sequences == list(range(1, len(cases) + 1)), sequences
    assert len({case.number for case in cases}) == len(cases)

    # One manager notification per case; each reached the relay exactly once, except that a
    # mail the killed daemon was sending when it died may arrive twice (sent, not yet marked).
    notifications = [row for row in outbox if row.kind == "notification"]
    assert Counter(row.case_id for row in notifications) == Counter(case_of.values())
    arrived = captured.by_message_id()
    for row in outbox:
        copies = len(arrived.get(row.message_id, []))
        allowed = (1,) if row.attempts == 1 else (1, 2)
        assert copies in allowed, (f"{row.kind} {row.message_id} reached the relay {copies} "
                                   f"times after {row.attempts} attempts")
    assert set(arrived) == {row.message_id for row in outbox}, "mail that is in no outbox row"
    assert len(captured.to(MANAGER)) >= len(cases)
