"""A thread that does one kind of work over and over: the worker and the outbox sender."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("chikanemail.notifier.polling")

# After repeated errors (the database down) the pause doubles up to this.
MAX_ERROR_PAUSE_SECONDS = 60.0
_MAX_DOUBLINGS = 16  # 2**16 times any poll interval is past the cap anyway


class PollingThread:
    """Runs `work` (which returns how much it did) in a thread of its own: again at once while
    it finds work, after `poll_seconds` or a `wake()` when it found none, and after a pause
    doubling up to a minute when it raised. Nothing is lost by an error: claims expire.

    A `wake()` cuts that pause short after its first `poll_seconds`: a wake means something
    was just committed (a mail stored, a mail queued), so the database is back. The work is
    still tried at most once per `poll_seconds` while it fails, however many wakes come.
    """

    def __init__(self, name: str, work: Callable[[], int], poll_seconds: float, *,
                 failure: str, busy_at_stop: str) -> None:
        self.name = name
        self.work = work
        self.poll_seconds = poll_seconds
        self._failure = failure  # logged with the traceback when `work` raises
        self._busy_at_stop = busy_at_stop  # logged when the work outlasts `stop`'s timeout
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """Whether `stop` was asked for: long work should end early."""
        return self._stop.is_set()

    def wake(self) -> None:
        """Run the work now instead of after the poll interval (safe from any thread)."""
        self._wakeup.set()

    def start(self) -> None:
        """Start the thread; refused while it runs."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the work in progress finish (up to `timeout` seconds) and end the thread."""
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s", self._busy_at_stop)
            self._thread = None

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                done = self.work()
                failures = 0
            except Exception:
                failures += 1
                pause = min(MAX_ERROR_PAUSE_SECONDS,
                            self.poll_seconds * 2.0 ** min(failures, _MAX_DOUBLINGS))
                log.exception("%s; retrying in %.1f s or when woken", self._failure, pause)
                # A wake that came meanwhile (or comes during the rest) ends the pause.
                if not self._stop.wait(min(pause, self.poll_seconds)):
                    self._wakeup.wait(max(0.0, pause - self.poll_seconds))
                continue
            if done == 0:
                self._wakeup.wait(self.poll_seconds)
