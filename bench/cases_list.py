"""P6: `chikanemail cases list --json` over 100,000 cases, on SQLite and on PostgreSQL.

What it measures
    It builds 100,000 cases (2021-0001 … 2025-20000, 20,000 a year; about a third open;
    2,000 reporters, 40 managers, closed cases with their reason) with one bulk insert
    through SQLAlchemy Core in one transaction, once in an embedded SQLite database in a
    temporary directory and once in PostgreSQL (a fresh schema of its own, dropped
    afterwards). On each it then times:

    a) the whole command, `chikanemail --config FILE cases list --json`, the venv's console
       script as a subprocess (interpreter start, imports, configuration, schema check,
       query, JSON out), one warm-up and then --runs runs: median and p90. This is the
       user-visible figure held against the target (< 200 ms);
    b) the same with `--all` (every case, streamed); then the peak RSS of each (one more
       run, started from a small wrapper interpreter);
    c) the command in this process through click's CliRunner (configuration, schema check,
       query, JSON out; no interpreter start, no imports), --runs runs each;
    d) the imports of the real command: one subprocess run under `python -X importtime`,
       the sum of its top-level imports.

    Every run's output is parsed and checked: the default page holds the 50 newest cases
    (2025-20000 first), `--all` every case, newest first.

How to run (from the repository root)
    .venv/bin/python bench/cases_list.py
    .venv/bin/python bench/cases_list.py --cases 100000 --runs 10 --json results.json
    .venv/bin/python bench/cases_list.py --backend postgresql \
        --database-url 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dmine'

    Without --database-url the PostgreSQL run uses CHIKANEMAIL_BENCH_POSTGRES_URL or
    postgresql+psycopg://postgres@127.0.0.1:5432/test, in a schema it creates and drops; a
    given --database-url must point at an empty database or schema and is left as it is.

Exit status: 0 when every run succeeded and printed what it should, even if the target is
missed (the figures and the verdict are printed and, with --json, written); 1 otherwise
(the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from daemon_process import INTAKE_ADDRESS, BenchError  # bench/ is the script's own folder
from results import Result, write_results
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import SQLAlchemyError

from intake.commands.cli.main import main as chikanemail_main
from intake.service.config import CONFIG_ENV_VAR
from storage.cases import format_case_number
from storage.database import Database
from storage.migrate import upgrade_database
from storage.models import Case, CaseCounter

TARGET_MS = 200.0
DEFAULT_PAGE = 50
POSTGRES_URL = os.environ.get(
    "CHIKANEMAIL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
YEARS = (2021, 2022, 2023, 2024, 2025)
RUN_TIMEOUT_S = 600.0
INSERT_CHUNK = 5_000


@dataclass
class Figures:
    """What one backend's runs gave."""

    backend: str
    cases: int
    build_s: float
    page_ms: list[float] = field(default_factory=list)
    all_ms: list[float] = field(default_factory=list)
    page_peak_rss_mib: float = 0.0
    all_peak_rss_mib: float = 0.0
    inner_page_ms: list[float] = field(default_factory=list)
    inner_all_ms: list[float] = field(default_factory=list)
    import_ms: float = 0.0
    modules: int = 0


def case_rows(count: int, seed: int = 6) -> Iterator[dict[str, Any]]:
    """`count` realistic case rows, oldest first, spread evenly over YEARS."""
    rng = random.Random(seed)
    per_year = -(-count // len(YEARS))
    reporters = [f"ansat{number:04d}@bench.local" for number in range(2_000)]
    managers = [f"leder{number:02d}@bench.local" for number in range(40)]
    made = 0
    for year in YEARS:
        start = datetime(year, 1, 1, 7, tzinfo=UTC)
        step = timedelta(days=365) / per_year
        for sequence in range(1, per_year + 1):
            if made == count:
                return
            made += 1
            opened = start + step * (sequence - 1)
            # Older cases are mostly closed; this year's mostly open.
            closed = rng.random() < (0.2 if year == YEARS[-1] else 0.8)
            reporter = rng.choice(reporters)
            yield {
                "number": format_case_number(year, sequence), "year": year,
                "sequence": sequence, "status": "closed" if closed else "open",
                "reporter": reporter, "reporter_name": f"Ansat {reporter[5:9]}",
                "manager": rng.choice(managers),
                "deputy": rng.choice(managers) if rng.random() < 0.5 else None,
                "language": "da", "routing_source": "rule",
                "routing_reason": "afdeling matched the reporter's domain",
                "opened_at": opened,
                "closed_at": opened + timedelta(days=rng.randint(3, 60)) if closed else None,
                "close_reason": "afsluttet efter opfølgningsmøde" if closed else None,
                "relation": rng.choice(("external", "colleague", "unknown")),
                "medium": rng.choice(("mail", "sms", "social-media", None)),
                "first_absence_day": None, "witnesses": [],
                "acknowledged_at": opened + timedelta(hours=2),
                "acknowledged_by": "leder00@bench.local", "escalation_level": 0,
                "legal_hold": False, "hold_reason": None, "held_at": None, "held_by": None,
            }


def build_cases(database_url: str, count: int) -> tuple[float, str]:
    """Migrate the database and insert `count` cases in one transaction; return the
    seconds it took and the newest case's number."""
    started = time.perf_counter()
    database = Database(database_url)
    try:
        upgrade_database(database)
        last: dict[int, int] = {}
        with database.engine.begin() as connection:
            chunk: list[dict[str, Any]] = []
            for row in case_rows(count):
                last[row["year"]] = row["sequence"]
                chunk.append(row)
                if len(chunk) == INSERT_CHUNK:
                    connection.execute(insert(Case), chunk)
                    chunk = []
            if chunk:
                connection.execute(insert(Case), chunk)
            connection.execute(insert(CaseCounter),
                               [{"year": year, "last_sequence": sequence}
                                for year, sequence in last.items()])
        if database.is_postgresql:
            with database.engine.connect() as connection:
                connection.execute(text("ANALYZE case_file"))
                connection.commit()
    finally:
        database.dispose()
    newest = max(last.items())
    return time.perf_counter() - started, format_case_number(*newest)


@contextmanager
def fresh_postgres_schema(base_url: str) -> Iterator[str]:
    """A URL whose search path is a new schema, dropped (with its tables) afterwards."""
    schema = f"chik_bench_{secrets.token_hex(5)}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{base_url}?options=-csearch_path%3D{schema}"
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def console_script() -> list[str]:
    """The venv's `chikanemail` console script run by this interpreter (so -X works)."""
    script = Path(sys.executable).parent / "chikanemail"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from intake.commands.cli.main import main; main()"]


def check_output(stdout: bytes | str, expected: int, newest: str, what: str) -> None:
    """The printed JSON must be a list of `expected` case summaries, `newest` first."""
    try:
        cases = json.loads(stdout)
    except json.JSONDecodeError as error:
        raise BenchError(f"{what}: the output is not JSON: {error}") from error
    if not isinstance(cases, list) or len(cases) != expected:
        size = len(cases) if isinstance(cases, list) else type(cases).__name__
        raise BenchError(f"{what}: expected a list of {expected} cases, got {size}")
    if expected and cases[0]["number"] != newest:
        raise BenchError(f"{what}: the first case is {cases[0]['number']}, not {newest}")


def time_command(config_file: Path, extra: list[str], expected: int, newest: str,
                 workdir: Path) -> float:
    """One subprocess run of the command, checked; its milliseconds."""
    out_path = workdir / "stdout.json"
    command = [*console_script(), "--config", str(config_file), "cases", "list", "--json",
               *extra]
    with out_path.open("wb") as out:
        started = time.perf_counter()
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, env=cli_environment(),
                              timeout=RUN_TIMEOUT_S, check=False)
        milliseconds = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command[2:])} exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    check_output(out_path.read_bytes(), expected, newest, "cases list " + " ".join(extra))
    return milliseconds


def peak_rss_mib(config_file: Path, extra: list[str]) -> float:
    """The command's peak RSS in MiB. A small wrapper interpreter starts it, so the figure
    is the command's own and not this (large) process's image copied by fork."""
    wrapper = ("import resource, subprocess, sys\n"
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", wrapper, *console_script(), "--config",
                           str(config_file), "cases", "list", "--json", *extra],
                          capture_output=True, env=cli_environment(), timeout=RUN_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        raise BenchError(f"peak RSS run exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return int(done.stdout) / 1024  # ru_maxrss is in KiB on Linux


def cli_environment() -> dict[str, str]:
    """This environment without CHIKANEMAIL_CONFIG (the command gets --config)."""
    return {name: value for name, value in os.environ.items() if name != CONFIG_ENV_VAR}


def time_in_process(config_file: Path, extra: list[str], expected: int,
                    newest: str) -> float:
    """One run of the command inside this process (no interpreter start, no imports)."""
    runner = CliRunner(env={CONFIG_ENV_VAR: None})
    started = time.perf_counter()
    result = runner.invoke(chikanemail_main,
                           ["--config", str(config_file), "cases", "list", "--json", *extra])
    milliseconds = (time.perf_counter() - started) * 1000
    if result.exit_code != 0:
        raise BenchError(f"in-process cases list {extra} exited {result.exit_code}: "
                         f"{result.exception!r} {result.stderr[-2000:]}")
    check_output(result.stdout, expected, newest, "in-process cases list " + " ".join(extra))
    return milliseconds


def import_time(config_file: Path) -> tuple[float, int]:
    """Milliseconds the real command spends importing (sum of its top-level imports under
    -X importtime), and how many modules it imports."""
    command = [sys.executable, "-X", "importtime", *console_script()[1:],
               "--config", str(config_file), "cases", "list", "--json"]
    done = subprocess.run(command, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise BenchError(f"-X importtime run exited {done.returncode}")
    total_us, modules = 0, 0
    for line in done.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|", 2)
        modules += 1
        if not name[1:].startswith(" "):  # top level: no extra indentation
            total_us += int(cumulative)
    return total_us / 1000, modules


def measure(backend: str, database_url: str, count: int, runs: int,
            workdir: Path) -> Figures:
    """Build the cases on one backend and time every variant."""
    print(f"[{backend}] building {count:,} cases…", flush=True)
    build_s, newest = build_cases(database_url, count)
    figures = Figures(backend, count, build_s)
    print(f"[{backend}] built in {figures.build_s:.1f} s", flush=True)
    config_file = workdir / f"{backend}.toml"
    config_file.write_text("\n".join([
        "[storage]", f"data_dir = {json.dumps(str(workdir / 'data'))}",
        f"database_url = {json.dumps(database_url)}", "",
        "[intake]", f"addresses = [{json.dumps(INTAKE_ADDRESS)}]", "",
    ]), encoding="utf-8")
    page = min(DEFAULT_PAGE, count)

    time_command(config_file, [], page, newest, workdir)  # warm-up: page cache, pyc files
    for _ in range(runs):
        figures.page_ms.append(time_command(config_file, [], page, newest, workdir))
    time_command(config_file, ["--all"], count, newest, workdir)
    for _ in range(max(3, runs // 2)):
        figures.all_ms.append(time_command(config_file, ["--all"], count, newest, workdir))
    figures.page_peak_rss_mib = peak_rss_mib(config_file, [])
    figures.all_peak_rss_mib = peak_rss_mib(config_file, ["--all"])
    time_in_process(config_file, [], page, newest)
    for _ in range(runs):
        figures.inner_page_ms.append(time_in_process(config_file, [], page, newest))
    for _ in range(max(3, runs // 2)):
        figures.inner_all_ms.append(time_in_process(config_file, ["--all"], count, newest))
    figures.import_ms, figures.modules = import_time(config_file)
    return figures


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def result_for(figures: Figures) -> Result:
    """The backend's figure against the target, with what stands behind it."""
    def summary(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 1),
                "p90": round(percentile(values, 0.9), 1),
                "min": round(min(values), 1), "max": round(max(values), 1)}

    return Result(
        id=f"P6-{figures.backend}",
        what=f"`cases list --json`, {figures.cases:,} cases, {figures.backend}",
        value=round(statistics.median(figures.page_ms), 1), unit="ms", comparison="<",
        limit=TARGET_MS,
        summary=(f"whole command, median of {len(figures.page_ms)}; in process "
                 f"{statistics.median(figures.inner_page_ms):.0f} ms, imports "
                 f"{figures.import_ms:.0f} ms, --all {statistics.median(figures.all_ms):.0f} ms"),
        details={
            "cases": figures.cases, "page_size": DEFAULT_PAGE, "runs": len(figures.page_ms),
            "whole_command_ms": summary(figures.page_ms),
            "in_process_ms": summary(figures.inner_page_ms),
            "all_whole_command_ms": summary(figures.all_ms),
            "all_in_process_ms": summary(figures.inner_all_ms),
            "peak_rss_mib": round(figures.page_peak_rss_mib, 1),
            "all_peak_rss_mib": round(figures.all_peak_rss_mib, 1),
            "import_ms": round(figures.import_ms, 1), "modules_imported": figures.modules,
            "build_s": round(figures.build_s, 1), "cpus": os.cpu_count(),
        },
    )


def print_result(result: Result) -> None:
    """The figures of one backend as a few lines."""
    details = result.details
    whole, inner = details["whole_command_ms"], details["in_process_ms"]
    every, every_inner = details["all_whole_command_ms"], details["all_in_process_ms"]
    verdict = "meets" if result.met else "MISSES"
    print(f"{result.id}: {result.what}")
    print(f"  default page ({DEFAULT_PAGE}), whole command: median {whole['median']:.0f} ms, "
          f"p90 {whole['p90']:.0f} ms ({details['runs']} runs) — {verdict} {result.target}")
    print(f"  default page, in process:     median {inner['median']:.1f} ms, "
          f"p90 {inner['p90']:.1f} ms")
    print(f"  --all, whole command:         median {every['median']:.0f} ms, "
          f"p90 {every['p90']:.0f} ms; peak RSS page {details['peak_rss_mib']:.0f} MiB, "
          f"--all {details['all_peak_rss_mib']:.0f} MiB")
    print(f"  --all, in process:            median {every_inner['median']:.0f} ms")
    print(f"  imports of the command:       {details['import_ms']:.0f} ms "
          f"({details['modules_imported']} modules)")


def main(argv: list[str] | None = None) -> int:
    """Build, time, print, and write the results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases to build (100000)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per variant (10)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--database-url", default="",
                        help="an empty PostgreSQL database or schema to use instead of a "
                             "fresh schema")
    parser.add_argument("--json", dest="json_path", type=Path, default=None,
                        help="write the results (bench/results.py) to this file")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.runs < 1:
        parser.error("--cases and --runs must be at least 1")

    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="chik-cases-bench-") as workdir:
            root = Path(workdir)
            if args.backend in ("sqlite", "both"):
                url = f"sqlite:///{root / 'cases.sqlite3'}"
                results.append(result_for(measure("sqlite", url, args.cases, args.runs, root)))
                print_result(results[-1])
            if args.backend in ("postgresql", "both"):
                if args.database_url:
                    figures = measure("postgresql", args.database_url, args.cases, args.runs,
                                      root)
                else:
                    with fresh_postgres_schema(POSTGRES_URL) as url:
                        figures = measure("postgresql", url, args.cases, args.runs, root)
                results.append(result_for(figures))
                print_result(results[-1])
    except (BenchError, SQLAlchemyError, subprocess.TimeoutExpired, OSError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}; "
          + ", ".join(f"{result.id} {result.value:.0f} ms ({'met' if result.met else 'MISSED'})"
                      for result in results))
    write_results(args.json_path, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
