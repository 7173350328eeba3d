"""The hostile side of R7 (tests/faults/test_smtp_flood.py), run as a process of its own so
that it does not share the daemon's interpreter lock.

    python -m tests.faults.flood_clients HOST PORT IDLE SLOW TIMEOUT

Opens IDLE connections from 127.0.0.1 that never say anything, and opens a new one for each
the server closes; SLOW connections from 127.0.0.3 go as far as DATA and then send one byte
every 0.2 s (slowloris). Prints "ready" once all are connected, floods until its stdin is
closed, then waits (up to 2 x TIMEOUT + 5 s) for the server to close the idle connections
it admitted, and prints one line of JSON with what happened.
"""

from __future__ import annotations

import contextlib
import json
import resource
import selectors
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.support import INTAKE_ADDRESS

FLOODER = "127.0.0.1"
SLOW = "127.0.0.3"
TRICKLE_PAUSE = 0.2  # seconds between the bytes of a slowloris
RECONNECT_EVERY = 0.25  # the flood reopens what the server closed this often


@dataclass
class Connection:
    sock: socket.socket
    slow: bool
    opened: float = field(default_factory=time.monotonic)
    data_started: float = 0.0
    received: bytes = b""


def connect(address: tuple[str, int], source: str) -> socket.socket:
    sock = socket.create_connection(address, timeout=30, source_address=(source, 0))
    sock.setblocking(False)
    return sock


def start_slowloris(address: tuple[str, int]) -> Connection:
    """A connection from SLOW that has reached 354 after DATA."""
    sock = socket.create_connection(address, timeout=30, source_address=(SLOW, 0))
    reader = sock.makefile("rb")
    for command in (None, b"EHLO slow.example", b"MAIL FROM:<a@kommune.example>",
                    f"RCPT TO:<{INTAKE_ADDRESS}>".encode(), b"DATA"):
        if command is not None:
            sock.sendall(command + b"\r\n")
        while (line := reader.readline())[3:4] == b"-":
            pass
        if command == b"DATA" and not line.startswith(b"354"):
            raise SystemExit(f"slowloris: DATA answered {line!r}")
    reader.close()
    sock.setblocking(False)
    return Connection(sock, slow=True, data_started=time.monotonic())


def main() -> None:
    host, port, idle_count, slow_count, timeout = sys.argv[1:6]
    address = (host, int(port))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ, None)

    def watch(connection: Connection) -> None:
        selector.register(connection.sock, selectors.EVENT_READ, connection)

    for _ in range(int(slow_count)):
        watch(start_slowloris(address))
    for _ in range(int(idle_count)):
        watch(Connection(connect(address, FLOODER), slow=False))
    print("ready", flush=True)

    first_lines: Counter[str] = Counter()
    held_seconds: list[float] = []  # admitted idle connections, until the server closed them
    slow_results: list[dict[str, object]] = []
    connections = int(idle_count)
    closed_since = 0
    flooding = True
    next_byte = next_reconnect = time.monotonic()
    give_up = float("inf")
    while True:
        now = time.monotonic()
        open_idle = [key.data for key in selector.get_map().values()
                     if key.data is not None and not key.data.slow]
        open_slow = [key.data for key in selector.get_map().values()
                     if key.data is not None and key.data.slow]
        if not flooding and ((not open_idle and not open_slow) or now > give_up):
            break
        if open_slow and now >= next_byte:
            for connection in open_slow:
                with contextlib.suppress(OSError):  # closed: its end is read below
                    connection.sock.send(b"x")
            next_byte = now + TRICKLE_PAUSE
        if flooding and closed_since and now >= next_reconnect:
            for _ in range(closed_since):
                watch(Connection(connect(address, FLOODER), slow=False))
            connections += closed_since
            closed_since = 0
            next_reconnect = now + RECONNECT_EVERY
        for key, _ in selector.select(timeout=0.05):
            if key.data is None:
                if not sys.stdin.readline():  # the test is done measuring
                    selector.unregister(sys.stdin)
                    flooding = False
                    give_up = time.monotonic() + 2 * float(timeout) + 5
                continue
            connection = key.data
            try:
                chunk = connection.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                connection.received += chunk
                continue
            ended = time.monotonic()
            selector.unregister(connection.sock)
            connection.sock.close()
            first = connection.received.split(b"\r\n", 1)[0].decode(errors="replace")
            if connection.slow:
                slow_results.append({"said": connection.received.decode(errors="replace"),
                                     "cut_after": ended - connection.data_started})
                continue
            first_lines[first] += 1
            if first.startswith("220"):
                held_seconds.append(ended - connection.opened)
            closed_since += 1
    still_open = len([key for key in selector.get_map().values() if key.data is not None])
    print(json.dumps({"connections": connections, "first_lines": first_lines,
                      "held_seconds": held_seconds, "slow": slow_results,
                      "still_open": still_open}), flush=True)


if __name__ == "__main__":
    main()
