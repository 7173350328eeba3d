"""Peak memory (RSS) of the Chikanemail daemon while it receives one ~50 MiB mail.

What it measures
    It starts `chikanemail --config FILE serve` as a subprocess with a temporary TOML config
    (data_dir in a temporary directory, embedded SQLite, SMTP on a free port of 127.0.0.1),
    reads VmHWM and VmRSS of the daemon from /proc/PID/status when it is idle, then sends ONE
    mail whose total size is just under the default max_message_bytes (50 MiB = 52428800
    bytes): a random attachment (about 37.4 MiB), base64 encoded, sized so the whole
    message is the largest one strictly below the limit. VmHWM is the kernel's high-water
    mark of the resident set, so reading it after the 250 gives the peak during receipt
    and storage; a sampler thread also polls VmRSS every few milliseconds as a cross-check.
    Then it sends a mail just over the limit twice: once declaring SIZE= in MAIL FROM
    (refused there) and once without SIZE (refused after DATA, which makes the server read
    all of it), and checks both answers are 552. Finally it stops the daemon with SIGTERM
    (exit code must be 0) and checks with `chikanemail messages list --json` that exactly
    the one accepted mail is stored, with its size and SHA-256.

How to run (from the repository root)
    .venv/bin/python bench/smtp_peak_rss.py

Figures are printed in MiB (1 MiB = 1048576 bytes). Exit status 0 when everything went as
expected, 1 otherwise (the reason is printed). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from daemon_process import (  # bench/ is the script's own folder
    CLIENT_HOSTNAME,
    ERROR_MARKERS,
    INTAKE_ADDRESS,
    LOOPBACK,
    MIB,
    SENDER,
    SERVER_HOSTNAME,
    WARNING_MARKERS,
    BenchError,
    chikanemail_command,
    free_port,
    log_lines,
    wait_for_port,
)
from results import Result, write_results

from intake.service.settings import DEFAULT_MAX_MESSAGE_BYTES

REPO_ROOT = Path(__file__).resolve().parent.parent
LIMIT = DEFAULT_MAX_MESSAGE_BYTES  # the daemon runs with the default max_message_bytes

STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 90.0
SOCKET_TIMEOUT_S = 300.0
CLI_TIMEOUT_S = 120.0
SAMPLE_INTERVAL_S = 0.005
IDLE_SETTLE_TIMEOUT_S = 10.0
BUILD_ATTEMPTS = 5


# -- the daemon -------------------------------------------------------------------------


def write_config(directory: Path, port: int) -> Path:
    """The temporary TOML config (JSON string escaping is valid TOML for these values)."""
    text = "\n".join([
        "[storage]",
        f"data_dir = {json.dumps(str(directory / 'data'))}",
        "",
        "[smtp]",
        f"host = {json.dumps(LOOPBACK)}",
        f"port = {port}",
        f"server_hostname = {json.dumps(SERVER_HOSTNAME)}",
        "",
        "[intake]",
        f"addresses = [{json.dumps(INTAKE_ADDRESS)}]",
        "",
    ])
    path = directory / "chikanemail.toml"
    path.write_text(text, encoding="utf-8")
    return path


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of a process, in KiB, from /proc/PID/status."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0])  # "  123456 kB"
    if set(values) != {"VmHWM", "VmRSS"}:
        raise BenchError(f"/proc/{pid}/status has no VmHWM/VmRSS")
    return values


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def wait_until_idle(pid: int) -> dict[str, int]:
    """Poll VmRSS until it stops changing (start-up work done), bounded in time."""
    deadline = time.monotonic() + IDLE_SETTLE_TIMEOUT_S
    previous = memory_kib(pid)
    steady = 0
    while steady < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
        current = memory_kib(pid)
        steady = steady + 1 if current["VmRSS"] == previous["VmRSS"] else 0
        previous = current
    return previous


class RssSampler:
    """Polls a process's VmRSS in a thread and keeps the largest value seen."""

    def __init__(self, pid: int, max_seconds: float) -> None:
        self.pid = pid
        self.max_seconds = max_seconds
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                rss = memory_kib(self.pid)["VmRSS"]
            except (OSError, BenchError):
                return
            self.peak_kib = max(self.peak_kib, rss)
            self.samples += 1
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


# -- the mails --------------------------------------------------------------------------


def build_message(attachment_bytes: int, label: str) -> bytes:
    """A mail with one random attachment, CRLF line ends, as sent on the wire."""
    message = EmailMessage()
    message["From"] = f"Bench Sender <{SENDER}>"
    message["To"] = INTAKE_ADDRESS
    message["Subject"] = f"bench peak RSS {label}"
    message["Message-ID"] = f"<peak-rss.{label}.{os.getpid()}.{time.time_ns()}@{SERVER_HOSTNAME}>"
    message.set_content("One large attachment.\n")
    message.add_attachment(os.urandom(attachment_bytes), maintype="application",
                           subtype="octet-stream", filename=f"{label}.bin")
    return message.as_bytes(policy=policy.SMTP)


def base64_body_bytes(raw_bytes: int) -> int:
    """Size of `raw_bytes` base64 encoded in 76-character lines ending in CRLF."""
    characters = 4 * math.ceil(raw_bytes / 3)
    return characters + 2 * math.ceil(characters / 76)


def largest_attachment(total_limit: int, overhead: int) -> int:
    """The most raw attachment bytes whose message stays at or under total_limit."""
    low, high = 1, total_limit
    while low < high:  # binary search; about 26 steps
        middle = (low + high + 1) // 2
        if overhead + base64_body_bytes(middle) <= total_limit:
            low = middle
        else:
            high = middle - 1
    return low


def build_sized(label: str, fits: bool) -> bytes:
    """The largest mail < LIMIT (fits) or the smallest one > LIMIT (not fits)."""
    probe = build_message(3000, label)
    overhead = len(probe) - base64_body_bytes(3000)
    attachment = (largest_attachment(LIMIT - 1, overhead) if fits
                  else largest_attachment(LIMIT, overhead) + 1)
    for _ in range(BUILD_ATTEMPTS):  # the headers' length could vary by a few bytes
        raw = build_message(attachment, label)
        if fits and len(raw) >= LIMIT:
            attachment -= 3 * math.ceil((len(raw) - LIMIT + 1) / 4)
        elif not fits and len(raw) <= LIMIT:
            attachment += 3 * math.ceil((LIMIT - len(raw) + 1) / 4)
        else:
            return raw
    raise BenchError(f"could not build a {label} mail of the right size")


# -- SMTP -------------------------------------------------------------------------------


@dataclass
class Reply:
    """The reply that ended a transaction: at which command, and what it said."""

    stage: str
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text} (after {self.stage})"


def send(smtp: smtplib.SMTP, raw: bytes, *, declare_size: bool) -> Reply:
    """One MAIL/RCPT/DATA transaction; the first non-2xx reply ends it."""
    options = [f"SIZE={len(raw)}"] if declare_size else []
    code, text = smtp.mail(SENDER, options)
    if code != 250:
        smtp.rset()
        return Reply("MAIL FROM", code, text.decode(errors="replace"))
    code, text = smtp.rcpt(INTAKE_ADDRESS)
    if code != 250:
        smtp.rset()
        return Reply("RCPT TO", code, text.decode(errors="replace"))
    try:
        code, text = smtp.data(raw)
    except smtplib.SMTPDataError as error:  # no 354
        detail = error.smtp_error
        return Reply("DATA command", error.smtp_code,
                     detail.decode(errors="replace") if isinstance(detail, bytes) else detail)
    return Reply("DATA", code, text.decode(errors="replace"))


def connect(port: int) -> smtplib.SMTP:
    smtp = smtplib.SMTP(LOOPBACK, port, local_hostname=CLIENT_HOSTNAME,
                        timeout=SOCKET_TIMEOUT_S)
    code, _ = smtp.ehlo()
    if code != 250:
        smtp.close()
        raise BenchError(f"EHLO answered {code}")
    return smtp


# -- main -------------------------------------------------------------------------------


def wait_until_processed(data_dir: Path, sha256: str, timeout: float) -> str:
    """Poll the embedded SQLite database (read-only) until the worker has finished with the
    message; return its last state."""
    databases = list(data_dir.glob("*.sqlite3"))
    if len(databases) != 1:
        raise BenchError(f"expected one SQLite database in {data_dir}, found {databases}")
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{databases[0]}?mode=ro", uri=True, timeout=30) as db:
            row = db.execute("SELECT state FROM message WHERE sha256 = ?", (sha256,)).fetchone()
        state = row[0] if row else "missing"
        if state in ("processed", "quarantined"):
            return state
        time.sleep(0.2)
    return state


def run(workdir: Path, failures: list[str]) -> dict[str, float]:
    """Receive the mail, refuse the over-limit ones, check the row; return the figures."""
    built = time.perf_counter()
    mail = build_sized("fits", fits=True)
    over = build_sized("over", fits=False)
    print(f"built in {time.perf_counter() - built:.1f} s: mail {len(mail)} bytes "
          f"({len(mail) / MIB:.3f} MiB, {LIMIT - len(mail)} bytes under the limit of {LIMIT}); "
          f"over-limit mail {len(over)} bytes ({len(over) - LIMIT} over)")
    mail_sha256 = hashlib.sha256(mail).hexdigest()

    port = free_port()
    config = write_config(workdir, port)
    log_path = workdir / "chikanemail.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*chikanemail_command(), "--config", str(config), "serve"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for_port(port, process, STARTUP_TIMEOUT_S)
        idle = wait_until_idle(process.pid)
        print(f"idle daemon (pid {process.pid}): VmHWM {mib(idle['VmHWM'])}, "
              f"VmRSS {mib(idle['VmRSS'])}")

        with connect(port) as smtp:
            advertised = smtp.esmtp_features.get("size", "")
            print(f"EHLO advertises SIZE {advertised}")
            if advertised != str(LIMIT):
                failures.append(f"EHLO advertised SIZE {advertised!r}, expected {LIMIT}")
            began = time.perf_counter()
            with RssSampler(process.pid, SOCKET_TIMEOUT_S) as sampler:
                reply = send(smtp, mail, declare_size=True)
            took = time.perf_counter() - began
        after = memory_kib(process.pid)
        print(f"{len(mail) / MIB:.2f} MiB mail: {reply} in {took:.2f} s")
        if reply.code != 250:
            failures.append(f"the mail under the limit was refused: {reply}")
        print(f"after it: VmHWM {mib(after['VmHWM'])} (peak), VmRSS {mib(after['VmRSS'])}; "
              f"peak - idle = {mib(after['VmHWM'] - idle['VmHWM'])} = "
              f"{(after['VmHWM'] - idle['VmHWM']) * 1024 / len(mail):.2f} x the mail size; "
              f"largest sampled VmRSS {mib(sampler.peak_kib)} ({sampler.samples} samples)")

        with connect(port) as smtp:
            declared = send(smtp, over, declare_size=True)
            print(f"over-limit mail, SIZE={len(over)} declared: {declared}")
            undeclared = send(smtp, over, declare_size=False)
            print(f"over-limit mail, no SIZE declared: {undeclared}")
        for name, answer in (("declared", declared), ("undeclared", undeclared)):
            if answer.code != 552:
                failures.append(f"over-limit mail ({name} SIZE) answered {answer}, not 552")
        final = memory_kib(process.pid)
        print(f"after the over-limit mails: VmHWM {mib(final['VmHWM'])}, "
              f"VmRSS {mib(final['VmRSS'])}")
        state = wait_until_processed(workdir / "data", mail_sha256, SOCKET_TIMEOUT_S)
        processed = memory_kib(process.pid)
        print(f"after the worker processed it ({state}): VmHWM {mib(processed['VmHWM'])}, "
              f"VmRSS {mib(processed['VmRSS'])}")
        if state != "processed":
            failures.append(f"the mail was not processed: state {state}")
    finally:
        exit_code: int | None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            exit_code = process.wait(SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
            exit_code = None
    print(f"daemon exit code after SIGTERM: {exit_code}")
    if exit_code != 0:
        failures.append(f"daemon exit code after SIGTERM: {exit_code}")

    notable = log_lines(log_path, (*WARNING_MARKERS, *ERROR_MARKERS, "refused"))
    print(f"daemon log: {len(notable)} WARNING/ERROR/refusal lines")
    for line in notable[:20]:
        print(f"    {line}")
    if log_lines(log_path, ERROR_MARKERS):
        failures.append("the daemon logged errors")

    listing = subprocess.run(
        [*chikanemail_command(), "--config", str(config), "messages", "list", "--json"],
        capture_output=True, cwd=REPO_ROOT, timeout=CLI_TIMEOUT_S, check=False,
    )
    figures = {"mail_bytes": len(mail), "idle_vmhwm_bytes": idle["VmHWM"] * 1024,
               "receipt_vmhwm_bytes": after["VmHWM"] * 1024,
               "after_processing_vmhwm_bytes": processed["VmHWM"] * 1024,
               "receipt_seconds": round(took, 2)}
    if listing.returncode != 0:
        failures.append(f"`messages list --json` exited {listing.returncode}: "
                        f"{listing.stderr.decode(errors='replace')[-500:]}")
        return figures
    rows: list[dict[str, Any]] = json.loads(listing.stdout)
    print(f"database: {len(rows)} row(s): "
          + ", ".join(f"size={row['size']} state={row['state']} sha256={row['sha256'][:16]}…"
                      for row in rows))
    if [(row["sha256"], row["size"]) for row in rows] != [(mail_sha256, len(mail))]:
        failures.append(f"expected exactly one row with sha256 {mail_sha256} and size "
                        f"{len(mail)}")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement; print the figures; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    arguments = parser.parse_args(argv)
    failures: list[str] = []
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="chikanemail-bench-rss-") as directory:
        try:
            figures = run(Path(directory), failures)
        except (BenchError, smtplib.SMTPException, OSError) as error:
            failures.append(f"{type(error).__name__}: {error}")
            log = Path(directory) / "chikanemail.log"
            if log.exists():
                print(f"--- daemon log tail ---\n{log.read_text(errors='replace')[-3000:]}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    if failures:
        return 1
    ratio = figures["receipt_vmhwm_bytes"] / figures["mail_bytes"]
    print(f"peak RSS while receiving / mail size = {ratio:.2f} (target <= 4); including the "
          f"worker's processing: "
          f"{figures['after_processing_vmhwm_bytes'] / figures['mail_bytes']:.2f}")
    write_results(arguments.json, [Result(
        id="P3", what="peak RSS of the daemon while receiving one 50 MB mail, / the mail's size",
        value=round(ratio, 2), unit="ratio", comparison="<=", limit=4.0,
        summary=f"VmHWM {figures['receipt_vmhwm_bytes'] / MIB:.0f} MiB for a "
                f"{figures['mail_bytes'] / MIB:.0f} MiB mail (idle "
                f"{figures['idle_vmhwm_bytes'] / MIB:.0f} MiB)",
        details={**figures,
                 "peak_minus_idle_ratio": round((figures["receipt_vmhwm_bytes"]
                                                 - figures["idle_vmhwm_bytes"])
                                                / figures["mail_bytes"], 3),
                 "after_processing_ratio": round(figures["after_processing_vmhwm_bytes"]
                                                 / figures["mail_bytes"], 2)})])
    return 0


if __name__ == "__main__":
    sys.exit(main())
