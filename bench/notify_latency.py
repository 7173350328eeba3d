"""Latency from the 250 at intake to the manager's notification accepted by the relay.

Starts `chikanemail serve` (embedded SQLite unless --database-url; otherwise the default
settings, so the worker and the sender are woken by new work, not by their polls) with a
capturing relay (aiosmtpd, in this process) as its outgoing mail server, sends --messages
reports at
--rate per second from distinct reporters, and prints the median and p99 of the time from
each report's 250 to the relay accepting that report's notification.

    .venv/bin/python bench/notify_latency.py            # 200 mails at 10 per second
    .venv/bin/python bench/notify_latency.py --json p2.json

Target (P2): p99 below 3 s. Exit status 0 when every notification arrived and the daemon
exited 0 after SIGTERM (the JSON says whether the target was met); 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from daemon_process import (  # bench/ is the script's own folder
    LOOPBACK,
    BenchError,
    chikanemail_command,
    free_port,
    wait_for_port,
)
from results import Result, write_results

INTAKE = "chikanemail@bench.local"
MANAGER = "leder@bench.local"
_REPORTER = re.compile(rb"ansat(\d{5})@bench\.local")


class Relay:
    """Records when each report's notification arrives (keyed by the reporter's number)."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.monotonic()
        if MANAGER in envelope.rcpt_tos:
            match = _REPORTER.search(envelope.original_content or b"")
            if match:
                with self.lock:
                    self.arrived.setdefault(int(match.group(1)), now)
        return "250 OK"


def report(number: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"ansat{number:05d}@bench.local"
    mail["To"] = INTAKE
    mail["Subject"] = f"VS: besked {number}"
    mail.set_content("Se den videresendte besked.\n")
    return mail.as_bytes()


def main() -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    args = parser.parse_args()

    relay = Relay()
    controller = Controller(relay, hostname=LOOPBACK, port=free_port())
    controller.start()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="chik-latency-") as work:
        config = Path(work) / "config.toml"
        config.write_text(
            f'[storage]\ndata_dir = "{work}/data"\ndatabase_url = "{args.database_url}"\n'
            f'[smtp]\nport = {port}\nserver_hostname = "bench.local"\n'
            f'[intake]\naddresses = ["{INTAKE}"]\n'
            f'[routing]\ndefault_manager = "{MANAGER}"\n'
            f'[notify]\nsmtp_host = "{LOOPBACK}"\nsmtp_port = {controller.port}\n',
            encoding="utf-8")
        with open(Path(work) / "daemon.log", "wb") as log:
            daemon = subprocess.Popen([*chikanemail_command(), "--config", str(config),
                                       "serve"], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, daemon, 60)
            accepted: dict[int, float] = {}
            interval = 1.0 / args.rate
            started = time.monotonic()
            with smtplib.SMTP(LOOPBACK, port, timeout=60) as client:
                for number in range(args.messages):
                    due = started + number * interval
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)  # pacing the load, not synchronisation
                    sender = f"ansat{number:05d}@bench.local"
                    client.sendmail(sender, [INTAKE], report(number))
                    accepted[number] = time.monotonic()
            deadline = time.monotonic() + args.timeout
            while len(relay.arrived) < args.messages:
                if time.monotonic() > deadline:
                    raise BenchError(f"only {len(relay.arrived)} of {args.messages} "
                                     "notifications arrived")
                time.sleep(0.05)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(60)
            controller.stop()
    latencies = sorted(relay.arrived[n] - accepted[n] for n in accepted)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    median = statistics.median(latencies)
    print(f"{args.messages} reports at {args.rate:g}/s; 250 -> notification accepted by "
          f"the relay: median {median * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; daemon exit {code}")
    write_results(args.json, [Result(
        id="P2", what="250 at intake to the notification accepted by a capturing relay, "
                      f"{args.messages} mails at {args.rate:g}/s",
        value=round(p99, 3), unit="s", comparison="<", limit=3.0,
        summary=f"p99; median {median:.2f} s, max {latencies[-1]:.2f} s",
        details={"median_s": round(median, 3), "max_s": round(latencies[-1], 3),
                 "messages": args.messages, "rate_per_second": args.rate,
                 "database": "PostgreSQL" if args.database_url else "SQLite",
                 "cpus": os.cpu_count()})])
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
