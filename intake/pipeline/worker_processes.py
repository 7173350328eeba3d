"""The worker processes of a daemon with `[worker] processes` above 1: started, woken when a
message is stored, restarted when one dies, stopped cleanly with the daemon.

A dead worker process's claims are handed back as soon as it is reaped (its pid no longer
runs: `ClaimerIdentity.is_abandoned`), and the others are woken to take them, so nothing
waits for a lease. A process that keeps dying soon after its start is restarted after a
pause doubling up to a minute, so a broken installation does not spin. Processes come from
a fork server that has imported the pipeline once: a restart costs a fork, not an import.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from intake.pipeline.worker_process import OUTBOX, READY, STOP, WAKE, run_worker_process
from intake.service.config import AppConfig
from storage.claims import ClaimerIdentity
from storage.database import Database
from storage.messages import release_abandoned_claims

log = logging.getLogger("chikanemail.intake.worker")

# A process that dies sooner than this after its start counts as dying at start.
QUICK_DEATH_SECONDS = 10.0
MAX_RESTART_PAUSE_SECONDS = 60.0
# How long a stopping worker process may take beyond its message's own end: its goodbye.
_EXIT_MARGIN_SECONDS = 2.0
# How often the supervisor retries handing back claims while the database does not answer.
_RETRY_SECONDS = 1.0
# What the fork server imports once, before forking any worker process.
_PRELOAD = ["intake.service.daemon", "intake.pipeline.worker_process"]


@dataclass
class _Slot:
    """One worker process's place: the process now in it and how it has fared."""

    number: int
    process: BaseProcess | None = None
    pipe: Connection | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    start_after: float = 0.0  # monotonic time of the next (re)start
    ready: bool = False  # the process has built its pipeline and takes work
    pids: list[int] = field(default_factory=list)  # every process it has had, in order


class WorkerProcesses:
    """`[worker] processes` worker processes (one per core when 0), each running the
    pipeline one message at a time, supervised by a thread of the daemon's process."""

    def __init__(self, config: AppConfig, database: Database,
                 on_outbox: Callable[[], None] | None = None) -> None:
        self.config = config
        self.database = database
        self.on_outbox = on_outbox
        self.identity = ClaimerIdentity()
        self._slots = [_Slot(number) for number in range(1, config.worker.process_count + 1)]
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._doorbell_read, self._doorbell_write = os.pipe()
        os.set_blocking(self._doorbell_write, False)
        self._wake_asked = threading.Event()
        self._stopping = threading.Event()
        self._stop_seconds = 30.0  # set by `stop`: how long a process may finish its message
        self._recover_pending = False
        self._thread: threading.Thread | None = None

    # -- what the daemon calls ------------------------------------------------

    def start(self) -> None:
        """Hand back what dead workers of this host left, start the processes and their
        supervisor."""
        if self._thread is not None:
            raise RuntimeError("the worker processes are already running")
        self.recover_abandoned()
        now = time.monotonic()
        for slot in self._slots:
            self._start(slot, now)
        self._thread = threading.Thread(target=self._supervise, name="chikanemail-workers",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Tell the worker processes a new message is waiting (safe from any thread, never
        blocks)."""
        self._wake_asked.set()
        self._ring()

    def recover_abandoned(self) -> int:
        """Hand back messages left mid-processing by a dead worker of this host; how many."""
        released = release_abandoned_claims(
            self.database, is_abandoned=self.identity.is_abandoned,
            max_attempts=self.config.worker.max_attempts)
        if released:
            log.info("resumed %d messages left mid-processing by a stopped worker", released)
        return released

    def stop(self, timeout: float = 30.0) -> None:
        """Let each process finish its message, stop them all within `timeout` seconds,
        kill what is left then and hand back its claims."""
        self._stop_seconds = max(0.0, timeout - _EXIT_MARGIN_SECONDS)
        self._stopping.set()
        self._ring()
        if self._thread is not None:
            self._thread.join(timeout + _EXIT_MARGIN_SECONDS)
            if self._thread.is_alive():
                return  # it still uses the doorbell; the process exit closes it
            self._thread = None
        # A late wake must not write into whatever file gets these numbers next.
        doorbell, self._doorbell_write = self._doorbell_write, -1
        os.close(self._doorbell_read)
        os.close(doorbell)

    def pids(self) -> list[int]:
        """The process ids of the worker processes running now, by their number."""
        return [slot.process.pid for slot in self._slots
                if slot.process is not None and slot.process.pid is not None]

    def ready_count(self) -> int:
        """How many worker processes have built their pipeline and take work."""
        return sum(1 for slot in self._slots if slot.ready and slot.process is not None)

    def restarts(self) -> int:
        """How many times a worker process was started again after it ended."""
        return sum(max(0, len(slot.pids) - 1) for slot in self._slots)

    # -- the supervisor thread ---------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                self._watch_once()
            except Exception:  # the supervisor must outlive any one failure
                log.exception("worker supervisor failed; carrying on")
                self._stopping.wait(_RETRY_SECONDS)
        self._stop_all()

    def _watch_once(self) -> None:
        """Wait for something to happen (a wake, a word from a process, a process ending, a
        restart falling due) and deal with it."""
        live = [slot for slot in self._slots if slot.process is not None]
        waiting: list[Connection | int] = [self._doorbell_read]
        waiting += [slot.pipe for slot in live if slot.pipe is not None]
        waiting += [slot.process.sentinel for slot in live if slot.process is not None]
        ready = wait(waiting, timeout=self._next_timeout())
        if self._doorbell_read in ready:
            _drain(self._doorbell_read)
        for slot in live:
            if slot.pipe is not None and slot.pipe in ready:
                self._hear(slot)
            if slot.process is not None and slot.process.sentinel in ready:
                self._bury(slot)
        if self._recover_pending and not self._stopping.is_set():
            self._recover_now()
        if self._wake_asked.is_set() and not self._stopping.is_set():
            self._wake_asked.clear()
            self._tell_all(WAKE)
        now = time.monotonic()
        for slot in self._slots:
            if slot.process is None and now >= slot.start_after and not self._stopping.is_set():
                self._start(slot, now)

    def _next_timeout(self) -> float | None:
        if self._recover_pending:
            return _RETRY_SECONDS
        due = [slot.start_after for slot in self._slots if slot.process is None]
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _hear(self, slot: _Slot) -> None:
        """Read what a process said: `outbox` wakes the sender, `ready` marks it ready."""
        pipe = slot.pipe
        assert pipe is not None
        try:
            while pipe.poll():
                said = pipe.recv()
                if said == READY:
                    slot.ready = True
                elif said == OUTBOX and self.on_outbox is not None:
                    self.on_outbox()
        except (EOFError, OSError):
            pass  # the process ended; its sentinel says so too

    def _bury(self, slot: _Slot) -> None:
        """A process ended: reap it, hand back its claims, wake the others, and schedule
        its successor."""
        process = slot.process
        assert process is not None
        process.join()
        lived = time.monotonic() - slot.started_at
        if slot.pipe is not None:
            slot.pipe.close()
        slot.process, slot.pipe, slot.ready = None, None, False
        if self._stopping.is_set():
            return
        slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        pause = 0.0 if slot.quick_deaths == 0 else min(
            MAX_RESTART_PAUSE_SECONDS, 2.0 ** (slot.quick_deaths - 1))
        slot.start_after = time.monotonic() + pause
        log.warning("worker process %d (pid %s) ended (%s) after %.1f s; its messages are "
                    "handed back and it is started again in %.0f s", slot.number, process.pid,
                    _how_it_ended(process.exitcode), lived, pause)
        self._recover_now()

    def _recover_now(self) -> None:
        """Hand back dead processes' claims and wake the living; retried while the database
        does not answer."""
        try:
            self.recover_abandoned()
        except Exception:
            if not self._recover_pending:
                log.exception("could not hand back a dead worker process's messages; "
                              "retrying")
            self._recover_pending = True
            return
        self._recover_pending = False
        self._tell_all(WAKE)

    def _start(self, slot: _Slot, now: float) -> None:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=run_worker_process, name=f"chikanemail-worker-{slot.number}",
            args=(self.config, slot.number, theirs), daemon=True)
        process.start()
        theirs.close()  # the process has its own end now
        slot.process, slot.pipe, slot.started_at = process, ours, now
        if process.pid is not None:
            slot.pids.append(process.pid)

    def _tell_all(self, what: str | tuple[str, float]) -> None:
        for slot in self._slots:
            if slot.pipe is None:
                continue
            # One that is ending cannot hear it; its sentinel says so.
            with contextlib.suppress(BrokenPipeError, EOFError, OSError):
                slot.pipe.send(what)

    def _stop_all(self) -> None:
        """Tell every process to stop, wait for them until the deadline, kill what is left
        and hand back its claims."""
        deadline = time.monotonic() + self._stop_seconds + _EXIT_MARGIN_SECONDS
        self._tell_all((STOP, self._stop_seconds))
        for slot in self._slots:
            process = slot.process
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker process %d (pid %s) still busy at shutdown; killed, its "
                            "message is handed back", slot.number, process.pid)
                process.kill()
                process.join()
            if slot.pipe is not None:
                slot.pipe.close()
            slot.process, slot.pipe = None, None
        # A process killed now, or one that gave up waiting for its message, left a claim.
        try:
            self.recover_abandoned()
        except Exception:
            log.exception("could not hand back the stopped workers' messages; the next start "
                          "does")

    def _ring(self) -> None:
        if self._doorbell_write < 0:
            return  # stopped
        # Already rung (the pipe is full): nothing to add.
        with contextlib.suppress(OSError):
            os.write(self._doorbell_write, b"\0")


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.read(fd, 4096)


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
