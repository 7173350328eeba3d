"""Backup and restore throughput: `chikanemail backup` and `restore` against `cp -r`.

What it measures
    It builds a store like `verify_throughput.py` does (by default 600 blobs of 1 MiB of
    random bytes and 2 of 50 MiB, each with a message row in an embedded SQLite database),
    reads it once to warm the page cache, then, each round:

    a) `chikanemail --config FILE backup --to NEW --json`, the console script as a
       subprocess: the database copied with SQLite's backup API, every blob re-hashed while
       it is copied into a work file, fsync'd, renamed, the manifest written last;
    b) the same backup again into the same folder (incremental: nothing new to copy);
    c) `cp -r` of the data directory (blobs and database) to a new folder, no fsync;
    d) `chikanemail restore --from NEW --data-dir NEW2 --json`: every blob re-hashed into
       the new store, the database restored, retention applied, then `verify` over the
       restored store. Its own `seconds` (without verify) is shown apart.

    Each run is timed from start to exit. It prints MiB/s and files/s per run and the
    medians, and the ratio backup / cp (throughput, above 1: backup is faster). No target:
    the backup fsyncs every file it writes, cp does not.

How to run (from the repository root)
    .venv/bin/python bench/backup_throughput.py
    .venv/bin/python bench/backup_throughput.py --blobs 600 --large 2 --rounds 3

Exit status 0 when every run succeeded and each backup counted every blob (the first
copied all, the incremental one none); 1 otherwise. Linux with coreutils.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon_process import INTAKE_ADDRESS, MIB, BenchError  # bench/ is the script's folder
from results import Result, write_results
from verify_throughput import build_store, warm_page_cache

RUN_TIMEOUT_S = 900.0


def command(config_file: Path, *args: str) -> list[str]:
    """The venv's `chikanemail` console script with the config and arguments."""
    return [str(Path(sys.executable).parent / "chikanemail"), "--config", str(config_file),
            *args]


def timed(arguments: list[str]) -> tuple[float, dict[str, Any]]:
    """Run a command that prints JSON; return its wall time and the JSON."""
    started = time.perf_counter()
    done = subprocess.run(arguments, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{' '.join(arguments[3:5])} exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return seconds, json.loads(done.stdout) if done.stdout.strip() else {}


def one_round(workdir: Path, config_file: Path, number: int, blobs: int) -> dict[str, float]:
    """A full backup, an incremental one, cp -r, and a restore; their wall times."""
    snapshot = workdir / f"snapshot-{number}"
    backup_s, first = timed(command(config_file, "backup", "--to", str(snapshot), "--json"))
    if (first["copied"], first["already_there"]) != (blobs, 0):
        raise BenchError(f"backup copied {first['copied']}, found {first['already_there']}")
    again_s, second = timed(command(config_file, "backup", "--to", str(snapshot), "--json"))
    if (second["copied"], second["already_there"]) != (0, blobs):
        raise BenchError(f"second backup copied {second['copied']}")
    copy_s, _ = timed(["cp", "-r", str(workdir / "data"), str(workdir / f"cp-{number}")])
    restored = workdir / f"restored-{number}"
    restore_s, report = timed(command(config_file, "restore", "--from", str(snapshot),
                                      "--data-dir", str(restored), "--database-url",
                                      f"sqlite:///{restored / 'chikanemail.sqlite3'}",
                                      "--json"))
    if not report["verify"]["ok"] or report["blobs"] != blobs:
        raise BenchError(f"restore: verify {report['verify']['ok']}, {report['blobs']} blobs")
    for folder in (snapshot, workdir / f"cp-{number}", restored):
        shutil.rmtree(folder)
    return {"backup": backup_s, "incremental": again_s, "cp -r": copy_s,
            "restore": restore_s, "restore without verify": float(report["seconds"])}


def main(argv: list[str] | None = None) -> int:
    """Build the store, time backup, cp -r and restore, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default, meaning in (("--blobs", 600, "blobs of 1 MiB"),
                                   ("--large", 2, "large blobs"),
                                   ("--large-mib", 50, "MiB per large blob"),
                                   ("--rounds", 3, "rounds")):
        parser.add_argument(flag, type=int, default=default, help=f"{meaning} ({default})")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (bench/results.py) to PATH")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chik-backup-bench-") as name:
        workdir = Path(name)
        data_dir = workdir / "data"
        config_file = workdir / "chikanemail.toml"
        config_file.write_text("\n".join([
            "[storage]", f"data_dir = {json.dumps(str(data_dir))}", "",
            "[intake]", f"addresses = [{json.dumps(INTAKE_ADDRESS)}]", "",
        ]), encoding="utf-8")
        print(f"building {args.blobs} x 1 MiB + {args.large} x {args.large_mib} MiB blobs…",
              flush=True)
        blobs, total = build_store(data_dir, args.blobs, args.large, args.large_mib)
        warm_page_cache(data_dir)
        try:
            rounds = [one_round(workdir, config_file, number, blobs)
                      for number in range(1, args.rounds + 1)]
        except (BenchError, subprocess.TimeoutExpired, KeyError, ValueError) as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
    mib = total / MIB
    print(f"{blobs} blobs, {mib:.1f} MiB; wall time per run, {args.rounds} rounds")
    medians: dict[str, float] = {}
    for tool in rounds[0]:
        times = [round_[tool] for round_ in rounds]
        medians[tool] = statistics.median(times)
        print(f"  {tool:24} " + "  ".join(f"{seconds:6.2f} s" for seconds in times)
              + f"   median {mib / medians[tool]:7.1f} MiB/s {blobs / medians[tool]:7.1f} "
                "files/s")
    ratio = statistics.median(round_["cp -r"] / round_["backup"] for round_ in rounds)
    print(f"  median ratio backup / cp -r (throughput) {ratio:.2f}")
    rate = {tool: round(mib / seconds, 1) for tool, seconds in medians.items()}
    write_results(args.json, [Result(
        id="B1", what=f"`backup` of a {mib:,.0f} MiB store vs `cp -r` of the same files",
        value=round(ratio, 2), unit="ratio", comparison=">=", limit=0.0,
        summary=f"backup {rate['backup']} MiB/s, cp -r {rate['cp -r']} MiB/s, restore "
                f"{rate['restore']} MiB/s with verify (median of {args.rounds})",
        details={"mib_per_second": rate, "blobs": blobs, "bytes": total,
                 "files_per_second": {tool: round(blobs / seconds, 1)
                                      for tool, seconds in medians.items()}})])
    return 0


if __name__ == "__main__":
    sys.exit(main())
