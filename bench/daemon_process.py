"""What the benchmarks share: start `chikanemail serve` as a process and reach it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Names the SMTP benchmarks use for the daemon, the client and the mail's addresses.
SERVER_HOSTNAME = "bench.local"
CLIENT_HOSTNAME = "bench-client.local"  # given to smtplib so it never asks DNS for our name
SENDER = "sender@bench.local"
INTAKE_ADDRESS = "chikanemail@bench.local"
MIB = 1024 * 1024


# What marks the daemon's log lines of a level, in its text and its JSON format.
ERROR_MARKERS = ("level=ERROR", "level=CRITICAL", '"level": "ERROR"', '"level": "CRITICAL"',
                 "Traceback")
WARNING_MARKERS = ("level=WARNING", '"level": "WARNING"')


def log_lines(log: Path, markers: Sequence[str]) -> list[str]:
    """The lines of a daemon log holding any of the markers."""
    return [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
            if any(marker in line for marker in markers)]


class BenchError(Exception):
    """Something went wrong; the benchmark fails."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until 127.0.0.1:port accepts a connection; fail at the deadline or if the
    process exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise BenchError(f"server process exited with {process.returncode} before "
                             f"listening on port {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"port {port} not accepting connections after {timeout:.0f} s")
        time.sleep(0.05)


def chikanemail_command() -> list[str]:
    """The daemon's command line, run by the interpreter running this script."""
    return [sys.executable, "-c", "from intake.commands.cli.main import main; main()"]
