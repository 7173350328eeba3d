"""SMTP ingest throughput: messages (and MiB) per second Chikanemail accepts with 250.

What it measures
    Several concurrent SMTP clients (threads, one smtplib connection each) send distinct
    mails that each carry one random attachment (default 1 MiB of random bytes, base64
    encoded: about 1.37 MiB on the wire). The rate is the number of 250 replies to DATA
    divided by the time from the moment every client is connected (EHLO done) to the last
    250. It is measured twice in one run:

    a) the real daemon, `chikanemail --config FILE serve` as a subprocess with a temporary
       TOML config (data_dir in a temporary directory, embedded SQLite unless
       --database-url is given, SMTP on a free port of 127.0.0.1). A 250 there means the
       blob is fsync'd and the row committed;
    b) a baseline: a plain aiosmtpd `Controller` whose handler's handle_DATA only returns
       "250 OK", with the same aiosmtpd data_size_limit. It runs in a child process of this
       script so it does not share a GIL with the client threads (like the daemon).

    It prints both rates, the ratio chikanemail/baseline, per-transaction latencies and the
    CPU time each server used. Afterwards it stops the daemon with SIGTERM (exit code must be
    0) and checks with `chikanemail messages list --json` that the database holds exactly
    one row per 250 reply of this run.

How to run (from the repository root)
    .venv/bin/python bench/smtp_ingest.py
    .venv/bin/python bench/smtp_ingest.py --messages 800 --clients 8 --size-mb 1
    .venv/bin/python bench/smtp_ingest.py --database-url 'postgresql+psycopg://...'

With --database-url the database should be empty (or at least not shared with a running
daemon); rows are matched to this run by a token in their Subject.

Exit status: 0 if every message got 250, the row count matches and the daemon exited 0;
1 otherwise (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from daemon_process import (  # bench/ is the script's own folder
    CLIENT_HOSTNAME,
    INTAKE_ADDRESS,
    LOOPBACK,
    MIB,
    SENDER,
    SERVER_HOSTNAME,
    BenchError,
    chikanemail_command,
    free_port,
    wait_for_port,
)

from intake.settings import DEFAULT_MAX_MESSAGE_BYTES

REPO_ROOT = Path(__file__).resolve().parent.parent
# aiosmtpd's data_size_limit as intake.smtp_server.start_smtp_listener sets it for the
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


def build_message(run_id: str, number: int, attachment_bytes: int) -> bytes:
    """One distinct mail with a random attachment, CRLF line ends, as sent on the wire."""
    message = EmailMessage()
    message["From"] = f"Bench Sender <{SENDER}>"
    message["To"] = INTAKE_ADDRESS
    message["Subject"] = f"bench {run_id} #{number}"
    message["Message-ID"] = f"<{run_id}.{number}@{SERVER_HOSTNAME}>"
    message.set_content(f"Benchmark message {number} of run {run_id}.\n")
    message.add_attachment(os.urandom(attachment_bytes), maintype="application",
                           subtype="octet-stream", filename=f"evidence-{number}.bin")
    return message.as_bytes(policy=policy.SMTP)


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


def client_thread(port: int, messages: Sequence[bytes], start: threading.Barrier,
                  deadline: float, result: ClientResult) -> None:
    """Connect, wait for every client, then send this client's messages one by one."""
    try:
        with smtplib.SMTP(LOOPBACK, port, local_hostname=CLIENT_HOSTNAME,
                          timeout=SOCKET_TIMEOUT_S) as smtp:
            code, _ = smtp.ehlo()
            if code != 250:
                raise BenchError(f"EHLO answered {code}")
            start.wait()
            for raw in messages:
                if time.monotonic() > deadline:
                    result.errors.append("deadline reached before all messages were sent")
                    break
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


def run_load(label: str, port: int, server_pid: int, batches: Sequence[Sequence[bytes]],
             timeout: float) -> LoadResult:
    """Send every batch on its own connection, all at once; time first start to last 250."""
    started: list[float] = []
    start = threading.Barrier(len(batches), action=lambda: started.append(time.perf_counter()),
                              timeout=STARTUP_TIMEOUT_S)
    deadline = time.monotonic() + timeout
    results = [ClientResult() for _ in batches]
    threads = [
        threading.Thread(target=client_thread, name=f"client-{index}",
                         args=(port, batch, start, deadline, results[index]))
        for index, batch in enumerate(batches)
    ]
    cpu_before = cpu_seconds(server_pid)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + SOCKET_TIMEOUT_S)
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


def print_result(result: LoadResult, expected: int) -> None:
    print(f"[{result.label}] {result.accepted}/{expected} accepted with 250 in "
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


def start_server(command: list[str], log_path: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a server process with its output in log_path; return once its port answers."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for_port(port, process, STARTUP_TIMEOUT_S)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        raise
    return process


def problem_lines(log_path: Path) -> list[str]:
    """Lines of a server log that report a problem."""
    markers = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")
    text = log_path.read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if any(marker in line for marker in markers)]


def bench_chikanemail(workdir: Path, batches: Sequence[Sequence[bytes]], timeout: float,
                      database_url: str | None, run_id: str,
                      failures: list[str]) -> LoadResult | None:
    """Run the load against the real daemon, stop it, and check the rows."""
    port = free_port()
    config = write_config(workdir, port, database_url)
    log_path = workdir / "chikanemail.log"
    process = start_server([*chikanemail_command(), "--config", str(config), "serve"],
                           log_path, port)
    result: LoadResult | None = None
    try:
        result = run_load("chikanemail", port, process.pid, batches, timeout)
        print_result(result, sum(len(batch) for batch in batches))
    finally:
        exit_code = stop_process(process, "chikanemail daemon")
    print(f"[chikanemail] daemon exit code after SIGTERM: {exit_code}")
    if exit_code != 0:
        failures.append(f"chikanemail daemon exited {exit_code} after SIGTERM")
    problems = problem_lines(log_path)
    print(f"[chikanemail] daemon log: {len(problems)} WARNING/ERROR/Traceback lines")
    for line in problems[:20]:
        print(f"    {line}")
    serious = [line for line in problems if " WARNING " not in line]
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
    ours = [row for row in rows if run_id in (row.get("subject") or "")]
    states: dict[str, int] = {}
    for row in ours:
        states[row["state"]] = states.get(row["state"], 0) + 1
    accepted = result.accepted if result else 0
    print(f"[chikanemail] database rows of this run: {len(ours)} (all rows: {len(rows)}); "
          f"250 replies: {accepted}; states at shutdown: "
          + ", ".join(f"{state}={count}" for state, count in sorted(states.items())))
    if len(ours) != accepted:
        failures.append(f"{len(ours)} database rows but {accepted} replies 250")
    seen_twice = [row for row in ours if row["times_seen"] != 1]
    if seen_twice:
        failures.append(f"{len(seen_twice)} rows were seen more than once (deduplicated)")
    return result


def bench_baseline(workdir: Path, batches: Sequence[Sequence[bytes]],
                   timeout: float, failures: list[str]) -> LoadResult:
    """Run the load against a plain aiosmtpd Controller in a child process."""
    port = free_port()
    log_path = workdir / "baseline.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)]
    process = start_server(command, log_path, port)
    try:
        result = run_load("aiosmtpd baseline", port, process.pid, batches, timeout)
        print_result(result, sum(len(batch) for batch in batches))
    finally:
        exit_code = stop_process(process, "baseline server")
    if exit_code != 0:
        failures.append(f"baseline server exited {exit_code}; log: "
                        f"{log_path.read_text(errors='replace')[-500:]}")
    return result


# -- main -------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=400,
                        help="total messages per target (default 400)")
    parser.add_argument("--clients", type=int, default=8,
                        help="concurrent SMTP connections (default 8)")
    parser.add_argument("--size-mb", type=float, default=1.0,
                        help="attachment size in MiB of random bytes before base64 (default 1)")
    parser.add_argument("--database-url", default=None,
                        help="database for the daemon (default: embedded SQLite in the "
                             "temporary data_dir)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up sending to one target after this many seconds "
                             "(default 600)")
    parser.add_argument("--serve-baseline", type=int, default=None, metavar="PORT",
                        help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve_baseline is None:
        if arguments.messages < 1 or arguments.clients < 1:
            parser.error("--messages and --clients must be at least 1")
        if not 0 < arguments.size_mb <= 36:
            parser.error("--size-mb must be above 0 and at most 36 (the mail must stay "
                         "under the 50 MiB limit)")
        if arguments.timeout <= 0:
            parser.error("--timeout must be positive")
    return arguments


def split(messages: Sequence[bytes], parts: int) -> list[list[bytes]]:
    """Deal the messages out to `parts` clients as evenly as possible."""
    return [list(messages[index::parts]) for index in range(parts)]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.serve_baseline is not None:
        return serve_baseline(arguments.serve_baseline)

    run_id = secrets.token_hex(6)
    attachment_bytes = int(arguments.size_mb * MIB)
    clients = min(arguments.clients, arguments.messages)
    print(f"run {run_id}: {arguments.messages} messages, {clients} clients, attachment "
          f"{attachment_bytes} random bytes (base64), database "
          f"{arguments.database_url or 'embedded SQLite'}; {os.cpu_count()} CPUs")
    built = time.perf_counter()
    messages = [build_message(run_id, number, attachment_bytes)
                for number in range(arguments.messages)]
    sizes = [len(raw) for raw in messages]
    print(f"built {len(messages)} messages in {time.perf_counter() - built:.1f} s; "
          f"{min(sizes)}..{max(sizes)} bytes each, {sum(sizes) / MIB:.1f} MiB in all")
    batches = split(messages, clients)

    failures: list[str] = []
    results: list[LoadResult] = []
    runners: list[tuple[str, Callable[[Path], LoadResult | None]]] = [
        ("chikanemail", lambda workdir: bench_chikanemail(
            workdir, batches, arguments.timeout, arguments.database_url, run_id, failures)),
        ("baseline", lambda workdir: bench_baseline(
            workdir, batches, arguments.timeout, failures)),
    ]
    for name, runner in runners:
        with tempfile.TemporaryDirectory(prefix=f"chikanemail-bench-{name}-") as directory:
            try:
                result = runner(Path(directory))
            except BenchError as error:
                failures.append(f"{name}: {error}")
                log = Path(directory) / ("chikanemail.log" if name == "chikanemail"
                                         else "baseline.log")
                if log.exists():
                    print(f"--- {name} log tail ---\n"
                          f"{log.read_text(errors='replace')[-3000:]}")
                continue
        if result is not None:
            results.append(result)
            if result.accepted != arguments.messages:
                failures.append(f"{result.label}: {result.accepted} of {arguments.messages} "
                                f"accepted ({len(result.refused)} refused, "
                                f"{len(result.errors)} errors)")

    if len(results) == 2 and results[1].messages_per_second > 0:
        chikanemail, baseline = results
        print(f"ratio chikanemail/baseline: "
              f"{chikanemail.messages_per_second / baseline.messages_per_second:.2f} "
              f"({chikanemail.messages_per_second:.1f} vs "
              f"{baseline.messages_per_second:.1f} msg/s, {chikanemail.mib_per_second:.1f} vs "
              f"{baseline.mib_per_second:.1f} MiB/s)")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
