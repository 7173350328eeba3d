"""R6: PostgreSQL stops for a while under SMTP load, then starts again.

While it is down the receiver answers 451 (never 250 without a row, never 5xx) and
`chikanemail health` says the database check fails; the worker and the outbox sender back off
(a bounded number of error lines, no thread dies) and resume once it is back; nothing is lost:
every mail that got 250 has exactly one row and is processed, each report has one case, and
the relay gets one receipt and one notification for each.

The database is a private cluster (`initdb` on a free port, run as an unprivileged user when
the tests run as root), never the machine's shared server. The daemon runs as a process
(`chikanemail serve`) and the load comes from another process that retries what got no 250,
writing one ledger line per try (`tests/faults/smtp_load.py`, as R1 does).
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from storage.cases import list_cases
from storage.database import Database
from storage.models import Message, MessageState, OutboxMail, OutboxState
from tests.faults.smtp_load import Ledger, load_mail, run_load
from tests.faults.test_relay_down import relay_on
from tests.mail_flow import CapturingRelay
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    chikanemail_command,
    daemon_process,
    free_port,
    message_rows,
    port_accepts,
    wait_until,
    write_toml,
)

# The database is down this long, as issue 18 asks; long enough, too, that a thread's error
# pause (doubling from the poll interval) would still run for seconds after the restart if a
# wake did not end it. Too slow for the README's test command: it runs in the soak suite.
OUTAGE_SECONDS = 30.0
# Mails sent before the outage and after it, at least; each REPORT_EVERY-th is a report.
BEFORE = 20
AFTER = 20
REPORT_EVERY = 5
CONNECTIONS = 2
DEADLINE = 60.0
# The worker's and the sender's error lines while the database is down are bounded: their
# pause doubles after each failure (notifier/polling_thread.py). A tight loop at the poll
# interval would log hundreds.
MAX_ERROR_LINES_PER_THREAD = 15
# The worker processes, and the sender sends, within this time after the database is back.
RESUME_SECONDS = 5.0


# -- a private PostgreSQL cluster ----------------------------------------------

def postgres_bindir() -> Path | None:
    """Where initdb and postgres are: `pg_config --bindir`, else Debian's versioned dirs."""
    candidates: list[str] = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                               check=False)
        candidates.append(found.stdout.strip())
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of our own: its data dir, port, and a server we stop and start."""

    bindir: Path
    data_dir: Path
    port: int
    user: str | None  # who runs it (None: ourselves)
    server: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _as_owner(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def init(self) -> None:
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data_dir / "db"),
                        "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, **self._as_owner())

    def start(self) -> None:
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 (the server's)
        with log:
            self.server = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data_dir / "db"),
                 "-p", str(self.port), "-k", str(self.data_dir),
                 "-c", "listen_addresses=127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, **self._as_owner())
        wait_until(self._accepts, timeout=DEADLINE, interval=0.1,
                   message="the private PostgreSQL server")

    def stop(self) -> None:
        """Fast shutdown: every session is cut, as when the server is stopped by its admin."""
        assert self.server is not None
        self.server.send_signal(signal.SIGINT)
        self.server.wait(DEADLINE)
        self.server = None

    def _accepts(self) -> bool:
        assert self.server is not None
        assert self.server.poll() is None, (self.data_dir / "postgres.log").read_text()
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False
        finally:
            engine.dispose()

    def create_database(self) -> str:
        """A new, empty database of the cluster; its URL."""
        name = f"chik_{time.time_ns():x}"
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail("no PostgreSQL server binaries (initdb) on this machine: install the "
                    "postgresql package (.ci/run expects the machine's server)")
    user: str | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.fail("running as root and there is no postgres user to run a cluster as")
    # Not under pytest's tmp_path: that is private to us, and the server's user needs its own.
    data_dir = Path(tempfile.mkdtemp(prefix="chikanemail-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    found = PrivateCluster(bindir, data_dir, free_port(), user)
    try:
        found.init()
        found.start()
        yield found
    finally:
        if found.server is not None:
            found.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# -- the load: a sender process that retries what got no 250 ------------------

def is_report(number: int) -> bool:
    return number % REPORT_EVERY == 0


def accepted_since(ledger: Ledger, moment: float) -> list[dict[str, Any]]:
    """The tries that got 250 and ended after `moment` (epoch seconds)."""
    return [entry for entry in ledger.entries() if entry["ok"] and entry["at"] >= moment]


# -- what the daemon did -------------------------------------------------------

def counts(database_url: str) -> tuple[int, int, int]:
    """Rows, rows processed, outbox mails not yet sent (a fresh connection each time)."""
    database = Database(database_url)
    try:
        with database.read() as session:
            total, done = session.execute(select(
                func.count(), func.count().filter(Message.state == MessageState.PROCESSED),
            ).select_from(Message)).one()
            unsent = session.execute(select(func.count()).select_from(OutboxMail).where(
                OutboxMail.state != OutboxState.SENT)).scalar_one()
    finally:
        database.dispose()
    return int(total), int(done), int(unsent)


def first_done_after(database_url: str, moment: float) -> tuple[float, float]:
    """Seconds from `moment` (epoch) until the first message was processed, and the first
    mail sent, after it: when the worker and the sender resumed."""
    since = datetime.fromtimestamp(moment, UTC)
    database = Database(database_url)
    try:
        with database.read() as session:
            processed = session.execute(select(func.min(Message.processed_at)).where(
                Message.processed_at > since)).scalar_one()
            sent = session.execute(select(func.min(OutboxMail.sent_at)).where(
                OutboxMail.sent_at > since)).scalar_one()
    finally:
        database.dispose()
    assert processed is not None and sent is not None, "nothing done after the restart"
    return ((processed.replace(tzinfo=processed.tzinfo or UTC) - since).total_seconds(),
            (sent.replace(tzinfo=sent.tzinfo or UTC) - since).total_seconds())


def health(config: Path) -> tuple[int, dict[str, str]]:
    """`chikanemail health --json` as the admin runs it: exit status, status of each check."""
    result = subprocess.run([*chikanemail_command(), "--config", str(config), "health",
                             "--json"], capture_output=True, text=True, timeout=DEADLINE,
                            check=False)
    report = json.loads(result.stdout)
    return result.returncode, {check["name"]: check["status"] for check in report["checks"]}


def run_outage(cluster: PrivateCluster, tmp_path: Path, outage_seconds: float) -> None:
    database_url = cluster.create_database()
    port, relay_port = free_port(), free_port()
    config = write_toml(tmp_path / "chikanemail.toml", {
        "storage": {"data_dir": str(tmp_path / "data"), "database_url": database_url},
        "smtp": {"port": port, "server_hostname": "chikanemail.test", "timeout_seconds": 30.0},
        "intake": {"addresses": [INTAKE_ADDRESS], "allowed_sender_domains": ["kommune.example"]},
        "routing": {"default_manager": MANAGER},
        "worker": {"processes": 1, "poll_seconds": 0.2, "retry_seconds": 0.0,
                   "batch_size": 10},
        "notify": {"smtp_host": "127.0.0.1", "smtp_port": relay_port, "poll_seconds": 0.2,
                   "first_retry_seconds": 0.05, "max_retry_seconds": 1.0},
        "extract": {"ocr": False},
        "logging": {"level": "WARNING"},
    })
    log = tmp_path / "daemon.log"
    ledger = Ledger(tmp_path / "ledger.jsonl")
    mail = partial(load_mail, f"{time.time_ns():x}", report_every=REPORT_EVERY)
    relay = CapturingRelay()
    context = multiprocessing.get_context("spawn")
    finish = context.Event()
    load = context.Process(target=run_load,
                           args=(port, mail, str(ledger.path)),
                           kwargs={"connections": CONNECTIONS, "finish": finish, "pause": 0.1},
                           name="smtp-load")

    def log_text() -> str:
        return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""

    with relay_on(relay_port, relay), daemon_process(config, log) as daemon:
        try:
            wait_until(lambda: daemon.poll() is not None or port_accepts(port),
                       timeout=DEADLINE, interval=0.05, message="the daemon's port")
            assert daemon.poll() is None, f"daemon exited early:\n{log_text()[-4000:]}"
            load.start()
            wait_until(lambda: len(ledger.accepted()) >= BEFORE, timeout=DEADLINE,
                       interval=0.05, message=f"{BEFORE} mails answered 250")

            cluster.stop()
            stopped = time.time()
            code, checks = health(config)
            assert code == 1 and checks["database"] == "fail", checks
            wait_until(lambda: any(e["code"] == 451 and e["at"] > stopped
                                   for e in ledger.entries()),
                       timeout=DEADLINE, interval=0.05, message="a 451 while the database is down")
            # Holding the outage for its length is the point of the test, not a synchronisation.
            time.sleep(max(0.0, outage_seconds - (time.time() - stopped)))
            assert daemon.poll() is None, f"the daemon died:\n{log_text()[-4000:]}"
            # A try begun after the server had stopped can get no 250.
            during = [e for e in ledger.entries() if e["began"] > stopped]
            assert not [e for e in during if e["code"] == 250], "250 while the database is down"
            log_during = log_text()
            restarting = time.time()
            cluster.start()
            started = time.time()

            # Recovery: mails get 250 again, and mails sent after the restart are processed.
            wait_until(lambda: accepted_since(ledger, started), timeout=DEADLINE, interval=0.05,
                       message="a 250 after the database is back")
            first_250 = time.time() - started
            target = len(ledger.accepted()) + AFTER
            wait_until(lambda: len(ledger.accepted()) >= target, timeout=DEADLINE,
                       interval=0.05, message=f"{AFTER} more mails answered 250")
            code, checks = health(config)
            assert checks["database"] == "ok", checks
            finish.set()
            load.join(DEADLINE)
            assert load.exitcode == 0, f"the load process failed: {load.exitcode}"
            accepted = ledger.accepted()
            reports = [number for number in accepted if is_report(number)]

            def drained() -> bool:
                total, done, unsent = counts(database_url)
                return (total == len(accepted) and done == total and unsent == 0
                        and len(relay.mails) >= 2 * len(reports))

            try:
                wait_until(drained, timeout=DEADLINE, interval=0.2,
                           message="every mail processed and every receipt sent")
            except AssertionError:
                raise AssertionError(f"{counts(database_url)} of {len(accepted)}, "
                                     f"{len(relay.mails)} sent\n{log_text()[-4000:]}") from None
            recovered = time.time() - started
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(DEADLINE) == 0, log_text()[-4000:]
        finally:
            finish.set()
            if load.is_alive():
                load.join(DEADLINE)
            if load.is_alive():
                load.kill()
            if cluster.server is None:
                cluster.start()

    entries = ledger.entries()
    refusals = [e for e in entries if e["code"] != 250]
    during = [e for e in entries if e["began"] > stopped and e["at"] < restarting]
    assert [e for e in refusals if e["code"] is not None and e["code"] >= 500] == []
    assert during, "no try while the database was down"
    assert all(e["code"] == 451 for e in during), {str(e["code"]) for e in during}
    given_451 = sum(e["code"] == 451 for e in entries)

    # Nothing lost: every 250 has one row, processed; nothing got a row without a 250 in the end.
    rows = message_rows(database_url)
    by_sha = {row.sha256: row for row in rows}
    assert len(by_sha) == len(rows), "one row per SHA-256"
    assert set(by_sha) == set(accepted.values())
    assert all(row.state == MessageState.PROCESSED for row in rows)
    database = Database(database_url)
    try:
        cases = list_cases(database)
    finally:
        database.dispose()
    assert len(cases) == len(reports), "one case per report"
    assert len({by_sha[accepted[number]].case_id for number in reports} - {None}) == len(reports)
    # One receipt (to the reporter) and one notification (to the manager) per report.
    for number in reports:
        reporter = f"ansat{number}@kommune.example"
        assert len(relay.to(reporter)) == 1, number
    assert len(relay.to(MANAGER)) == len(reports)
    assert all(len(mails) == 1 for mails in relay.by_message_id().values())

    # They resumed soon after the database was back, not after their error pause ran out.
    worker_resumed, sender_resumed = first_done_after(database_url, started)
    assert worker_resumed <= RESUME_SECONDS and sender_resumed <= RESUME_SECONDS, (
        worker_resumed, sender_resumed)

    # The threads backed off while the database was down, and none died (they resumed).
    for failure in ("worker could not claim", "sender could not claim"):
        lines = log_during.count(failure)
        assert 1 <= lines <= MAX_ERROR_LINES_PER_THREAD, (failure, lines)
    print(f"\noutage {outage_seconds:.0f} s: {given_451} answers 451 "
          f"({len(during)} while down), {len(accepted)} mails 250, after the restart: first 250 "
          f"{first_250:.1f} s, worker {worker_resumed:.1f} s, sender {sender_resumed:.1f} s, "
          f"all processed and sent {recovered:.1f} s")


@pytest.mark.soak
@pytest.mark.integration
def test_thirty_second_database_outage_under_load(cluster: PrivateCluster,
                                                  tmp_path: Path) -> None:
    run_outage(cluster, tmp_path, OUTAGE_SECONDS)
