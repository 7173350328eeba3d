"""Long run (P8, issue 18): many small mails into one daemon; memory, files and WAL stay flat.

What it measures
    One `chikanemail --config FILE serve` process (embedded SQLite in a temporary data_dir,
    SMTP on a free port of 127.0.0.1, one [[imap]] mailbox on a private Dovecot, outgoing
    mail to the Maildir) takes in --mails small distinct mails. --imap of them (a tenth by
    default) are APPENDed to the Dovecot INBOX while the run goes on, at the pace of the
    SMTP share, and the daemon takes them in by IDLE; the rest come through SMTP from
    --clients concurrent smtplib clients, each opening a new connection every
    --per-connection mails. Of the SMTP mails, 8 in 10 are reports forwarded by an
    employee, 1 in 10 an out-of-office reply (`Auto-Submitted: auto-replied`) and 1 in 10
    a bounce (null sender, multipart/report with a delivery-status part): the automatic
    mails of intake.parse.automatic.

    At every tenth of the mails handed in (250 received or APPENDed) it prints the VmRSS
    (/proc/PID/status) of the daemon and its worker processes together, its open file
    descriptors (/proc/PID/fd), the size of the
    SQLite WAL file and its checkpoint sequence number (from the WAL header: it changes
    each time a checkpoint lets SQLite start the WAL over), the rows stored and processed,
    and mails/s (since the last checkpoint and overall). At the end it waits for the
    worker to finish every row, stops the daemon with SIGTERM and holds the figures
    against the targets, one PASS/FAIL line each:

    - RSS: VmRSS when every mail is handed in / VmRSS after the first tenth < 1.10 (the
      first tenth is the warm-up: imports, caches, SQLAlchemy's statement cache);
    - FDs: open descriptors at the end minus after the first tenth <= --fd-margin (4);
    - WAL: the WAL file never larger than --wal-limit-mib (16; SQLite's auto-checkpoint
      starts the file over at about 4 MiB when no reader holds it), and checkpointed:
      its sequence number changed;
    - log: no ERROR or CRITICAL line, no traceback, in the daemon's stdout/stderr;
    - and, checked as errors: every mail got its 250, one row per mail handed in, every
      row processed, Dovecot's INBOX empty, exit code 0 after SIGTERM.

    With --max-seconds it stops sending when the time is up, says so, and judges what it
    reached (the first tenth still being a tenth of --mails).

How to run (from the repository root, as root: Dovecot delivers as the `mail` user)
    .venv/bin/python bench/long_run.py                         # 100,000 mails: hours
    .venv/bin/python bench/long_run.py --mails 10000           # 9,000 SMTP + 1,000 IMAP
    .venv/bin/python bench/long_run.py --mails 100000 --max-seconds 3600 --json p8.json

Exit status: 0 if the run went through without errors (the JSON's `met` says whether the
targets were met, and so do the PASS/FAIL lines); 1 on an error or a missed target.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import smtplib
import sqlite3
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trustme
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
)
from imap_drain import PASSWORD, USER, build_mail, connect  # also puts the repository on sys.path
from ocr_throughput import descendants, process_status
from results import Result, write_results
from smtp_ingest import start_server, stop_process, toml_string, write_config
from smtp_peak_rss import memory_kib

from tests.dovecot import Dovecot

APPEND_CHUNK = 50
IMAP_MAIL_BYTES = 2000
DRAIN_TIMEOUT_S = 1800.0
SOCKET_TIMEOUT_S = 120.0
RSS_GROWTH_LIMIT = 1.10
FINAL_STATES = ("processed", "quarantined")
EMPLOYEES = 40  # reports come from this many distinct addresses

# The environment packaging/chikanemail.service gives the daemon: glibc's malloc keeps at
# most two arenas, so memory freed by one thread is reused by the others instead of being
# kept per thread (the RSS growth the first runs of this bench showed; see bench/README.md).
SHIPPED_UNIT_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2"}


# -- the mails --------------------------------------------------------------------------


def head(from_field: str, subject: str, message_id: str) -> str:
    """From, To, Subject and Message-ID lines of a mail to the intake address."""
    return (f"From: {from_field}\r\nTo: <{INTAKE_ADDRESS}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}@{SERVER_HOSTNAME}>\r\n")


def report_mail(run: str, number: int) -> tuple[str, bytes]:
    """An employee forwarding a harassing mail: (envelope sender, raw mail).

    Each report names its own harasser (address and domain): a new case is linked to every
    recent case with the same harasser, so one harasser in every report would measure
    case linking (each case linked to all before it) instead of the service's steady state.
    """
    sender = f"ansat{number % EMPLOYEES:02d}@{SERVER_HOSTNAME}"
    raw = (head(f"Ansat {number % EMPLOYEES} <{sender}>",
                f"Fwd: ubehagelig besked {run}-{number}", f"report.{run}.{number}")
           + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "Jeg fik denne besked i går efter mødet. Se nedenfor.\r\n\r\n"
           "---------- Videresendt besked ----------\r\n"
           f"Fra: Kollega <kollega{number}@harasser-{number}.example>\r\nEmne: dig\r\n\r\n"
           f"Det her er besked nummer {number}. Du skal passe på.\r\n")
    return sender, raw.encode()


def out_of_office_mail(run: str, number: int) -> tuple[str, bytes]:
    """An out-of-office reply, marked the way Exchange and Gmail mark theirs."""
    sender = f"ferie{number % EMPLOYEES:02d}@{SERVER_HOSTNAME}"
    raw = (head(f"<{sender}>", f"Automatisk svar: {run}-{number}", f"ooo.{run}.{number}")
           + "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n\r\n"
           "Jeg er på ferie til mandag.\r\n")
    return sender, raw.encode()


def bounce_mail(run: str, number: int) -> tuple[str, bytes]:
    """A delivery status notification from the null sender (RFC 3464)."""
    boundary = f"dsn-{run}-{number}"
    raw = (head(f"Mail Delivery System <MAILER-DAEMON@{SERVER_HOSTNAME}>",
                "Undelivered Mail Returned to Sender", f"bounce.{run}.{number}")
           + "MIME-Version: 1.0\r\n"
           f"Content-Type: multipart/report; report-type=delivery-status; "
           f'boundary="{boundary}"\r\n\r\n'
           f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
           "The mail could not be delivered.\r\n"
           f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
           f"Reporting-MTA: dns; {SERVER_HOSTNAME}\r\n\r\n"
           f"Final-Recipient: rfc822; gone{number}@{SERVER_HOSTNAME}\r\n"
           "Action: failed\r\nStatus: 5.1.1\r\n\r\n"
           f"--{boundary}--\r\n")
    return "", raw.encode()


def smtp_mail(run: str, number: int) -> tuple[str, bytes]:
    """Mail `number` of the SMTP share: 8 in 10 reports, 1 out-of-office, 1 bounce."""
    kind = number % 10
    if kind == 3:
        return out_of_office_mail(run, number)
    if kind == 7:
        return bounce_mail(run, number)
    return report_mail(run, number)


# -- the load ---------------------------------------------------------------------------


@dataclass
class Progress:
    """What the load threads have handed in so far; shared, guarded by `lock`."""

    smtp_total: int
    imap_total: int
    deadline: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    smtp_accepted: int = 0
    imap_appended: int = 0
    errors: list[str] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def handed_in(self) -> int:
        return self.smtp_accepted + self.imap_appended

    def out_of_time(self) -> bool:
        if time.monotonic() < self.deadline:
            return False
        self.stopped_early = True
        return True


def smtp_client(port: int, run: str, numbers: Iterator[int], progress: Progress,
                per_connection: int) -> None:
    """Send mails from the shared counter until it passes the SMTP share, reconnecting
    every `per_connection` mails."""
    try:
        while True:
            with smtplib.SMTP(LOOPBACK, port, local_hostname=CLIENT_HOSTNAME,
                              timeout=SOCKET_TIMEOUT_S) as smtp:
                for _ in range(per_connection):
                    number = next(numbers)
                    if number >= progress.smtp_total or progress.out_of_time():
                        return
                    sender, raw = smtp_mail(run, number)
                    refused = smtp.sendmail(sender, [INTAKE_ADDRESS], raw)
                    if refused:
                        raise BenchError(f"mail {number} refused: {refused}")
                    with progress.lock:
                        progress.smtp_accepted += 1
    except (smtplib.SMTPException, OSError, BenchError) as error:
        with progress.lock:
            progress.errors.append(f"SMTP client: {type(error).__name__}: {error}")


def imap_feeder(dovecot: Dovecot, run: str, progress: Progress) -> None:
    """APPEND the IMAP share to INBOX in chunks, keeping pace with the SMTP share."""
    rng = random.Random()
    try:
        with connect(dovecot) as client:
            while progress.imap_appended < progress.imap_total:
                if progress.errors or progress.out_of_time():
                    return
                due = progress.imap_total * progress.smtp_accepted / max(1, progress.smtp_total)
                smtp_done = progress.smtp_accepted >= progress.smtp_total
                if progress.imap_appended + APPEND_CHUNK > due and not smtp_done:
                    time.sleep(0.05)  # pacing the load, not synchronisation
                    continue
                first = progress.imap_appended
                count = min(APPEND_CHUNK, progress.imap_total - first)
                client.multiappend("INBOX", [build_mail(run, number, IMAP_MAIL_BYTES, rng)
                                             for number in range(first, first + count)])
                with progress.lock:
                    progress.imap_appended += count
    except Exception as error:  # any failure is reported by the run
        with progress.lock:
            progress.errors.append(f"IMAP feeder: {type(error).__name__}: {error}")


# -- what is measured -------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """The daemon at one moment of the run."""

    label: str
    handed_in: int
    seconds: float
    rss_kib: int
    fds: int
    wal_bytes: int
    wal_checkpoints: int
    states: dict[str, int]

    @property
    def stored(self) -> int:
        return sum(self.states.values())

    @property
    def processed(self) -> int:
        return sum(self.states.get(state, 0) for state in FINAL_STATES)


def database_file(data_dir: Path) -> Path:
    """The embedded SQLite database of the data_dir."""
    found = list(data_dir.glob("*.sqlite3"))
    if len(found) != 1:
        raise BenchError(f"expected one SQLite database in {data_dir}, found {found}")
    return found[0]


def wal_figures(database: Path) -> tuple[int, int]:
    """The WAL file's size and its checkpoint sequence number (bytes 12-15 of its header,
    big-endian; SQLite changes it each time it starts the WAL over after a checkpoint)."""
    wal = database.with_name(database.name + "-wal")
    try:
        with open(wal, "rb") as file:
            header = file.read(16)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        return 0, 0
    sequence = struct.unpack(">I", header[12:16])[0] if len(header) == 16 else 0
    return size, int(sequence)


def message_states(database: Path) -> dict[str, int]:
    """Rows per state. A short read-only connection: a reader held open would keep SQLite
    from starting the WAL over, which is the very thing measured."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute("SELECT state, count(*) FROM message GROUP BY state")
        return {str(state): int(count) for state, count in rows}
    finally:
        connection.close()


def tree_rss_kib(pid: int) -> int:
    """VmRSS of the daemon plus its worker processes and their fork server (every process
    below it but tesseract, which comes and goes with each image), in KiB."""
    total = memory_kib(pid)["VmRSS"]
    for child, _parent in descendants(pid):
        status = process_status(child)
        if status is not None and status[0] != "tesseract":
            total += status[1]
    return total


def take_sample(label: str, pid: int, database: Path, handed_in: int,
                started: float) -> Sample:
    wal_bytes, checkpoints = wal_figures(database)
    return Sample(label=label, handed_in=handed_in, seconds=time.monotonic() - started,
                  rss_kib=tree_rss_kib(pid), fds=len(os.listdir(f"/proc/{pid}/fd")),
                  wal_bytes=wal_bytes, wal_checkpoints=checkpoints,
                  states=message_states(database))


def print_sample(sample: Sample, previous: Sample | None) -> None:
    rate = sample.handed_in / sample.seconds if sample.seconds else 0.0
    if previous is not None and sample.seconds > previous.seconds:
        recent = (sample.handed_in - previous.handed_in) / (sample.seconds - previous.seconds)
    else:
        recent = rate
    print(f"[{sample.label:>6}] {sample.handed_in:7d} handed in, {sample.stored:7d} stored, "
          f"{sample.processed:7d} processed | {sample.seconds:7.0f} s, {recent:6.1f} mails/s "
          f"(overall {rate:5.1f}) | RSS {sample.rss_kib / 1024:6.1f} MiB | FDs {sample.fds:3d} | "
          f"WAL {sample.wal_bytes / MIB:5.2f} MiB, checkpoint #{sample.wal_checkpoints}",
          flush=True)


@dataclass(frozen=True)
class Verdict:
    """One target, PASS or FAIL, with the figures behind it."""

    name: str
    passed: bool
    detail: str


def judge(warm: Sample, end: Sample, samples: Sequence[Sample], error_lines: Sequence[str],
          fd_margin: int, wal_limit_bytes: int) -> list[Verdict]:
    """Hold the run's samples against the targets (the warm-up sample against the end)."""
    ratio = end.rss_kib / warm.rss_kib
    largest_wal = max(sample.wal_bytes for sample in samples)
    # The number is not monotonic across the WAL file being deleted and made anew (when
    # the daemon's last connection to the database closes); any change is a restart.
    checkpointed = len({sample.wal_checkpoints for sample in samples}) > 1
    return [
        Verdict("RSS", ratio < RSS_GROWTH_LIMIT,
                f"{warm.rss_kib / 1024:.1f} MiB at {warm.handed_in} mails -> "
                f"{end.rss_kib / 1024:.1f} MiB at {end.handed_in}: ratio {ratio:.3f} "
                f"(target < {RSS_GROWTH_LIMIT:.2f})"),
        Verdict("FDs", end.fds - warm.fds <= fd_margin,
                f"{warm.fds} at {warm.handed_in} mails -> {end.fds} at {end.handed_in} "
                f"(target: at most {fd_margin} more)"),
        Verdict("WAL", largest_wal <= wal_limit_bytes and checkpointed,
                f"largest {largest_wal / MIB:.2f} MiB (limit {wal_limit_bytes / MIB:g} MiB), "
                f"checkpoint sequence {samples[0].wal_checkpoints} -> {end.wal_checkpoints}"
                f"{', started over' if checkpointed else ': never started over'}"),
        Verdict("log", not error_lines,
                f"{len(error_lines)} ERROR/CRITICAL/traceback lines in the daemon's log"),
    ]


# -- the run ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a long run found: its samples, verdicts and errors."""

    samples: list[Sample]
    verdicts: list[Verdict]
    errors: list[str]
    stopped_early: bool
    drained: Sample | None = None

    @property
    def passed(self) -> bool:
        return not self.errors and all(verdict.passed for verdict in self.verdicts)


def write_long_run_config(workdir: Path, port: int, dovecot: Dovecot) -> Path:
    """smtp_ingest's daemon config with one [[imap]] mailbox on the private Dovecot."""
    password_file = workdir / "imap-password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    config = write_config(workdir, port, None)
    with open(config, "a", encoding="utf-8") as file:
        file.write("\n".join([
            "[[imap]]", 'name = "longrun"', f"host = {toml_string(LOOPBACK)}",
            f"port = {dovecot.port}", f"username = {toml_string(USER)}",
            f"password_file = {toml_string(str(password_file))}",
            f"ca_file = {toml_string(str(dovecot.ca_file))}", ""]))
    return config


def run_load(process_pid: int, port: int, dovecot: Dovecot, database: Callable[[], Path],
             arguments: argparse.Namespace) -> tuple[list[Sample], Progress]:
    """Hand every mail in, sampling the daemon at every --every mails."""
    run = f"{random.getrandbits(32):08x}"
    started = time.monotonic()
    progress = Progress(smtp_total=arguments.mails - arguments.imap,
                        imap_total=arguments.imap,
                        deadline=started + (arguments.max_seconds or float("inf")))
    numbers = itertools.count()  # next() on it is atomic under the GIL: distinct mails
    threads = [threading.Thread(target=smtp_client, name=f"smtp-{index}",
                                args=(port, run, numbers, progress, arguments.per_connection),
                                daemon=True)
               for index in range(arguments.clients)]
    threads.append(threading.Thread(target=imap_feeder, name="imap-feeder",
                                    args=(dovecot, run, progress), daemon=True))
    samples = [take_sample("start", process_pid, database(), 0, started)]
    print_sample(samples[0], None)
    for thread in threads:
        thread.start()
    every = arguments.every
    next_mark = every
    while any(thread.is_alive() for thread in threads):
        if progress.handed_in >= next_mark:
            sample = take_sample(f"{100 * next_mark // arguments.mails}%", process_pid,
                                 database(), progress.handed_in, started)
            print_sample(sample, samples[-1])
            samples.append(sample)
            next_mark += every
        time.sleep(0.1)
    if samples[-1].handed_in != progress.handed_in:
        sample = take_sample("end", process_pid, database(), progress.handed_in, started)
        print_sample(sample, samples[-1])
        samples.append(sample)
    return samples, progress


def wait_for_drain(pid: int, database: Path, handed_in: int, dovecot: Dovecot,
                   started: float) -> Sample:
    """Wait until every mail handed in is a row in a final state and INBOX is empty."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        sample = take_sample("done", pid, database, handed_in, started)
        if sample.processed >= handed_in:
            with connect(dovecot) as client:
                if client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 0:
                    return sample
        if time.monotonic() > deadline:
            raise BenchError(f"after {DRAIN_TIMEOUT_S:.0f} s only {sample.processed} of "
                             f"{handed_in} mails processed ({sample.states})")
        time.sleep(1.0)


def warm_sample(samples: Sequence[Sample], warm_up: int) -> Sample:
    """The first sample taken after the warm-up (the last one if none was)."""
    return next((sample for sample in samples if sample.handed_in >= warm_up), samples[-1])


def long_run(workdir: Path, arguments: argparse.Namespace) -> Outcome:
    """Start Dovecot and the daemon, run the load, drain, stop; judge the figures."""
    os.chmod(workdir, 0o755)  # noqa: S103  # Dovecot's users (dovecot, mail) must reach it
    dovecot = Dovecot(workdir / "dovecot", {USER: PASSWORD}, trustme.CA())
    errors: list[str] = []
    dovecot.start()
    try:
        port = free_port()
        config = write_long_run_config(workdir, port, dovecot)
        log = workdir / "chikanemail.log"
        process = start_server([*chikanemail_command(), "--config", str(config), "serve"],
                               log, port, SHIPPED_UNIT_ENVIRONMENT)
        data_dir = workdir / "data"
        try:
            started = time.monotonic()
            samples, progress = run_load(process.pid, port, dovecot,
                                         lambda: database_file(data_dir), arguments)
            errors += progress.errors
            drained = None
            if not errors:
                drained = wait_for_drain(process.pid, database_file(data_dir),
                                         progress.handed_in, dovecot, started)
                print_sample(drained, samples[-1])
                if drained.stored != progress.handed_in:
                    errors.append(f"{drained.stored} rows for {progress.handed_in} mails "
                                  "handed in")
        finally:
            exit_code = stop_process(process, "chikanemail daemon")
        if exit_code != 0:
            errors.append(f"the daemon exited {exit_code} after SIGTERM")
    finally:
        dovecot.stop()
    if progress.stopped_early:
        print(f"stopped at {progress.handed_in} of {arguments.mails} mails: --max-seconds "
              f"{arguments.max_seconds:g} reached")
    warm = warm_sample(samples, arguments.warm_up)
    found = log_lines(log, ERROR_MARKERS)
    for line in found[:20]:
        print(f"    {line}")
    verdicts = judge(warm, samples[-1], samples, found, arguments.fd_margin,
                     int(arguments.wal_limit_mib * MIB))
    if warm is samples[-1]:
        errors.append("the run ended before its first checkpoint: nothing to compare")
    return Outcome(samples, verdicts, errors, progress.stopped_early, drained)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=100_000,
                        help="mails in all, SMTP and IMAP (default 100,000)")
    parser.add_argument("--imap", type=int, default=None,
                        help="how many of them come by IMAP (default a tenth)")
    parser.add_argument("--every", type=int, default=None,
                        help="sample every this many mails (default a tenth of --mails)")
    parser.add_argument("--warm-up", type=int, default=None,
                        help="compare the end with the first sample after this many mails "
                             "(default a tenth of --mails)")
    parser.add_argument("--clients", type=int, default=2, help="SMTP clients (default 2)")
    parser.add_argument("--per-connection", type=int, default=100,
                        help="mails per SMTP connection (default 100)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop sending after this long and judge what was reached")
    parser.add_argument("--fd-margin", type=int, default=4,
                        help="open descriptors the end may have more than the warm-up (4)")
    parser.add_argument("--wal-limit-mib", type=float, default=16.0,
                        help="largest WAL file allowed, MiB (default 16)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    arguments = parser.parse_args(argv)
    if arguments.imap is None:
        arguments.imap = arguments.mails // 10
    if arguments.every is None:
        arguments.every = max(1, arguments.mails // 10)
    if arguments.warm_up is None:
        arguments.warm_up = arguments.every
    if arguments.mails < 10 or not 0 <= arguments.imap < arguments.mails:
        parser.error("--mails must be at least 10 and --imap below it")
    if arguments.clients < 1 or arguments.per_connection < 1:
        parser.error("--clients and --per-connection must be at least 1")
    return arguments


def run_long(arguments: argparse.Namespace) -> Outcome:
    """The long run in a scratch folder of its own (Dovecot's users must reach it), which
    goes away afterwards; on a BenchError the daemon's log tail is printed first."""
    work = Path(tempfile.mkdtemp(prefix="chik-long-run-"))
    try:
        return long_run(work, arguments)
    except BenchError:
        log = work / "chikanemail.log"
        if log.exists():
            print(f"--- daemon log tail ---\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(outcome: Outcome) -> str:
    """The verdicts, one PASS/FAIL line each, and the errors."""
    return "\n".join([*(f"{verdict.name:4} {'PASS' if verdict.passed else 'FAIL'}: "
                        f"{verdict.detail}" for verdict in outcome.verdicts),
                      *(f"FAILED: {error}" for error in outcome.errors)])


def main(argv: Sequence[str] | None = None) -> int:
    """Run it; print the figures and the verdicts; exit 1 on an error or a missed target."""
    arguments = parse_arguments(argv)
    print(f"{arguments.mails} mails: {arguments.mails - arguments.imap} by SMTP "
          f"({arguments.clients} clients, {arguments.per_connection} per connection; 8/10 "
          f"reports, 1/10 out-of-office, 1/10 bounces), {arguments.imap} by IMAP; a sample "
          f"every {arguments.every}; {os.cpu_count()} CPUs", flush=True)
    try:
        outcome = run_long(arguments)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print(report(outcome))
    warm = warm_sample(outcome.samples, arguments.warm_up)
    end = outcome.samples[-1]
    rss = next(verdict for verdict in outcome.verdicts if verdict.name == "RSS")
    write_results(arguments.json, [Result(
        id="P8", what=f"long run: RSS at the end / after the first tenth, {end.handed_in} "
                      "small mails (SMTP, IMAP, automatic)",
        value=round(end.rss_kib / warm.rss_kib, 3), unit="ratio", comparison="<",
        limit=RSS_GROWTH_LIMIT,
        summary=f"{warm.rss_kib / 1024:.0f} -> {end.rss_kib / 1024:.0f} MiB; "
                + "; ".join(f"{v.name} {'pass' if v.passed else 'FAIL'}"
                            for v in outcome.verdicts if v is not rss)
                + f"; {end.handed_in / end.seconds:.0f} mails/s",
        details={"mails": arguments.mails, "imap": arguments.imap,
                 "stopped_early": outcome.stopped_early,
                 "verdicts": {v.name: {"passed": v.passed, "detail": v.detail}
                              for v in outcome.verdicts},
                 "samples": [{"label": s.label, "handed_in": s.handed_in,
                              "seconds": round(s.seconds, 1), "rss_kib": s.rss_kib,
                              "fds": s.fds, "wal_bytes": s.wal_bytes,
                              "wal_checkpoints": s.wal_checkpoints, "states": s.states}
                             for s in outcome.samples]})])
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
