"""SMTP acceptance (P1): mails per second that get a 250, against a do-nothing aiosmtpd.

What it measures
    Eight concurrent SMTP clients (threads, one smtplib connection each) send distinct
    report mails for 30 seconds. Each forwards one PNG screenshot of about 1 MiB (chat text
    and a photo-like block; each mail's picture differs in one PNG text chunk, so every raw
    mail and every picture has its own SHA-256): about 1.44 MiB on the wire. The rate is the
    number of 250 replies to DATA divided by the time from the moment every client has
    connected (EHLO done) to the last reply. Two servers are measured, alternated, for
    --rounds rounds (baseline, chikanemail, baseline, chikanemail, ...):

    a) the real daemon, `chikanemail --config FILE serve` as a subprocess with a temporary
       TOML config (data_dir in a fresh temporary directory each round, embedded SQLite
       unless --database-url is given, OCR on as by default, SMTP on a free port of
       127.0.0.1). A 250 there means the blob is fsync'd and the row committed;
    b) a baseline: a plain aiosmtpd `Controller` whose handler's handle_DATA only returns
       "250 OK", with the same data_size_limit, in a child process of this script (it does
       not share a GIL with the client threads, like the daemon).

    It prints each run's rate, MiB/s, per-mail latency and server CPU time, each round's
    ratio chikanemail/baseline and the median ratio over the rounds (target: >= 0.8). After
    each daemon run it stops the daemon with SIGTERM (exit code must be 0) and checks with
    `chikanemail messages list --json` that the database holds exactly one row per 250.

How to run (from the repository root)
    .venv/bin/python bench/smtp_ingest.py                    # 3 rounds of 30 s, ~4 minutes
    .venv/bin/python bench/smtp_ingest.py --seconds 10 --rounds 1
    .venv/bin/python bench/smtp_ingest.py --database-url 'postgresql+psycopg://...'
    .venv/bin/python bench/smtp_ingest.py --json p1.json     # also write the result

With --database-url the database should be empty (or at least not shared with a running
daemon); rows are matched to the run by a token in their Subject.

Exit status: 0 if every mail got 250, the row counts match and the daemon exited 0 (the
JSON says whether the target was met); 1 otherwise (the reason is printed).
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import os
import secrets
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
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
# aiosmtpd's data_size_limit as intake.receive.smtp.server.start_smtp_listener sets it for the
# default max_message_bytes (the exact limit is checked by Chikanemail's handler).
WIRE_LIMIT = DEFAULT_MAX_MESSAGE_BYTES + DEFAULT_MAX_MESSAGE_BYTES // 16

STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 90.0
SOCKET_TIMEOUT_S = 120.0
CLI_TIMEOUT_S = 120.0
BASELINE_MAX_LIFETIME_S = 3600.0


# -- servers ----------------------------------------------------------------------------


def toml_string(value: str) -> str:
    """A TOML basic string (JSON escaping is valid TOML for these values)."""
    return json.dumps(value)


def write_config(directory: Path, port: int, database_url: str | None) -> Path:
    """The temporary TOML config for one daemon."""
    lines = [
        "[storage]",
        f"data_dir = {toml_string(str(directory / 'data'))}",
    ]
    if database_url:
        lines.append(f"database_url = {toml_string(database_url)}")
    lines += [
        "",
        "[smtp]",
        f"host = {toml_string(LOOPBACK)}",
        f"port = {port}",
        f"server_hostname = {toml_string(SERVER_HOSTNAME)}",
        "",
        "[intake]",
        f"addresses = [{toml_string(INTAKE_ADDRESS)}]",
        "",
    ]
    path = directory / "chikanemail.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (from /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    # After the command name: state is field 3, utime field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(process: subprocess.Popen[bytes], name: str) -> int:
    """SIGTERM, then wait (bounded); kill if it does not stop. Returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise BenchError(f"{name} did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM; "
                         "killed") from None


class NullHandler:
    """The baseline handler: accepts every message and keeps nothing."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def serve_baseline(port: int) -> int:
    """Child-process mode: a plain aiosmtpd Controller until SIGTERM/SIGINT."""
    from aiosmtpd.controller import Controller

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Block before the server thread starts so it inherits the mask and sigwait gets them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    controller = Controller(
        NullHandler(), hostname=LOOPBACK, port=port, server_hostname=SERVER_HOSTNAME,
        data_size_limit=WIRE_LIMIT,
    )
    controller.start()
    try:
        received = signal.sigtimedwait(stop_signals, BASELINE_MAX_LIFETIME_S)
    finally:
        controller.stop()
    return 0 if received is not None else 1


# -- messages ---------------------------------------------------------------------------

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CHAT_LINES = (
    "Mette (kl. 22:14): Du skal ikke tro, du slipper for det her i morgen.",
    "Mette (kl. 22:15): Alle på afdelingen ved, hvad du gjorde.",
    "Mette (kl. 22:17): Svar nu, eller jeg sender billedet til hele holdet.",
    "Mette (kl. 22:31): Jeg venter ved parkeringen efter vagten.",
)


def screenshot_png(target_bytes: int) -> bytes:
    """A phone-chat screenshot as PNG of about `target_bytes`: text lines OCR can read and a
    photo-like block of noise that keeps the file near the target size."""
    from PIL import Image, ImageDraw, ImageFont

    side = max(64, int((target_bytes / 3) ** 0.5))  # noise is about 3 bytes per pixel
    width, height = max(1080, side + 80), side + 80 + 60 * len(CHAT_LINES) + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = (ImageFont.truetype(str(FONT), 28) if FONT.exists()
            else ImageFont.load_default())
    for line_number, line in enumerate(CHAT_LINES):
        draw.text((40, 30 + 60 * line_number), line, fill="black", font=font)
    photo = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    image.paste(photo, (40, 60 * len(CHAT_LINES) + 60))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def with_text_chunk(png: bytes, text: str) -> bytes:
    """The PNG with a tEXt chunk after IHDR: a distinct file (and SHA-256), same picture."""
    header_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, data, CRC
    data = b"tEXt" + b"Comment\x00" + text.encode("ascii")
    chunk = (len(data) - 4).to_bytes(4, "big") + data + zlib.crc32(data).to_bytes(4, "big")
    return png[:header_end] + chunk + png[header_end:]


class ScreenshotMails:
    """Builds distinct report mails, each forwarding one screenshot, cheaply enough to build
    while sending (a raw MIME template; the picture differs in one PNG text chunk)."""

    def __init__(self, run_id: str, screenshot: bytes) -> None:
        self.run_id = run_id
        self.screenshot = screenshot

    def build(self, number: int) -> bytes:
        """Mail `number` of this run, CRLF line ends, as sent on the wire."""
        picture = with_text_chunk(self.screenshot, f"{self.run_id}-{number}")
        body = base64.encodebytes(picture).replace(b"\n", b"\r\n")
        boundary = f"=_bench_{self.run_id}_{number}"
        head = (
            f"From: Bench Sender <{SENDER}>\r\n"
            f"To: {INTAKE_ADDRESS}\r\n"
            f"Subject: VS: bench {self.run_id} #{number}\r\n"
            f"Message-ID: <{self.run_id}.{number}@{SERVER_HOSTNAME}>\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'
            "\r\n"
            f"--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            f"Se skærmbilledet. Besked {number} i kørsel {self.run_id}.\r\n"
            f"--{boundary}\r\n"
            "Content-Type: image/png\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="skaermbillede-{number}.png"\r\n'
            "\r\n"
        )
        return head.encode("utf-8") + body + f"--{boundary}--\r\n".encode("ascii")


# -- load -------------------------------------------------------------------------------


@dataclass
class ClientResult:
    """What one client thread saw."""

    accepted: int = 0
    accepted_bytes: int = 0
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    finished_at: float | None = None


@dataclass
class LoadResult:
    """The outcome of sending the whole message set to one server."""

    label: str
    accepted: int
    accepted_bytes: int
    refused: list[str]
    errors: list[str]
    elapsed: float
    latencies: list[float]
    server_cpu: float

    @property
    def messages_per_second(self) -> float:
        return self.accepted / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mib_per_second(self) -> float:
        return self.accepted_bytes / MIB / self.elapsed if self.elapsed > 0 else 0.0


def client_thread(port: int, mails: ScreenshotMails, numbers: Iterator[int],
                  start: threading.Barrier, window: float, result: ClientResult) -> None:
    """Connect, wait for every client, then send mail after mail until the window closes."""
    try:
        with smtplib.SMTP(LOOPBACK, port, local_hostname=CLIENT_HOSTNAME,
                          timeout=SOCKET_TIMEOUT_S) as smtp:
            code, _ = smtp.ehlo()
            if code != 250:
                raise BenchError(f"EHLO answered {code}")
            start.wait()
            closes = time.perf_counter() + window
            while time.perf_counter() < closes:
                raw = mails.build(next(numbers))
                began = time.perf_counter()
                code, reply = smtp.mail(SENDER, [f"SIZE={len(raw)}"])
                if code != 250:
                    result.refused.append(f"MAIL {code} {reply.decode(errors='replace')}")
                    smtp.rset()
                    continue
                code, reply = smtp.rcpt(INTAKE_ADDRESS)
                if code != 250:
                    result.refused.append(f"RCPT {code} {reply.decode(errors='replace')}")
                    smtp.rset()
                    continue
                code, reply = smtp.data(raw)
                if code == 250:
                    result.accepted += 1
                    result.accepted_bytes += len(raw)
                    result.latencies.append(time.perf_counter() - began)
                else:
                    result.refused.append(f"DATA {code} {reply.decode(errors='replace')}")
            result.finished_at = time.perf_counter()
    except (smtplib.SMTPException, OSError, BenchError, threading.BrokenBarrierError) as error:
        result.errors.append(f"{type(error).__name__}: {error}")
        start.abort()  # do not leave the other clients waiting for this one


def run_load(label: str, port: int, server_pid: int, mails: ScreenshotMails, clients: int,
             window: float) -> LoadResult:
    """Send from every client at once for `window` seconds; time first start to last 250."""
    started: list[float] = []
    start = threading.Barrier(clients, action=lambda: started.append(time.perf_counter()),
                              timeout=STARTUP_TIMEOUT_S)
    numbers = itertools.count()  # next() on it is atomic under the GIL: distinct mails
    results = [ClientResult() for _ in range(clients)]
    threads = [
        threading.Thread(target=client_thread, name=f"client-{index}",
                         args=(port, mails, numbers, start, window, results[index]))
        for index in range(clients)
    ]
    cpu_before = cpu_seconds(server_pid)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(STARTUP_TIMEOUT_S + window + SOCKET_TIMEOUT_S)
    cpu_after = cpu_seconds(server_pid)
    errors = [error for result in results for error in result.errors]
    if any(thread.is_alive() for thread in threads):
        errors.append("a client thread was still running after the deadline")
    finished = [result.finished_at for result in results if result.finished_at is not None]
    elapsed = (max(finished) - started[0]) if started and finished else 0.0
    return LoadResult(
        label=label,
        accepted=sum(result.accepted for result in results),
        accepted_bytes=sum(result.accepted_bytes for result in results),
        refused=[refusal for result in results for refusal in result.refused],
        errors=errors,
        elapsed=elapsed,
        latencies=[latency for result in results for latency in result.latencies],
        server_cpu=cpu_after - cpu_before,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value at this fraction of the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def print_result(result: LoadResult) -> None:
    """The run's figures, refusals and errors."""
    print(f"[{result.label}] {result.accepted} accepted with 250 in "
          f"{result.elapsed:.2f} s: {result.messages_per_second:.1f} msg/s, "
          f"{result.mib_per_second:.1f} MiB/s; server CPU {result.server_cpu:.1f} s "
          f"({result.server_cpu / result.elapsed * 100 if result.elapsed else 0:.0f}% "
          "of one core)")
    if result.latencies:
        print(f"[{result.label}] MAIL..250 per message: p50 "
              f"{percentile(result.latencies, 0.5) * 1000:.0f} ms, p95 "
              f"{percentile(result.latencies, 0.95) * 1000:.0f} ms, max "
              f"{max(result.latencies) * 1000:.0f} ms")
    for refusal in result.refused[:10]:
        print(f"[{result.label}] refused: {refusal}")
    for error in result.errors[:10]:
        print(f"[{result.label}] error: {error}")


# -- the two targets --------------------------------------------------------------------


def start_server(command: list[str], log_path: Path, port: int,
                 environment: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server process with its output in log_path (and `environment` added to this
    one's); return once its port answers."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(environment or {})},
        )
    try:
        wait_for_port(port, process, STARTUP_TIMEOUT_S)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        raise
    return process


def bench_chikanemail(workdir: Path, mails: ScreenshotMails, clients: int, window: float,
                      database_url: str | None, failures: list[str]) -> LoadResult:
    """Run the load against the real daemon, stop it, and check the rows."""
    port = free_port()
    config = write_config(workdir, port, database_url)
    log_path = workdir / "chikanemail.log"
    process = start_server([*chikanemail_command(), "--config", str(config), "serve"],
                           log_path, port)
    try:
        result = run_load("chikanemail", port, process.pid, mails, clients, window)
        print_result(result)
    finally:
        exit_code = stop_process(process, "chikanemail daemon")
    if exit_code != 0:
        failures.append(f"chikanemail daemon exited {exit_code} after SIGTERM")
    problems = log_lines(log_path, (*WARNING_MARKERS, *ERROR_MARKERS))
    for line in problems[:20]:
        print(f"    {line}")
    serious = log_lines(log_path, ERROR_MARKERS)
    if serious:
        failures.append(f"chikanemail daemon logged {len(serious)} ERROR/Traceback lines")

    listing = subprocess.run(
        [*chikanemail_command(), "--config", str(config), "messages", "list", "--json"],
        capture_output=True, cwd=REPO_ROOT, timeout=CLI_TIMEOUT_S, check=False,
    )
    if listing.returncode != 0:
        failures.append(f"`messages list --json` exited {listing.returncode}: "
                        f"{listing.stderr.decode(errors='replace')[-500:]}")
        return result
    rows: list[dict[str, Any]] = json.loads(listing.stdout)
    ours = [row for row in rows if mails.run_id in (row.get("subject") or "")]
    states: dict[str, int] = {}
    for row in ours:
        states[row["state"]] = states.get(row["state"], 0) + 1
    print(f"[chikanemail] rows of this run: {len(ours)}; 250 replies: {result.accepted}; "
          "states at shutdown: "
          + ", ".join(f"{state}={count}" for state, count in sorted(states.items())))
    if len(ours) != result.accepted:
        failures.append(f"{len(ours)} database rows but {result.accepted} replies 250")
    if any(row["times_seen"] != 1 for row in ours):
        failures.append("rows were seen more than once: the mails were not distinct")
    return result


def bench_baseline(workdir: Path, mails: ScreenshotMails, clients: int, window: float,
                   failures: list[str]) -> LoadResult:
    """Run the load against a plain aiosmtpd Controller in a child process."""
    port = free_port()
    log_path = workdir / "baseline.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)]
    process = start_server(command, log_path, port)
    try:
        result = run_load("aiosmtpd baseline", port, process.pid, mails, clients, window)
        print_result(result)
    finally:
        exit_code = stop_process(process, "baseline server")
    if exit_code != 0:
        failures.append(f"baseline server exited {exit_code}; log: "
                        f"{log_path.read_text(errors='replace')[-500:]}")
    return result


# -- main -------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each run (default 30)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternated baseline/chikanemail pairs (default 3)")
    parser.add_argument("--clients", type=int, default=8,
                        help="concurrent SMTP connections (default 8)")
    parser.add_argument("--size-mb", type=float, default=1.0,
                        help="screenshot size in MiB, before base64 (default 1)")
    parser.add_argument("--database-url", default=None,
                        help="database for the daemon (default: embedded SQLite in the "
                             "temporary data_dir)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    parser.add_argument("--serve-baseline", type=int, default=None, metavar="PORT",
                        help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve_baseline is None:
        if arguments.rounds < 1 or arguments.clients < 1 or arguments.seconds <= 0:
            parser.error("--rounds and --clients must be at least 1, --seconds above 0")
        if not 0 < arguments.size_mb <= 36:
            parser.error("--size-mb must be above 0 and at most 36 (the mail must stay "
                         "under the 50 MiB limit)")
    return arguments


def run_target(name: str, runner: Callable[[Path], LoadResult],
               failures: list[str]) -> LoadResult | None:
    """One run against one server in a fresh temporary directory; None if it failed."""
    with tempfile.TemporaryDirectory(prefix=f"chikanemail-bench-{name}-") as directory:
        try:
            result = runner(Path(directory))
        except BenchError as error:
            failures.append(f"{name}: {error}")
            for log in Path(directory).glob("*.log"):
                print(f"--- {log.name} tail ---\n{log.read_text(errors='replace')[-3000:]}")
            return None
    if result.errors or result.refused:
        failures.append(f"{result.label}: {len(result.refused)} refused, "
                        f"{len(result.errors)} errors")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the alternated rounds; print the figures; exit 1 on any failure."""
    arguments = parse_arguments(argv)
    if arguments.serve_baseline is not None:
        return serve_baseline(arguments.serve_baseline)

    screenshot = screenshot_png(int(arguments.size_mb * MIB))
    print(f"{arguments.rounds} rounds of {arguments.seconds:g} s per server, alternated; "
          f"{arguments.clients} clients; a {len(screenshot) / MIB:.2f} MiB PNG screenshot per "
          f"mail; database {arguments.database_url or 'embedded SQLite'}; "
          f"{os.cpu_count()} CPUs")
    failures: list[str] = []
    rounds: list[dict[str, float]] = []
    for round_number in range(1, arguments.rounds + 1):
        figures: dict[str, float] = {}
        for name in ("baseline", "chikanemail"):
            mails = ScreenshotMails(secrets.token_hex(6), screenshot)
            runner: Callable[[Path], LoadResult]
            if name == "baseline":
                runner = partial(bench_baseline, mails=mails, clients=arguments.clients,
                                 window=arguments.seconds, failures=failures)
            else:
                runner = partial(bench_chikanemail, mails=mails, clients=arguments.clients,
                                 window=arguments.seconds,
                                 database_url=arguments.database_url, failures=failures)
            print(f"round {round_number}: {name}", flush=True)
            result = run_target(name, runner, failures)
            if result is None:
                break
            figures[f"{name}_messages_per_second"] = result.messages_per_second
            figures[f"{name}_mib_per_second"] = result.mib_per_second
            figures[f"{name}_server_cpu_seconds"] = result.server_cpu
            figures[f"{name}_p95_ms"] = percentile(result.latencies, 0.95) * 1000
        if len(figures) == 8:
            figures["ratio"] = (figures["chikanemail_messages_per_second"]
                                / figures["baseline_messages_per_second"])
            rounds.append(figures)
            print(f"round {round_number}: ratio chikanemail/baseline {figures['ratio']:.2f}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    if failures or not rounds:
        return 1
    ratio = statistics.median(figures["ratio"] for figures in rounds)
    ours = statistics.median(figures["chikanemail_messages_per_second"] for figures in rounds)
    base = statistics.median(figures["baseline_messages_per_second"] for figures in rounds)
    print(f"median over {len(rounds)} rounds: chikanemail {ours:.1f} msg/s, baseline "
          f"{base:.1f} msg/s, ratio {ratio:.2f}")
    write_results(arguments.json, [Result(
        id="P1", what="SMTP acceptance of 1 MB screenshot mails, 8 clients, vs a do-nothing "
                      "aiosmtpd", value=round(ratio, 3), unit="ratio", comparison=">=",
        limit=0.8, summary=f"{ours:.1f} vs {base:.1f} mails/s (median of {len(rounds)} "
                           f"rounds of {arguments.seconds:g} s)",
        details={
            "chikanemail_messages_per_second": round(ours, 1),
            "baseline_messages_per_second": round(base, 1),
            "seconds_per_run": arguments.seconds, "clients": arguments.clients,
            "mail_bytes": len(ScreenshotMails("x" * 12, screenshot).build(0)),
            "cpus": os.cpu_count(), "rounds": rounds})])
    return 0


if __name__ == "__main__":
    sys.exit(main())
