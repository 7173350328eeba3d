"""Log lines said once per kind per interval: a flood of refusals, or of 451s while the disk
is full or the database is down, must not flood the journal too."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

# How many kinds of line are remembered at once; past it the memory is cleared (bounded,
# at the price of some lines said twice).
MAX_KINDS = 4096


class ThrottledLog:
    """Says a line of one kind at most once per `interval` seconds; the next one says how
    many were left out since."""

    def __init__(self, logger: logging.Logger, level: int, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.clock = clock
        self.level = level
        self.interval = interval
        self._said_at: dict[str, float] = {}
        self._left_out: Counter[str] = Counter()

    def say(self, kind: str, message: str, *args: object) -> None:
        """Log `message % args` unless a line of this kind was said within the interval."""
        now = self.clock()
        said_at = self._said_at.get(kind)
        if said_at is not None and now - said_at < self.interval:
            self._left_out[kind] += 1
            return
        if len(self._said_at) >= MAX_KINDS:
            self._forget_quiet_kinds(now)
            if len(self._said_at) >= MAX_KINDS:  # that many kinds at once
                self._said_at.clear()
                self._left_out.clear()
        self._said_at[kind] = now
        more = self._left_out.pop(kind, 0)
        self.logger.log(self.level, message + " (%d more since the last such line; logged "
                        "once per %d s)", *args, more, self.interval)

    def _forget_quiet_kinds(self, now: float) -> None:
        for kind, said_at in list(self._said_at.items()):
            if now - said_at >= self.interval:
                del self._said_at[kind]
                self._left_out.pop(kind, None)
