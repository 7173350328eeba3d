"""Run every benchmark (P1-P12), print one table of figures against targets, write JSON.

Each benchmark runs as its own process (one after the other, so they do not compete for
the CPUs) with `--json` pointing into a temporary folder; this script gathers the results,
adds a description of the machine and the number of worker processes the daemons ran
with, prints the table and writes everything to --out.

P2 (screenshot reports) is sent at 80 % of the rate P7 measured earlier in the same run, so
P7 runs before it; `--only P2` without P7 needs `--p7-rate`.

How to run (from the repository root, as root: P5 and P8 start a private Dovecot)
    .venv/bin/python bench/run_all.py                       # all, about 50 minutes
    .venv/bin/python bench/run_all.py --only P3,P6          # some of them
    .venv/bin/python bench/run_all.py --only P7,P2,P2-plain # issue 23's three
    .venv/bin/python bench/run_all.py --markdown table.md   # also the README's table

Exit status: 0 when every benchmark ran and met its target; 1 when one missed its target;
2 when one failed to run (its output is shown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results import Result, read_results

from intake.service.settings import WorkerSettings

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RUN_TIMEOUT_S = 3600.0
# P2's screenshot reports arrive at this share of the rate P7 measured (issue 23).
P2_SHARE_OF_P7_RATE = 0.8


@dataclass(frozen=True)
class Benchmark:
    """One benchmark script and the arguments it runs with.

    `rate_from` names an earlier benchmark whose measured `reports_per_second`, times
    P2_SHARE_OF_P7_RATE, is passed as `--rate`.
    """

    id: str
    script: str
    arguments: tuple[str, ...] = ()
    rate_from: str = ""


BENCHMARKS = (
    Benchmark("P1", "smtp_ingest.py"),
    # P7 before P2: P2 is sent at 80 % of P7's rate.
    Benchmark("P7", "ocr_throughput.py"),
    Benchmark("P2", "notify_latency.py", ("--screenshots", "--messages", "200"),
              rate_from="P7"),
    Benchmark("P2-plain", "notify_latency.py", ("--messages", "200", "--rate", "10")),
    Benchmark("P3", "smtp_peak_rss.py"),
    Benchmark("P4", "verify_throughput.py"),
    Benchmark("P5", "imap_drain.py"),
    Benchmark("P6", "cases_list.py"),
    Benchmark("P12", "dkim_verify.py"),
    # The long run's default is 100,000 mails (hours); here a tenth of that.
    Benchmark("P8", "long_run.py", ("--mails", "10000")),
    Benchmark("P9", "web_pages.py"),
    Benchmark("P10", "web_actions.py"),
    Benchmark("P11", "stats_page.py"),
)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": postgresql_version(),
        # Every daemon in these benchmarks runs with the default `[worker] processes`.
        "worker_processes": WorkerSettings().processes,
    }


def postgresql_version() -> str:
    """The local PostgreSQL server's version, as `psql` reports it (or "unknown")."""
    try:
        done = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atc",
             "show server_version"],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def run_benchmark(benchmark: Benchmark, folder: Path, extra: Sequence[str] = ()
                  ) -> tuple[list[Result], float, str]:
    """Run one benchmark; its results, its wall time, and its output (shown on failure)."""
    json_path = folder / f"{benchmark.id}.json"
    arguments = [*benchmark.arguments, *extra]
    command = [sys.executable, str(BENCH_DIR / benchmark.script), *arguments,
               "--json", str(json_path)]
    print(f"== {benchmark.id}: {' '.join([benchmark.script, *arguments])}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, check=False)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    if done.returncode != 0 or not json_path.exists():
        return [], seconds, output
    return read_results(json_path), seconds, output


def format_value(result: Result) -> str:
    """The figure in the unit its target uses."""
    if result.unit == "ratio":
        return f"{result.value:.2f}"
    return f"{result.value:g} {result.unit}"


COLUMNS = ("id", "what", "measured", "target", "met", "behind the figure")


def table_rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    """One row of COLUMNS per result."""
    return [(result.id, result.what, format_value(result), result.target,
             "yes" if result.met else "NO", result.summary) for result in results]


def worker_line(about: dict[str, Any], results: Sequence[Result]) -> str:
    """How many worker processes the daemons ran with (and how many P7 saw running)."""
    line = f"[worker] processes = {about['worker_processes']}"
    for result in results:
        if result.id == "P7" and "worker_processes_seen" in result.details:
            seen = result.details["worker_processes_seen"]
            line += (f" (P7: {result.details.get('worker_processes')} configured, {seen} "
                     "worker processes seen" + (", the worker ran as a thread" if not seen
                                                else "") + ")")
    return line


def machine_line(about: dict[str, Any], results: Sequence[Result]) -> str:
    """The machine and the worker processes in one line."""
    return (f"{about['cpus']} CPUs ({about['cpu']}), {about['memory_gib']} GiB, {about['os']}, "
            f"Python {about['python']}, PostgreSQL {about['postgresql']}; "
            f"{worker_line(about, results)}")


def markdown_table(results: Sequence[Result], about: dict[str, Any]) -> str:
    """The results as the Markdown table the README shows, with the machine under it."""
    lines = [f"| {' | '.join(COLUMNS)} |", "|---" * len(COLUMNS) + "|"]
    lines += [f"| {' | '.join(row)} |" for row in table_rows(results)]
    lines.append("")
    lines.append(f"Measured {about['date']} on {machine_line(about, results)}.")
    return "\n".join(lines) + "\n"


def rate_arguments(benchmark: Benchmark, results: Sequence[Result],
                   given_rate: float | None) -> list[str] | None:
    """`--rate` at P2_SHARE_OF_P7_RATE of the rate `rate_from` measured (or was given);
    None when there is none to go by."""
    if not benchmark.rate_from:
        return []
    rate = given_rate
    for result in results:
        if result.id == benchmark.rate_from and "reports_per_second" in result.details:
            rate = float(result.details["reports_per_second"])
    if rate is None:
        return None
    return ["--rate", f"{rate * P2_SHARE_OF_P7_RATE:.3f}"]


def print_table(results: Sequence[Result]) -> None:
    """The results as a plain-text table."""
    rows = [COLUMNS, *table_rows(results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; print the table; write the JSON (and Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. P1,P5")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"),
                        help="where to write the JSON (default bench-results.json)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the table as Markdown to this file")
    parser.add_argument("--p7-rate", type=float, default=None, metavar="REPORTS_PER_S",
                        help="P7's rate for P2 when P7 does not run (P2 is sent at 80 %%)")
    arguments = parser.parse_args(argv)
    wanted = {name.strip().upper() for name in arguments.only.split(",") if name.strip()}
    chosen = [benchmark for benchmark in BENCHMARKS
              if not wanted or benchmark.id.upper() in wanted]
    if wanted - {benchmark.id.upper() for benchmark in chosen}:
        parser.error(f"unknown ids: {sorted(wanted - {b.id.upper() for b in chosen})}")
    chosen_ids = {benchmark.id for benchmark in chosen}
    for benchmark in chosen:
        if (benchmark.rate_from and benchmark.rate_from not in chosen_ids
                and arguments.p7_rate is None):
            parser.error(f"{benchmark.id} runs at 80 % of {benchmark.rate_from}'s rate: "
                         f"add {benchmark.rate_from} to --only or give --p7-rate")

    about = machine()
    results: list[Result] = []
    failed: list[str] = []
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="chikanemail-bench-") as folder:
        for benchmark in chosen:
            extra = rate_arguments(benchmark, results, arguments.p7_rate)
            if extra is None:
                failed.append(benchmark.id)
                print(f"{benchmark.id} not run: {benchmark.rate_from} measured no rate",
                      file=sys.stderr)
                continue
            found, took, output = run_benchmark(benchmark, Path(folder), extra)
            seconds[benchmark.id] = round(took, 1)
            if not found:
                failed.append(benchmark.id)
                print(f"{benchmark.id} FAILED to run; its output:\n{output[-4000:]}",
                      file=sys.stderr)
            results.extend(found)
    print()
    print_table(results)
    print(f"\n{machine_line(about, results)}, {about['date']}")
    arguments.out.write_text(json.dumps({
        "machine": about, "seconds": seconds, "failed": failed,
        "results": [result.as_json() for result in results]}, indent=2) + "\n",
        encoding="utf-8")
    print(f"written: {arguments.out}")
    if arguments.markdown:
        arguments.markdown.write_text(markdown_table(results, about), encoding="utf-8")
        print(f"written: {arguments.markdown}")
    if failed:
        return 2
    return 0 if all(result.met for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
