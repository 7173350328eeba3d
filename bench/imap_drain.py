"""IMAP drain time: how long Chikanemail takes to empty a mailbox, against a bare fetch loop.

What it measures (benchmark P5 of issue 9: throughput ratio >= 0.5)
    A private Dovecot (the test suite's fixture, tests/dovecot.py: TLS on 127.0.0.1) gets
    N distinct mails of about S KB each, APPENDed to INBOX. Then, in one run, on the same
    server and the same mails:

    a) baseline: a bare imapclient loop that only fetches them. It connects and selects
       INBOX read-only, then fetches BODY.PEEK[] in batches as big as the receiver's
       (50 mails, at most 16 MiB), and keeps nothing. imapclient as it comes: it has
       imaplib format a trace of every response, message bodies included, for a logger
       that drops it.
    a') the same loop with that trace off (imaplib's debug level 0), as Chikanemail's own
       client runs: shown for reference, the target is held against a).
    b) Chikanemail: one `ImapReceiver` (in this process, worker off) drains INBOX. Per batch
       of one FETCH it downloads the bodies, writes their blobs (each fsync'd, renamed, then
       every directory that changed fsync'd), commits all their rows in one transaction,
       then MOVEs the batch to the processed folder and records the last UID. The time runs
       from `start()` until every row exists and INBOX is empty.

    It prints the times, mails and MiB per second, and the throughput ratio b/a
    (Chikanemail's mails per second over the bare loop's, i.e. a's seconds over b's).
    Afterwards it checks that the database holds exactly one row per mail (times_seen 1),
    that every blob hashes to its name, that INBOX is empty and that the processed folder
    holds all N mails.

How to run (from the repository root)
    .venv/bin/python bench/imap_drain.py
    .venv/bin/python bench/imap_drain.py --messages 1000 --size-kb 200 --json p5.json
    .venv/bin/python bench/imap_drain.py --database-url 'postgresql+psycopg://...'

It needs Dovecot (`dovecot-imapd`) and must run as root, like the tests (Dovecot delivers
as the `mail` user). With --database-url, give an empty database or schema. With --json
PATH it writes the result (bench/results.py: id P5, the ratio against ">= 0.5").

Exit status: 0 if the drain finished and every check passed, whether or not the ratio met
the target (the JSON says `met`); 1 otherwise (reason printed).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the Dovecot fixture lives in tests/

import trustme  # noqa: E402  # after the path: the test dependencies
from daemon_process import BenchError  # noqa: E402  # bench/ is the script's own folder
from imapclient import IMAPClient  # type: ignore[import-untyped]  # noqa: E402
from results import Result, write_results  # noqa: E402

from intake.receive.imap.catchup import BATCH_BYTES, BATCH_MESSAGES  # noqa: E402
from intake.receive.imap.receiver import ImapReceiver  # noqa: E402
from intake.service.daemon import open_services  # noqa: E402
from intake.service.settings import ImapMailbox  # noqa: E402
from storage.messages import count_by_state, list_messages  # noqa: E402
from tests.dovecot import Dovecot  # noqa: E402
from tests.support import make_config  # noqa: E402

USER, PASSWORD = "intake", "bench-password"
PROCESSED = "Chikanemail.Behandlet"  # "Chikanemail/Behandlet" with Dovecot's "." delimiter
MIB = 1024 * 1024
APPEND_CHUNK = 50


def build_mail(run: str, number: int, size: int, rng: random.Random) -> bytes:
    """A distinct CRLF mail of about `size` bytes: headers and a base64 body."""
    head = (f"From: Ansat <ansat@bench.local>\r\nTo: <chikanemail@bench.local>\r\n"
            f"Subject: drain {run} #{number}\r\nMessage-ID: <{run}.{number}@bench.local>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    body = base64.encodebytes(rng.randbytes(max(0, size - len(head)) * 3 // 4))
    return head + body.replace(b"\n", b"\r\n")


def connect(dovecot: Dovecot) -> IMAPClient:
    """A signed-in session on the private Dovecot."""
    client = IMAPClient("127.0.0.1", port=dovecot.port, timeout=60,
                        ssl_context=ssl.create_default_context(cafile=str(dovecot.ca_file)))
    client.login(USER, PASSWORD)
    return client


def fill_inbox(dovecot: Dovecot, count: int, size: int) -> dict[str, int]:
    """APPEND `count` distinct mails; return their SHA-256 and sizes."""
    rng = random.Random()
    run = f"{rng.getrandbits(32):08x}"
    appended: dict[str, int] = {}
    with connect(dovecot) as client:
        for start in range(0, count, APPEND_CHUNK):
            mails = [build_mail(run, number, size, rng)
                     for number in range(start, min(count, start + APPEND_CHUNK))]
            client.multiappend("INBOX", mails)
            appended.update((hashlib.sha256(mail).hexdigest(), len(mail)) for mail in mails)
        if client.select_folder("INBOX", readonly=True)[b"EXISTS"] != count:
            raise BenchError("INBOX does not hold the appended mails")
    return appended


def bare_fetch(dovecot: Dovecot, expected_bytes: int, *, trace: bool = True) -> float:
    """Seconds a plain imapclient loop takes to fetch every mail of INBOX (keeping nothing);
    with `trace` False, imaplib's debug level is 0 (no trace formatted)."""
    started = time.perf_counter()
    fetched = 0
    with connect(dovecot) as client:
        if not trace:
            client._imap.debug = 0  # what intake.receive.imap.connection's client does
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        sizes = client.fetch(f"{uids[0]}:{uids[-1]}", ["RFC822.SIZE"])
        batch: list[int] = []
        batch_bytes = 0
        for uid in [*uids, 0]:  # 0: flush the last batch
            size = int(sizes[uid][b"RFC822.SIZE"]) if uid else 0
            if batch and (not uid or len(batch) >= BATCH_MESSAGES
                          or batch_bytes + size > BATCH_BYTES):
                for data in client.fetch(batch, ["BODY.PEEK[]"]).values():
                    fetched += len(data[b"BODY[]"])
                batch, batch_bytes = [], 0
            batch.append(uid)
            batch_bytes += size
    elapsed = time.perf_counter() - started
    if fetched != expected_bytes:
        raise BenchError(f"the bare loop fetched {fetched} bytes, expected {expected_bytes}")
    return elapsed


def drain(dovecot: Dovecot, work: Path, database_url: str | None,
          appended: dict[str, int], timeout: float) -> float:
    """Seconds the receiver takes to store and move every mail; then check the result."""
    work.mkdir(mode=0o700, exist_ok=True)
    password_file = work / "imap-password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    mailbox = ImapMailbox(name="bench", host="127.0.0.1", username=USER, port=dovecot.port,
                          password_file=str(password_file), ca_file=str(dovecot.ca_file))
    data_dir = work / "data"
    config = make_config(data_dir, database_url or f"sqlite:///{data_dir}/bench.sqlite3")
    services = open_services(config)
    receiver = ImapReceiver(mailbox, services.intake, config.smtp.max_message_bytes)
    try:
        started = time.perf_counter()
        receiver.start()
        deadline = time.monotonic() + timeout
        while sum(count_by_state(services.database).values()) < len(appended):
            if time.monotonic() > deadline:
                raise BenchError(f"not drained after {timeout:.0f} s")
            time.sleep(0.05)
        while receiver.state != "idle":  # the last batch moved and recorded
            if time.monotonic() > deadline:
                raise BenchError(f"receiver not back in IDLE after {timeout:.0f} s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        if not receiver.stop(10.0):
            raise BenchError("the receiver did not stop")
        rows = list_messages(services.database)
        if {row.sha256 for row in rows} != set(appended) or len(rows) != len(appended):
            raise BenchError("the stored rows are not exactly the appended mails")
        if any(row.times_seen != 1 or row.size != appended[row.sha256] for row in rows):
            raise BenchError("a row was seen twice or has the wrong size")
        for sha256 in appended:
            if hashlib.sha256(services.store.read_bytes(sha256)).hexdigest() != sha256:
                raise BenchError(f"blob {sha256} does not hash to its name")
    finally:
        receiver.stop(10.0)
        services.close()
    with connect(dovecot) as client:
        left = client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"]
        moved = client.folder_status(PROCESSED, ["MESSAGES"])[b"MESSAGES"]
    if (left, moved) != (0, len(appended)):
        raise BenchError(f"INBOX holds {left}, {PROCESSED} {moved} (want 0 and "
                         f"{len(appended)})")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures (and write them with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size-kb", type=int, default=200, help="size of each mail in KB")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="chik-imap-bench-"))
    os.chmod(base, 0o755)  # noqa: S103  # Dovecot's users (dovecot, mail) must reach it
    dovecot = Dovecot(base / "dovecot", {USER: PASSWORD}, trustme.CA())
    try:
        dovecot.start()
        print(f"appending {args.messages} mails of {args.size_kb} KB to a private Dovecot…",
              flush=True)
        appended = fill_inbox(dovecot, args.messages, args.size_kb * 1000)
        total = sum(appended.values())
        baseline = bare_fetch(dovecot, total)
        quiet = bare_fetch(dovecot, total, trace=False)
        chikanemail = drain(dovecot, base / "work", args.database_url, appended, args.timeout)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)

    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{args.messages} mails, {total / MIB:.1f} MiB in all, {database}, "
          f"{os.cpu_count()} CPUs")
    for label, seconds in (("bare imapclient fetch loop", baseline),
                           ("  same, imaplib trace off", quiet),
                           ("chikanemail receiver drain", chikanemail)):
        print(f"  {label:28} {seconds:7.2f} s  {args.messages / seconds:7.1f} mails/s  "
              f"{total / MIB / seconds:6.1f} MiB/s")
    result = Result(
        id="P5",
        what="IMAP drain of 1,000 mails from Dovecot vs a bare imapclient fetch loop",
        value=round(baseline / chikanemail, 3),
        unit="ratio",
        comparison=">=",
        limit=0.5,
        summary=(f"{args.messages / chikanemail:.0f} vs {args.messages / baseline:.0f} mails/s "
                 f"({args.messages / quiet:.0f} with imaplib's trace off), {database}"),
        details={
            "bare_seconds": round(baseline, 3),
            "bare_mails_per_second": round(args.messages / baseline, 1),
            "bare_mib_per_second": round(total / MIB / baseline, 1),
            "bare_trace_off_seconds": round(quiet, 3),
            "bare_trace_off_mails_per_second": round(args.messages / quiet, 1),
            "ratio_against_bare_trace_off": round(quiet / chikanemail, 3),
            "chikanemail_seconds": round(chikanemail, 3),
            "chikanemail_mails_per_second": round(args.messages / chikanemail, 1),
            "chikanemail_mib_per_second": round(total / MIB / chikanemail, 1),
            "messages": args.messages,
            "size_kb": args.size_kb,
            "total_mib": round(total / MIB, 1),
            "database": database,
            "cpus": os.cpu_count(),
        },
    )
    print(f"  throughput ratio chikanemail / bare loop  {result.value:5.2f}  "
          f"(target {result.target}: {'met' if result.met else 'NOT met'}; "
          f"{quiet / chikanemail:.2f} against the loop with the trace off)")
    print("checks: one row per mail, blobs hash to their names, INBOX empty, all moved: OK")
    write_results(args.json, [result])
    return 0


if __name__ == "__main__":
    sys.exit(main())
