"""Verify throughput: `chikanemail verify` against `sha256sum` over the same blob store.

What it measures
    It builds a blob store of about 1.2 GiB in a temporary directory: 1,100 blobs of 1 MiB
    of random bytes and 3 of 50 MiB, each written by `BlobStore.put` (fsync'd, 0400) and
    given a message row by `record_delivery` in an embedded SQLite database, so verify
    finds no strays. It reads every file once to warm the page cache, then alternates, 3
    times each:

    a) `chikanemail --config FILE verify --json`, the venv's console script as a
       subprocess: interpreter start, every blob re-hashed in a thread pool, the rows read,
       the audit chain walked, the run and its audit event committed;
    b) `find blobs -type f -print0 | xargs -0 sha256sum > /dev/null` in the data directory.

    Each run is timed from start to exit. It prints a table (MiB, seconds, MiB/s per run),
    the median MiB/s of each, and the median of the per-round ratios verify / sha256sum
    (above 1: verify is faster). It also shows verify's own `seconds` (from its JSON: the
    work inside the process, without the interpreter's start).

How to run (from the repository root)
    .venv/bin/python bench/verify_throughput.py
    .venv/bin/python bench/verify_throughput.py --blobs 1100 --large 3 --rounds 3

Figures are in MiB (1 MiB = 1048576 bytes). Exit status: 0 when every verify run reported
the store intact with every blob counted and every sha256sum run succeeded; 1 otherwise
(the reason is printed). The target (verify at least 0.8 x sha256sum) is printed, not
enforced. Linux with coreutils.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from daemon_process import (  # bench/ is the script's own folder
    INTAKE_ADDRESS,
    MIB,
    BenchError,
    chikanemail_command,
)
from results import Result, write_results

from storage.blobstore import BlobStore
from storage.database import Database
from storage.messages import DeliveryEnvelope, HeaderSummary, record_delivery
from storage.migrate import upgrade_database

TARGET_RATIO = 0.8
SHA256SUM = "find blobs -type f -print0 | xargs -0 sha256sum > /dev/null"
RUN_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Run:
    """One timed run of one tool."""

    tool: str
    round: int
    seconds: float
    inner_seconds: float | None = None  # verify's own figure, without interpreter start


def build_store(data_dir: Path, small: int, large: int, large_mib: int) -> tuple[int, int]:
    """Random blobs with a message row each; return (blobs, bytes)."""
    data_dir.mkdir(mode=0o700)
    store = BlobStore(data_dir / "blobs")
    store.ensure_root()
    database = Database(f"sqlite:///{data_dir / 'chikanemail.sqlite3'}")
    try:
        upgrade_database(database)
        sizes = [MIB] * small + [large_mib * MIB] * large
        for size in sizes:
            data = os.urandom(size)
            sha256 = store.put(data)
            record_delivery(database, sha256=sha256, size=size,
                            envelope=DeliveryEnvelope(source="ingest"), headers=HeaderSummary())
    finally:
        database.dispose()
    return len(sizes), sum(sizes)


def warm_page_cache(root: Path) -> None:
    """Read every file once so both tools read from memory, not from the disk."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(4 * MIB):
                    pass


def verify_command(config_file: Path) -> list[str]:
    """The venv's `chikanemail` console script (next to this interpreter), or the module."""
    script = Path(sys.executable).parent / "chikanemail"
    command = [str(script)] if script.exists() else chikanemail_command()
    return [*command, "--config", str(config_file), "verify", "--json"]


def time_verify(config_file: Path, round_number: int, blobs: int, total: int) -> Run:
    """One verify run; it must report the store intact, every blob and byte counted."""
    started = time.perf_counter()
    done = subprocess.run(verify_command(config_file), capture_output=True,
                          timeout=RUN_TIMEOUT_S, check=False)
    seconds = time.perf_counter() - started
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise BenchError(f"verify exited {done.returncode} without JSON: "
                         f"{done.stderr.decode(errors='replace')[-2000:]}") from error
    if done.returncode != 0 or not report["ok"]:
        raise BenchError(f"verify exited {done.returncode}, problems {report['problems']}, "
                         f"audit {report['audit']}")
    if (report["blobs"], report["bytes"]) != (blobs, total):
        raise BenchError(f"verify counted {report['blobs']} blobs / {report['bytes']} bytes, "
                         f"the store has {blobs} / {total}")
    return Run("chikanemail verify", round_number, seconds, float(report["seconds"]))


def time_sha256sum(data_dir: Path, round_number: int) -> Run:
    """One sha256sum run over the same files."""
    started = time.perf_counter()
    done = subprocess.run(["sh", "-c", SHA256SUM], cwd=data_dir, capture_output=True,
                          timeout=RUN_TIMEOUT_S, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"sha256sum exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return Run("sha256sum", round_number, seconds)


def print_table(runs: list[Run], total: int) -> dict[str, float]:
    """Print every run, the medians, and the median of the per-round ratios; return those."""
    mib = total / MIB
    print(f"  {'tool':20} {'round':>5} {'MiB':>8} {'seconds':>8} {'MiB/s':>8}  in-process s")
    for run in runs:
        inner = f"{run.inner_seconds:8.2f}" if run.inner_seconds is not None else ""
        print(f"  {run.tool:20} {run.round:5d} {mib:8.1f} {run.seconds:8.2f} "
              f"{mib / run.seconds:8.1f}  {inner}")
    verify = {run.round: run for run in runs if run.tool != "sha256sum"}
    baseline = {run.round: run for run in runs if run.tool == "sha256sum"}
    medians: dict[str, float] = {}
    for label, group in (("chikanemail verify", verify), ("sha256sum", baseline)):
        rate = statistics.median(mib / run.seconds for run in group.values())
        medians[label] = rate
        print(f"  median {label:20} {rate:8.1f} MiB/s")
    ratio = statistics.median(baseline[n].seconds / verify[n].seconds for n in verify)
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"  median ratio verify / sha256sum (throughput) {ratio:6.2f}  "
          f"({verdict} the target {TARGET_RATIO})")
    return {"ratio": ratio, "verify_mib_per_second": medians["chikanemail verify"],
            "sha256sum_mib_per_second": medians["sha256sum"],
            "verify_in_process_seconds": statistics.median(
                run.inner_seconds or 0.0 for run in verify.values())}


def main(argv: list[str] | None = None) -> int:
    """Build the store, time both tools alternately, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1100, help="blobs of 1 MiB (1100)")
    parser.add_argument("--large", type=int, default=3, help="large blobs (3)")
    parser.add_argument("--large-mib", type=int, default=50, help="MiB per large blob (50)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tool (3)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    args = parser.parse_args(argv)
    if shutil.which("sha256sum") is None:
        print("FAILED: sha256sum is not installed", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="chik-verify-bench-") as workdir:
        data_dir = Path(workdir) / "data"
        config_file = Path(workdir) / "chikanemail.toml"
        config_file.write_text("\n".join([
            "[storage]", f"data_dir = {json.dumps(str(data_dir))}", "",
            "[intake]", f"addresses = [{json.dumps(INTAKE_ADDRESS)}]", "",
        ]), encoding="utf-8")
        print(f"building {args.blobs} x 1 MiB + {args.large} x {args.large_mib} MiB blobs "
              "with their rows…", flush=True)
        started = time.perf_counter()
        blobs, total = build_store(data_dir, args.blobs, args.large, args.large_mib)
        print(f"built in {time.perf_counter() - started:.1f} s; warming the page cache…",
              flush=True)
        warm_page_cache(data_dir / "blobs")
        runs: list[Run] = []
        try:
            for round_number in range(1, args.rounds + 1):
                runs.append(time_verify(config_file, round_number, blobs, total))
                runs.append(time_sha256sum(data_dir, round_number))
        except (BenchError, subprocess.TimeoutExpired) as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1

    print(f"{blobs} blobs, {total / MIB:.1f} MiB, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}")
    figures = print_table(runs, total)
    print("checks: every verify run ok, every blob and byte counted; sha256sum exit 0: OK")
    write_results(args.json, [Result(
        id="P4", what=f"`verify` over a {total / MIB:,.0f} MiB store vs sha256sum over the "
                      "same files", value=round(figures["ratio"], 2), unit="ratio",
        comparison=">=", limit=TARGET_RATIO,
        summary=f"{figures['verify_mib_per_second']:.0f} vs "
                f"{figures['sha256sum_mib_per_second']:.0f} MiB/s (median of {args.rounds})",
        details={**{name: round(value, 2) for name, value in figures.items()},
                 "blobs": blobs, "bytes": total, "rounds": args.rounds,
                 "cpus": os.cpu_count()})])
    return 0


if __name__ == "__main__":
    sys.exit(main())
