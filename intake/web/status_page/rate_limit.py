"""How often one client may open status pages: a sliding window per client address, kept
in the daemon's memory.

A secret of 256 bits cannot be guessed; the limit keeps a client from trying anyway, and
from using the page to load the database. It is per daemon: behind several daemons a client
gets the limit of each, which is still far from guessing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# A reporter reloads the page now and then; this many opens in the window is plenty.
REQUESTS_PER_CLIENT = 30
WINDOW_SECONDS = 300.0
# Beyond this many clients remembered, those with nothing left in the window are forgotten.
_PRUNE_ABOVE = 10_000


class ClientRateLimit:
    """Counts requests per client within a window and says when one is over its limit."""

    def __init__(self, limit: int = REQUESTS_PER_CLIENT, window_seconds: float = WINDOW_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate limit needs at least 1 request in a positive window")
        self.limit = limit
        self.window_seconds = window_seconds
        self._monotonic = monotonic
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Count a request of `client`; False when it already made `limit` in the window."""
        now = self._monotonic()
        since = now - self.window_seconds
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= since:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > _PRUNE_ABOVE:
                self._forget_idle(since)
            return True

    def _forget_idle(self, since: float) -> None:
        for client in [client for client, hits in self._hits.items()
                       if not hits or hits[-1] <= since]:
            del self._hits[client]
