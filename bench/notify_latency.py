"""Latency from the 250 at intake to the manager's notification accepted by the relay.

Starts `chikanemail serve` (embedded SQLite unless --database-url; otherwise the default
settings, so the worker and the sender are woken by new work, not by their polls; OCR on)
with a capturing relay (aiosmtpd, in this process) as its outgoing mail server, sends
--messages reports at --rate per second from distinct reporters, and prints the median and
p99 of the time from each report's 250 to the relay accepting that report's notification.

Two kinds of report (issue 23):
    P2-plain   text reports (the default), as issue 9: 200 at 10 per second; p99 < 1 s.
    P2         --screenshots: each report forwards its own 1 MB phone-chat screenshot
               (`bench/screenshots.py`), so the worker reads it with tesseract; `run_all.py`
               sends them at 80 % of the rate P7 measured in the same run; p99 < 3 s.

    .venv/bin/python bench/notify_latency.py            # P2-plain: 200 mails at 10/s
    .venv/bin/python bench/notify_latency.py --screenshots --rate 1.5 --json p2.json

Exit status 0 when every notification arrived, the daemon exited 0 after SIGTERM and
logged no ERROR (the JSON says whether the target was met); 1 otherwise.
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
    ERROR_MARKERS,
    LOOPBACK,
    MIB,
    BenchError,
    chikanemail_command,
    free_port,
    log_lines,
    wait_for_port,
)
from results import Result, write_results
from screenshots import screenshot_report, write_screenshots

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
    """Text report `number` from its own employee (P2-plain)."""
    mail = EmailMessage()
    mail["From"] = f"ansat{number:05d}@bench.local"
    mail["To"] = INTAKE
    mail["Subject"] = f"VS: besked {number}"
    mail.set_content("Se den videresendte besked.\n")
    return mail.as_bytes()


def build_reports(count: int, screenshots: bool, images: Path) -> list[bytes]:
    """The reports to send, built before the clock starts (a screenshot takes ~0.2 s)."""
    if not screenshots:
        return [report(number) for number in range(count)]
    started = time.monotonic()
    files = write_screenshots(count, images)
    mails = [screenshot_report(number, path.read_bytes()) for number, path in enumerate(files)]
    print(f"{count} screenshot reports of {sum(map(len, mails)) / count / MIB:.2f} MiB "
          f"built in {time.monotonic() - started:.1f} s", flush=True)
    return mails


def main() -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="reports per second")
    parser.add_argument("--screenshots", action="store_true",
                        help="each report forwards a 1 MB screenshot (P2; default P2-plain)")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    args = parser.parse_args()
    if args.messages < 1 or not args.rate > 0:
        parser.error("--messages must be at least 1 and --rate above 0")

    relay = Relay()
    controller = Controller(relay, hostname=LOOPBACK, port=free_port())
    controller.start()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="chik-latency-") as work:
        mails = build_reports(args.messages, args.screenshots, Path(work) / "images")
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
                    client.sendmail(sender, [INTAKE], mails[number])
                    accepted[number] = time.monotonic()
            deadline = time.monotonic() + args.timeout
            while len(relay.arrived) < args.messages:
                if time.monotonic() > deadline:
                    raise BenchError(f"only {len(relay.arrived)} of {args.messages} "
                                     "notifications arrived")
                time.sleep(0.05)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(120)
            controller.stop()
        serious = log_lines(Path(work) / "daemon.log", ERROR_MARKERS)
    for line in serious[:20]:
        print(f"    {line}")
    latencies = sorted(relay.arrived[n] - accepted[n] for n in accepted)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    median = statistics.median(latencies)
    kind = "screenshot reports (1 MB, OCR on)" if args.screenshots else "text reports"
    print(f"{args.messages} {kind} at {args.rate:g}/s; 250 -> notification accepted by "
          f"the relay: median {median * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; daemon exit {code}")
    write_results(args.json, [Result(
        id="P2" if args.screenshots else "P2-plain",
        what="250 at intake to the notification accepted by a capturing relay, "
             f"{args.messages} {kind} at {args.rate:g}/s",
        value=round(p99, 3), unit="s", comparison="<", limit=3.0 if args.screenshots else 1.0,
        summary=f"p99; median {median:.2f} s, max {latencies[-1]:.2f} s",
        details={"median_s": round(median, 3), "max_s": round(latencies[-1], 3),
                 "messages": args.messages, "rate_per_second": args.rate,
                 "screenshots": args.screenshots,
                 "database": "PostgreSQL" if args.database_url else "SQLite",
                 "cpus": os.cpu_count()})])
    if serious:
        print(f"FAILED: the daemon logged {len(serious)} ERROR/Traceback lines",
              file=sys.stderr)
    return 0 if code == 0 and not serious else 1


if __name__ == "__main__":
    sys.exit(main())
