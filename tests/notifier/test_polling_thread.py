"""The polling thread behind the worker and the sender: after errors it pauses, doubling,
and a wake (something was just committed: the database answers) ends the pause."""

from __future__ import annotations

import threading
import time

from notifier.polling_thread import PollingThread
from tests.support import wait_until

POLL = 0.05


class FailingWork:
    """Raises while `failing`; remembers when it was called."""

    def __init__(self) -> None:
        self.failing = True
        self.calls: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.calls.append(time.monotonic())
        if self.failing:
            raise ConnectionError("the database is down")
        return 0

    def count(self) -> int:
        with self.lock:
            return len(self.calls)


def polling(work: FailingWork) -> PollingThread:
    return PollingThread("test-polling", work, POLL, failure="work failed", busy_at_stop="busy")


def test_a_wake_ends_the_error_pause() -> None:
    work = FailingWork()
    thread = polling(work)
    thread.start()
    try:
        # After 5 failures the pause is 32 poll intervals (1.6 s).
        wait_until(lambda: work.count() >= 5, timeout=10, message="five failures")
        work.failing = False
        woken = time.monotonic()
        thread.wake()
        wait_until(lambda: work.count() >= 6, timeout=10, message="a try after the wake")
        assert work.calls[5] - woken < 0.8, "the wake did not end the 1.6 s pause"
    finally:
        thread.stop(5)


def test_wakes_do_not_make_a_tight_loop_of_errors() -> None:
    work = FailingWork()
    thread = polling(work)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            thread.wake()
            time.sleep(0.001)  # a stream of wakes, as from a flood of stored mails
    finally:
        thread.stop(5)
    # At most one try per poll interval (plus the first), however many wakes came.
    assert 2 <= work.count() <= 1.0 / POLL + 2, work.count()
    gaps = [later - earlier for earlier, later in zip(work.calls, work.calls[1:], strict=False)]
    assert min(gaps) >= POLL * 0.9, gaps
