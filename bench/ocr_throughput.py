"""Reports with a 1 MB screenshot processed per second with OCR on, from a backlog (P7).

What it measures
    --messages (500) distinct reports, each an employee's "VS: ..." mail forwarding one
    phone-chat screenshot of about 1 MB (`bench/screenshots.py`: Danish text, a different
    text per report). First a backlog is built: `chikanemail serve` runs with
    `[worker] enabled = false` and takes every report in over SMTP (one row per 250 is
    checked), then it is stopped. Then the daemon starts again on the same data with the
    worker on (`[worker] processes` = --processes, the cores by default; OCR on, as by
    default; notifications go to a do-nothing relay in this script), and the time from that
    start until every row of the run is processed is taken by polling the database with a
    read-only query. Rate = reports / that time.

    The ceiling, in the same run: `tesseract` alone over the same image files, on every core
    (`xargs -P <cores>`), with the languages and options `intake/parse/ocr.py` uses
    (`-l dan+eng`, OMP_THREAD_LIMIT=1, text to stdout). Figure: our rate / tesseract's
    (target >= 0.8).

    While the worker runs, /proc is sampled every 0.1 s over the daemon and its
    descendants: peak RSS (VmHWM) of the daemon, of each worker process (descendants that
    are not tesseract and live over a second, multiprocessing's forkserver and resource
    tracker counted apart as helpers; none while the worker is a thread), of tesseract per
    image, and in total: the largest sum of VmRSS over the tree at one sample (shared
    pages counted in every process), and the largest sum of Pss (shared pages split).

How to run (from the repository root)
    .venv/bin/python bench/ocr_throughput.py                   # 500 reports, ~15 minutes
    .venv/bin/python bench/ocr_throughput.py --messages 40     # a trial
    .venv/bin/python bench/ocr_throughput.py --processes 1 --json p7.json
    .venv/bin/python bench/ocr_throughput.py --database-url 'postgresql+psycopg://...'

With --database-url give an empty database or schema; the run's rows are found by a token
in their Subject. Exit status: 0 when every report got 250, one row each, every row was
processed (none quarantined), both daemons exited 0 and logged no ERROR, and tesseract
read every image (the JSON says whether the target was met); 1 otherwise.
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from daemon_process import (  # bench/ is the script's own folder
    CLIENT_HOSTNAME,
    ERROR_MARKERS,
    INTAKE_ADDRESS,
    LOOPBACK,
    MIB,
    SERVER_HOSTNAME,
    BenchError,
    chikanemail_command,
    free_port,
    log_lines,
    wait_for_port,
)
from results import Result, write_results
from screenshots import employee, screenshot_report, write_screenshots

from intake.service.settings import ExtractSettings, available_cores

REPO_ROOT = Path(__file__).resolve().parent.parent
MANAGER = f"leder@{SERVER_HOSTNAME}"
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 120.0
SAMPLE_SECONDS = 0.1
KIB = 1024


class NullRelay:
    """The outgoing mail server: accepts every notification and keeps nothing."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


# -- the daemon -------------------------------------------------------------------------


def write_config(workdir: Path, port: int, relay_port: int, database_url: str,
                 worker: bool, processes: int) -> Path:
    """The daemon's TOML config: the same data, worker on or off."""
    path = workdir / ("worker.toml" if worker else "intake.toml")
    path.write_text(
        "[storage]\n"
        f"data_dir = {json.dumps(str(workdir / 'data'))}\n"
        + (f"database_url = {json.dumps(database_url)}\n" if database_url else "")
        + f"[smtp]\nhost = \"{LOOPBACK}\"\nport = {port}\n"
        f"server_hostname = \"{SERVER_HOSTNAME}\"\n"
        f"[intake]\naddresses = [\"{INTAKE_ADDRESS}\"]\n"
        f"[routing]\ndefault_manager = \"{MANAGER}\"\n"
        f"[notify]\nsmtp_host = \"{LOOPBACK}\"\nsmtp_port = {relay_port}\n"
        f"[worker]\nenabled = {'true' if worker else 'false'}\nprocesses = {processes}\n",
        encoding="utf-8")
    return path


def start_daemon(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`chikanemail serve` with its output appended to log_path."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([*chikanemail_command(), "--config", str(config), "serve"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_daemon(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then wait (bounded); kill if it does not stop. Returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise BenchError(f"the daemon did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of "
                         "SIGTERM; killed") from None


class RowCounter:
    """Counts the run's message rows per state with a read-only query."""

    def __init__(self, database_url: str, data_dir: Path, run: str) -> None:
        from sqlalchemy import create_engine

        url = database_url or f"sqlite:///file:{data_dir / 'chikanemail.sqlite3'}?mode=ro&uri=true"
        self.engine = create_engine(url)
        self.pattern = f"%{run}%"

    def states(self) -> dict[str, int]:
        """{state: rows} for the run's messages, and "seen_more_than_once"."""
        from sqlalchemy import text

        with self.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT state, count(*), sum(CASE WHEN times_seen <> 1 THEN 1 ELSE 0 END) "
                "FROM message WHERE subject LIKE :pattern GROUP BY state"),
                {"pattern": self.pattern}).all()
            connection.rollback()
        counts = {str(state): int(count) for state, count, _ in rows}
        counts["seen_more_than_once"] = sum(int(again or 0) for _, _, again in rows)
        return counts

    def ocr_outcomes(self) -> dict[str, int]:
        """{OCR status: images} over the run's evidence that OCR applies to."""
        from sqlalchemy import text

        with self.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT evidence.ocr_status, count(*) FROM evidence JOIN message "
                "ON evidence.message_pk = message.id WHERE message.subject LIKE :pattern "
                "AND evidence.ocr_status IS NOT NULL GROUP BY evidence.ocr_status"),
                {"pattern": self.pattern}).all()
            connection.rollback()
        return {str(status): int(count) for status, count in rows}

    def close(self) -> None:
        """Let go of the database."""
        self.engine.dispose()


# -- memory -----------------------------------------------------------------------------


def descendants(pid: int) -> list[tuple[int, int]]:
    """Every process below pid (children of all its threads, recursively), with its parent."""
    found: list[tuple[int, int]] = []
    waiting = [pid]
    while waiting:
        parent = waiting.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                found_here = [int(child) for child in children.read_text().split()]
            except OSError:
                continue  # the thread ended meanwhile
            found.extend((child, parent) for child in found_here)
            waiting.extend(found_here)
    return found


def process_status(pid: int) -> tuple[str, int, int] | None:
    """(name, VmRSS KiB, VmHWM KiB) of a process, or None when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    try:
        return (fields["Name"].strip(), int(fields["VmRSS"].split()[0]),
                int(fields["VmHWM"].split()[0]))
    except (KeyError, ValueError, IndexError):
        return None  # a zombie has no memory lines


def proportional_set_size(pid: int) -> int:
    """Pss in KiB (shared pages split among the processes sharing them); 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces ("" when gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


# A child that is not tesseract and lives shorter than this is a fork about to run
# tesseract: its pages are still the daemon's, so counting it would count the daemon twice.
PERSISTENT_SECONDS = 1.0
# Pss needs the kernel to walk every mapping: read it on every tenth sample only.
PSS_EVERY = 10


@dataclass
class MemorySampler:
    """Samples the daemon's process tree until stopped; keeps the peaks (KiB).

    Roles: the daemon; tesseract (one per image read); helpers (multiprocessing's
    forkserver, a child of the daemon, and its resource tracker); worker processes (every
    other child living at least PERSISTENT_SECONDS, e.g. the forkserver's children).
    """

    pid: int
    daemon_hwm: int = 0
    worker_hwm: dict[int, int] = field(default_factory=dict)
    helper_hwm: dict[int, int] = field(default_factory=dict)
    tesseract_hwm: int = 0
    total_peak: int = 0
    total_peak_without_tesseract: int = 0
    total_peak_pss: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _first_seen: dict[int, float] = field(default_factory=dict)
    _roles: dict[int, str] = field(default_factory=dict)

    def run(self) -> None:
        """Sample every SAMPLE_SECONDS until stop()."""
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def role(self, pid: int, parent: int, name: str, now: float) -> str:
        """The process's role: tesseract, helper, worker, or transient (not counted)."""
        if name.startswith("tesseract"):
            return "tesseract"
        if pid in self._roles:
            return self._roles[pid]
        if now - self._first_seen.setdefault(pid, now) < PERSISTENT_SECONDS:
            return "transient"
        arguments = command_line(pid)
        helper = "resource_tracker" in arguments or (
            "forkserver" in arguments and parent == self.pid)
        self._roles[pid] = "helper" if helper else "worker"
        return self._roles[pid]

    def sample(self) -> None:
        """One look at the tree."""
        own = process_status(self.pid)
        if own is None:
            return
        now = time.monotonic()
        with_pss = self.samples % PSS_EVERY == 0
        _, daemon_rss, daemon_hwm = own
        self.daemon_hwm = max(self.daemon_hwm, daemon_hwm)
        total = without_tesseract = daemon_rss
        pss = proportional_set_size(self.pid) if with_pss else 0
        for child, parent in descendants(self.pid):
            status = process_status(child)
            if status is None:
                continue
            name, rss, hwm = status
            role = self.role(child, parent, name, now)
            if role == "transient":
                continue
            total += rss
            if with_pss:
                pss += proportional_set_size(child)
            if role == "tesseract":
                self.tesseract_hwm = max(self.tesseract_hwm, hwm)
                continue
            without_tesseract += rss
            kept = self.worker_hwm if role == "worker" else self.helper_hwm
            kept[child] = max(kept.get(child, 0), hwm)
        self.total_peak = max(self.total_peak, total)
        self.total_peak_without_tesseract = max(self.total_peak_without_tesseract,
                                                without_tesseract)
        self.total_peak_pss = max(self.total_peak_pss, pss)
        self.samples += 1

    def stop(self) -> None:
        """End run()."""
        self._stop.set()

    def figures(self) -> dict[str, Any]:
        """The peaks in MiB."""
        workers = sorted(self.worker_hwm.values())
        return {
            "daemon_peak_rss_mib": round(self.daemon_hwm / KIB, 1),
            "worker_processes_seen": len(workers),
            "worker_process_peak_rss_mib": [round(value / KIB, 1) for value in workers],
            "worker_process_peak_rss_max_mib": round(max(workers, default=0) / KIB, 1),
            "helper_process_peak_rss_mib": [round(value / KIB, 1)
                                            for value in sorted(self.helper_hwm.values())],
            "tesseract_peak_rss_mib": round(self.tesseract_hwm / KIB, 1),
            "total_peak_rss_mib": round(self.total_peak / KIB, 1),
            "total_peak_rss_without_tesseract_mib": round(
                self.total_peak_without_tesseract / KIB, 1),
            "total_peak_pss_mib": round(self.total_peak_pss / KIB, 1),
            "samples": self.samples,
        }


# -- the three steps --------------------------------------------------------------------


def deliver_backlog(workdir: Path, images: Sequence[Path], run: str, relay_port: int,
                    arguments: argparse.Namespace, failures: list[str]) -> int:
    """Take every report in with the worker off; return the number of 250s."""
    port = free_port()
    config = write_config(workdir, port, relay_port, arguments.database_url, worker=False,
                          processes=arguments.processes)
    log_path = workdir / "intake.log"
    daemon = start_daemon(config, log_path)
    accepted = 0
    started = time.monotonic()
    try:
        wait_for_port(port, daemon, STARTUP_TIMEOUT_S)
        with smtplib.SMTP(LOOPBACK, port, local_hostname=CLIENT_HOSTNAME,
                          timeout=120) as client:
            for number, image in enumerate(images):
                raw = screenshot_report(number, image.read_bytes(), run)
                refused = client.sendmail(employee(number), [INTAKE_ADDRESS], raw)
                if refused:
                    raise BenchError(f"report {number} refused: {refused}")
                accepted += 1
    except smtplib.SMTPException as error:
        failures.append(f"delivery stopped after {accepted} reports: {error}")
    finally:
        code = stop_daemon(daemon)
    seconds = time.monotonic() - started
    print(f"backlog: {accepted} reports taken in with the worker off in {seconds:.1f} s; "
          f"daemon exit {code}", flush=True)
    if code != 0:
        failures.append(f"the intake daemon exited {code} after SIGTERM")
    return accepted


def process_backlog(workdir: Path, expected: int, run: str, relay_port: int,
                    arguments: argparse.Namespace, failures: list[str]
                    ) -> tuple[float, MemorySampler]:
    """Start the daemon with the worker on; time until every row is processed."""
    counter = RowCounter(arguments.database_url, workdir / "data", run)
    try:
        states = counter.states()
        print(f"rows before the worker starts: {states}", flush=True)
        if states.get("received", 0) != expected or states["seen_more_than_once"]:
            raise BenchError(f"{expected} reports got 250 but the rows are {states}: "
                             "not one row per 250")
        port = free_port()
        config = write_config(workdir, port, relay_port, arguments.database_url,
                              worker=True, processes=arguments.processes)
        started = time.monotonic()
        daemon = start_daemon(config, workdir / "worker.log")
        sampler = MemorySampler(daemon.pid)
        sampling = threading.Thread(target=sampler.run, name="rss-sampler", daemon=True)
        sampling.start()
        try:
            deadline = started + arguments.timeout
            last_print = started
            while True:
                states = counter.states()
                done = states.get("processed", 0) + states.get("quarantined", 0)
                now = time.monotonic()
                # Processed rows have every step done, OCR (the last one) included; no
                # screenshot may still wait for it.
                if done >= expected and not counter.ocr_outcomes().get("pending"):
                    elapsed = now - started
                    break
                if daemon.poll() is not None:
                    raise BenchError(f"the daemon exited {daemon.returncode} while working")
                if now > deadline:
                    raise BenchError(f"after {arguments.timeout:.0f} s the rows are {states}")
                if now - last_print >= 30:
                    print(f"  {now - started:5.0f} s: {states}", flush=True)
                    last_print = now
                time.sleep(0.25)  # polling the database with a deadline
        finally:
            sampler.stop()
            sampling.join(10)
            code = stop_daemon(daemon)
        if code != 0:
            failures.append(f"the worker daemon exited {code} after SIGTERM")
        if states.get("quarantined", 0):
            failures.append(f"{states['quarantined']} reports were quarantined")
        outcomes = counter.ocr_outcomes()
        print(f"OCR outcomes of the run's screenshots: {outcomes}", flush=True)
        if outcomes.get("ok", 0) != expected:
            failures.append(f"{expected} screenshots but OCR outcomes {outcomes}")
        return elapsed, sampler
    finally:
        counter.close()


def tesseract_ceiling(images: Sequence[Path], cores: int, failures: list[str]) -> float:
    """Seconds for tesseract alone over the images, `cores` at a time."""
    languages = ExtractSettings().ocr_languages
    listing = "\0".join(str(image) for image in images).encode()
    started = time.monotonic()
    done = subprocess.run(
        ["xargs", "-0", "-P", str(cores), "-I", "{}",
         "tesseract", "{}", "stdout", "-l", languages],
        input=listing, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    seconds = time.monotonic() - started
    if done.returncode != 0:
        failures.append(f"tesseract over the images: xargs exited {done.returncode}: "
                        f"{done.stderr.decode(errors='replace')[-500:]}")
    return seconds


# -- main -------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=500,
                        help="reports in the backlog (default 500)")
    parser.add_argument("--processes", type=int, default=available_cores(),
                        help="[worker] processes (default: the cores, as the daemon's)")
    parser.add_argument("--database-url", default="",
                        help="database for the daemon (default: embedded SQLite)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds the worker may take for the backlog (default 3600)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    arguments = parser.parse_args(argv)
    if arguments.messages < 1 or arguments.processes < 1:
        parser.error("--messages and --processes must be at least 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Build the backlog, time the worker and tesseract, print and write the figures."""
    arguments = parse_arguments(argv)
    cores = available_cores()
    run = secrets.token_hex(4)
    failures: list[str] = []
    relay = Controller(NullRelay(), hostname=LOOPBACK, port=free_port())
    relay.start()
    try:
        with tempfile.TemporaryDirectory(prefix="chikanemail-bench-ocr-") as folder:
            workdir = Path(folder)
            began = time.monotonic()
            images = write_screenshots(arguments.messages, workdir / "images")
            image_bytes = sum(image.stat().st_size for image in images)
            print(f"{arguments.messages} screenshots, {image_bytes / len(images) / MIB:.2f} "
                  f"MiB each on average, drawn in {time.monotonic() - began:.1f} s; "
                  f"{cores} cores; [worker] processes = {arguments.processes}; database "
                  f"{'PostgreSQL' if arguments.database_url else 'SQLite'}", flush=True)
            try:
                accepted = deliver_backlog(workdir, images, run, relay.port, arguments,
                                           failures)
                if failures:
                    raise BenchError("the backlog was not delivered")
                elapsed, sampler = process_backlog(workdir, accepted, run, relay.port,
                                                   arguments, failures)
                tesseract_seconds = tesseract_ceiling(images, cores, failures)
            except BenchError as error:
                failures.append(str(error))
            serious = [line for name in ("intake.log", "worker.log")
                       if (workdir / name).exists()
                       for line in log_lines(workdir / name, ERROR_MARKERS)]
            for line in serious[:20]:
                print(f"    {line}")
            if serious:
                failures.append(f"the daemon logged {len(serious)} ERROR/Traceback lines")
            if failures:
                for name in ("intake.log", "worker.log"):
                    if (workdir / name).exists():
                        tail = (workdir / name).read_text(errors="replace")[-3000:]
                        print(f"--- {name} tail ---\n{tail}")
    finally:
        relay.stop()
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    if failures:
        return 1

    ours = accepted / elapsed
    ceiling = len(images) / tesseract_seconds
    ratio = ours / ceiling
    memory = sampler.figures()
    workers = memory["worker_processes_seen"]
    print(f"chikanemail: {accepted} reports processed in {elapsed:.1f} s from start: "
          f"{ours:.2f} reports/s ([worker] processes = {arguments.processes}, "
          f"{workers} worker processes seen)")
    print(f"tesseract alone, xargs -P {cores}: {len(images)} images in "
          f"{tesseract_seconds:.1f} s: {ceiling:.2f} images/s")
    print(f"ratio {ratio:.2f} (target >= 0.8)")
    print(f"peak RSS: daemon {memory['daemon_peak_rss_mib']} MiB; per worker process "
          f"{memory['worker_process_peak_rss_mib'] or 'none (the worker is a thread)'}; "
          f"helpers {memory['helper_process_peak_rss_mib'] or 'none'}; "
          f"tesseract {memory['tesseract_peak_rss_mib']} MiB per image; total "
          f"{memory['total_peak_rss_mib']} MiB "
          f"({memory['total_peak_rss_without_tesseract_mib']} MiB without tesseract; "
          f"Pss {memory['total_peak_pss_mib']} MiB)")
    write_results(arguments.json, [Result(
        id="P7", what=f"reports with a 1 MB screenshot processed per second, OCR on, from a "
                      f"backlog of {accepted}, vs tesseract alone on every core",
        value=round(ratio, 3), unit="ratio", comparison=">=", limit=0.8,
        summary=(f"{ours:.2f} vs {ceiling:.2f} reports/s; [worker] processes = "
                 f"{arguments.processes}, {workers} worker processes seen; peak RSS "
                 + (f"per worker process {memory['worker_process_peak_rss_max_mib']} MiB, "
                    if workers else "")
                 + f"daemon {memory['daemon_peak_rss_mib']} MiB, total "
                 f"{memory['total_peak_rss_mib']} MiB"),
        details={"reports_per_second": round(ours, 3),
                 "tesseract_images_per_second": round(ceiling, 3),
                 "seconds": round(elapsed, 1), "tesseract_seconds": round(tesseract_seconds, 1),
                 "messages": accepted, "image_mib_average": round(image_bytes / len(images)
                                                                 / MIB, 2),
                 "cpus": cores, "worker_processes": arguments.processes,
                 "database": "PostgreSQL" if arguments.database_url else "SQLite",
                 **memory})])
    return 0


if __name__ == "__main__":
    sys.exit(main())
