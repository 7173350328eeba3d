"""Telling systemd how the daemon is doing: the sd_notify protocol of a Type=notify service.

systemd passes the path of a datagram socket in NOTIFY_SOCKET; the service sends
newline-separated `KEY=value` lines to it (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1).
With WatchdogSec= set, systemd also passes WATCHDOG_USEC (and WATCHDOG_PID) and restarts the
service when no WATCHDOG=1 arrives in time. Without NOTIFY_SOCKET everything here does nothing,
so the daemon runs the same from a terminal or a test.

The protocol is a few lines, so it is written here instead of pulling in a dependency; see
sd_notify(3) and systemd.service(5), WatchdogSec=.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("chikanemail.systemd")


def notify_address(value: str) -> str | None:
    """The socket address NOTIFY_SOCKET names; None when it is empty or not a unix socket.

    A leading '@' names a socket in the abstract namespace (its first byte is NUL).
    """
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. vsock:... (systemd in a VM), which this daemon does not use


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
    advises; None when the watchdog is off or meant for another process."""
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if watchdog_pid and watchdog_pid != str(pid):
        return None  # the variables were inherited from a parent the watchdog watches
    try:
        microseconds = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if microseconds <= 0:
        return None
    return microseconds / 2 / 1_000_000


def ready_status(smtp_address: tuple[str, int] | None, mailboxes: int) -> str:
    """The STATUS= line `systemctl status` shows for a running daemon."""
    smtp = f"{smtp_address[0]}:{smtp_address[1]}" if smtp_address else "off"
    return f"accepting mail: smtp {smtp}, {mailboxes} IMAP mailbox(es)"


class SystemdNotifier:
    """Sends state changes and watchdog pings to systemd; does nothing outside systemd."""

    def __init__(self, address: str | None, watchdog_seconds: float | None) -> None:
        self.address = address
        self.watchdog_seconds = watchdog_seconds if address is not None else None
        self._watchdog: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        """The notifier systemd's environment variables describe (os.environ by default)."""
        environ = os.environ if environ is None else environ
        address = notify_address(environ.get("NOTIFY_SOCKET", ""))
        return cls(address, watchdog_interval(environ, os.getpid()))

    @property
    def enabled(self) -> bool:
        """Whether the daemon runs under a service manager that listens."""
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines as one notification; False when it could not be sent.

        A failure is logged, never raised: systemd being unreachable must not stop the mail.
        """
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Non-blocking: a full socket queue drops this one message instead of
                # stalling the event loop that sends it.
                sock.setblocking(False)
                sock.sendto(message, self.address)
        except OSError as error:
            log.warning("cannot notify systemd (%s): %s", assignments[0], error)
            return False
        return True

    def ready(self, status: str) -> None:
        """Say that start-up is done and the daemon accepts mail."""
        self.send("READY=1", f"STATUS={status}")

    def stopping(self, status: str) -> None:
        """Say that the daemon has begun to stop."""
        self.send("STOPPING=1", f"STATUS={status}")

    def start_watchdog(self) -> None:
        """Ping the watchdog from the running event loop until `stop_watchdog`.

        The pings are a task on the daemon's own loop, so a loop that hangs stops pinging and
        systemd restarts the daemon.
        """
        if self.watchdog_seconds is None or self._watchdog is not None:
            return
        self._watchdog = asyncio.get_running_loop().create_task(
            self._ping_watchdog(self.watchdog_seconds), name="systemd-watchdog")

    def stop_watchdog(self) -> None:
        """Stop the watchdog pings (the daemon is about to exit)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _ping_watchdog(self, interval: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)
