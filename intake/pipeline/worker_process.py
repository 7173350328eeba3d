"""One worker process: the pipeline (extraction, images, OCR, filing) in a process of its own.

Started by `WorkerProcesses` in the daemon's process, which keeps the listeners, the IMAP
threads, the outbox sender and the scheduler. The two talk over one pipe: the daemon says
`wake` (a message was stored) and `stop`; the worker process says `outbox` (mails were
queued and committed). When the pipe closes (the daemon died) the process stops as if told.

Each process takes one message at a time, so a message never waits in one process's batch
while another process idles; claims are safe between processes (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from dataclasses import replace
from multiprocessing.connection import Connection
from types import FrameType

from intake.pipeline.worker import Worker
from intake.service.config import AppConfig
from intake.service.logs import configure_logging
from storage.blobstore import BlobStore
from storage.database import Database

log = logging.getLogger("chikanemail.intake.worker")

# What the daemon and a worker process say to each other over their pipe.
WAKE = "wake"
STOP = "stop"
OUTBOX = "outbox"
READY = "ready"
# How long the message under way may take when the process is stopped by a signal or by the
# daemon going away (the daemon's own stop says how long).
DEFAULT_STOP_SECONDS = 30.0


def run_worker_process(config: AppConfig, number: int, pipe: Connection) -> None:
    """Run the pipeline in this process until the daemon says stop (with how long the
    message under way may take to finish) or goes away."""
    # Ctrl-C reaches the whole process group: the daemon decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = _StopRequest()

    def _stop_on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop_on_signal)
    configure_logging(config.logging.level, log_format=config.logging.format,
                      process_fields={"worker": str(number)})
    # Imported here: the daemon module imports this one.
    from intake.service.daemon import pipeline_for

    database = Database(config.storage.effective_database_url)
    sending = threading.Lock()

    def _tell_outbox() -> None:
        with sending:
            _send(pipe, OUTBOX)

    try:
        steps = pipeline_for(config, on_outbox=_tell_outbox)
        worker = Worker(BlobStore(config.storage.blob_root), database,
                        replace(config.worker, batch_size=1), steps)
        worker.start()
        log.info("worker process %d started pid=%d", number, os.getpid())
        with sending:
            _send(pipe, READY)
        listener = threading.Thread(target=_listen, args=(pipe, worker, stop),
                                    name="chikanemail-worker-pipe", daemon=True)
        listener.start()
        while not stop.wait(1.0):  # a timed wait lets SIGTERM's handler run promptly
            pass
        worker.stop(stop.seconds)
        log.info("worker process %d stopped pid=%d", number, os.getpid())
    finally:
        database.dispose()


class _StopRequest(threading.Event):
    """Set when the process is to stop; `seconds`: how long its message may take to end."""

    seconds = DEFAULT_STOP_SECONDS


def _listen(pipe: Connection, worker: Worker, stop: _StopRequest) -> None:
    """Pass the daemon's wakes on to the worker; set `stop` when told, or when the pipe
    closes (the daemon is gone)."""
    while not stop.is_set():
        try:
            said = pipe.recv()
        except (EOFError, OSError):
            break
        if said == WAKE:
            worker.wake()
        elif isinstance(said, tuple) and said and said[0] == STOP:
            stop.seconds = float(said[1])
            break
    stop.set()


def _send(pipe: Connection, what: str) -> None:
    """Tell the daemon something; a daemon that is gone has nobody to tell."""
    with contextlib.suppress(BrokenPipeError, EOFError, OSError):
        pipe.send(what)
