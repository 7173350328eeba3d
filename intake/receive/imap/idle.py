"""Waiting in IMAP IDLE for new mail, without missing a dead connection.

imapclient's `idle_check` returns an empty list both when nothing happened and when the
server closed the connection, so an empty answer on a socket that is readable all the same
ends the wait early; the NOOP the caller sends next then tells a live connection from a
dead one.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

from intake.receive.imap.connection import ImapClient, ServerSaidBye


def wait_in_idle(client: ImapClient, stop: threading.Event, *, renew_seconds: float,
                 check_seconds: float) -> bool:
    """IDLE on the selected folder until it announces new mail, `renew_seconds` pass, the
    socket looks closed, or `stop` is set; leave IDLE before returning.

    Returns True when the server announced new mail. Raises ServerSaidBye on BYE, and the
    library's errors when the connection broke.
    """
    client.idle()
    deadline = time.monotonic() + renew_seconds
    announced = False
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        responses = client.idle_check(timeout=min(check_seconds, remaining))
        if responses:
            for response in responses:
                if _is_bye(response):
                    raise ServerSaidBye(_text(response))
            if any(_announces_mail(response) for response in responses):
                announced = True
                break
            continue  # "* OK Still here" and flag changes
        if _readable(client.socket()):
            break  # readable, yet no line came: the server may have closed the connection
    client.idle_done()
    return announced


def _is_bye(response: tuple[Any, ...]) -> bool:
    return bool(response) and response[0] == b"BYE"


def _announces_mail(response: tuple[Any, ...]) -> bool:
    return len(response) >= 2 and isinstance(response[0], int) and response[1] == b"EXISTS"


def _text(response: tuple[Any, ...]) -> str:
    return " ".join(part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part)
                    for part in response)


def _readable(sock: socket.socket) -> bool:
    """Whether reading the socket would not block (data, or the peer closed it)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))
