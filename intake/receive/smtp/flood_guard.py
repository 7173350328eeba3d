"""Holding a flood at the door: connections counted per client and in all, refusals
logged once a minute, and the pace a DATA must keep."""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from intake.receive.smtp.handler import REPLY_TOO_MANY_CONNECTIONS
from intake.receive.smtp.throttled_log import ThrottledLog

log = logging.getLogger("chikanemail.intake.smtp")
# What the tracker counts: the listener's session protocols.
Connection = TypeVar("Connection", bound=Hashable)

REPLY_TOO_MANY_FROM_CLIENT = "421 4.7.0 Too many connections from your address; try again later"


# A flood is logged once per client in this many seconds, with a count of what was refused.
FLOOD_LOG_INTERVAL_SECONDS = 60.0


def client_of(peer: Any) -> str | None:
    """Who a connection counts against: its IPv4 address, or the /64 of an IPv6 address
    (one host usually has a whole /64). None for a unix socket."""
    if not (isinstance(peer, tuple) and peer):
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return str(peer[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FloodLog:
    """Logs a refusal once per client per interval, not once per connection: a flood must
    not flood the journal too."""

    def __init__(self, interval: float = FLOOD_LOG_INTERVAL_SECONDS) -> None:
        self._lines = ThrottledLog(log, logging.WARNING, interval)

    def refused(self, client: str, why: str) -> None:
        """Note one refused connection (or cut session) of this client."""
        self._lines.say(f"{client} {why}", "%s client=%s", why, client)


class ConnectionTracker(Generic[Connection]):
    """Counts open connections against the caps and remembers them for shutdown."""

    def __init__(self, limit: int, per_client_limit: int = 0) -> None:
        self.limit = limit
        self.per_client_limit = per_client_limit
        self.open: set[Connection] = set()
        self.per_client: Counter[str] = Counter()
        self.flood_log = FloodLog()

    def refusal(self, client: str | None) -> str | None:
        """The reply that refuses a new connection of this client now, if any (logged).

        The client's own limit comes first: one address flooding us gets its 421 before the
        listener is full, and everyone else still gets in. A client of None (a unix socket,
        or an exempt listener) has no limit of its own.
        """
        if (client is not None and self.per_client_limit
                and self.per_client[client] >= self.per_client_limit):
            self.flood_log.refused(client, "connection refused: smtp.max_connections_per_client "
                                   "reached")
            return REPLY_TOO_MANY_FROM_CLIENT
        if len(self.open) >= self.limit:
            # Once a minute in all, not per client: a full listener is not one client's doing.
            self.flood_log.refused("(any)", "connection refused: smtp.max_connections reached")
            return REPLY_TOO_MANY_CONNECTIONS
        return None

    def admit(self, protocol: Connection, client: str | None) -> str | None:
        """Admit a new connection, or say which reply refuses it."""
        refusal = self.refusal(client)
        if refusal is not None:
            return refusal
        self.open.add(protocol)
        if client is not None:
            self.per_client[client] += 1
        return None

    def release(self, protocol: Connection, client: str | None) -> None:
        """Forget a closed connection."""
        if protocol not in self.open:
            return
        self.open.discard(protocol)
        if client is not None:
            self.per_client[client] -= 1
            if self.per_client[client] <= 0:
                del self.per_client[client]


@dataclass(frozen=True)
class DataPace:
    """How fast a DATA must arrive: at least `min_bytes_per_second` on average over each
    window of the idle timeout (at least one byte), and all of it within `deadline_seconds`
    (0: none); and how long a session may go without handing in a mail,
    `session_deadline_seconds` (0: for ever). None of it applies to an exempt listener
    (LMTP, unix socket)."""

    min_bytes_per_second: int
    deadline_seconds: float
    session_deadline_seconds: float = 0.0


class DataWindow:
    """The bytes of DATA received in the current window of the idle timeout."""

    def __init__(self, required: int) -> None:
        self.required = max(1, required)
        self.received = 0
