"""P9: the web pages under 100,000 cases: case list, case page and a thumbnail.

What it measures
    It builds 100,000 cases (those of `cases_list.py`: five years, 40 managers, about a
    third open), each with the five steps of the response plan (deadlines after intake;
    done on closed cases), one received mail naming a harasser (one of 500), and 5 % of
    them linked to another case. The newest case belongs to `leder00@bench.local` and holds
    10 evidence items: phone screenshots (PNG, 1080 by 2340) with the JPEG thumbnails
    intake makes, in real blob stores, and a timeline of audit events.

    Then it serves the web view the daemon serves (`intake.web.app.build_app` under
    uvicorn, in this process, on a loopback port), logs the manager in with a server-side
    session, warms up with 20 requests each, and times 200 requests each over one
    keep-alive connection, the whole response read:

    a) the case list, `GET /cases` (the manager's own cases, about 2,500, page 1, with the
       count of every filter);
    b) the case page, `GET /cases/<newest>` (10 evidence items; each request also writes
       its `viewed` audit event, as every real view does);
    c) one thumbnail, `GET /cases/<newest>/evidence/<id>/thumbnail`;
    d) for the record, an admin's list of all 100,000 cases, and the list filtered by a
       step overdue.

    Target: p99 of (a) and (b) under 100 ms.

How to run (from the repository root)
    .venv/bin/python bench/web_pages.py
    .venv/bin/python bench/web_pages.py --backend postgresql --requests 200 --json out.json

Exit status: 0 when every request answered 200 with what it should (even if the target is
missed: the figures and the verdict are printed); 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from cases_list import POSTGRES_URL, case_rows, fresh_postgres_schema  # bench/ is on the path
from daemon_process import BenchError
from PIL import Image, ImageDraw
from results import Result, write_results
from sqlalchemy import insert, select, text

from intake.service.config import AppConfig
from intake.web.app import build_app
from intake.web.context import WebContext
from intake.web.server import bind_socket
from intake.web.sessions import COOKIE_NAME, start_session
from notifier.mails import MailComposer
from storage import audit
from storage.blobstore import BlobStore
from storage.database import Database
from storage.migrate import upgrade_database
from storage.models import Case, CaseCounter, CaseLink, CaseStep, Evidence, Message
from storage.settings import StorageSettings

TARGET_MS = 100.0
MANAGER = "leder00@bench.local"
ADMIN = "admin@bench.local"
EVIDENCE_ITEMS = 10
WARM_UP = 20
INSERT_CHUNK = 5_000
STEP_KEYS = ("psykisk-foerstehjaelp", "dokumentation", "stop-chikanen", "registrering",
             "opfoelgning")
STEP_DAYS = (1, 2, 3, 14, 30)


@dataclass(frozen=True)
class BenchData:
    """What the pages are asked for."""

    newest: str
    thumbnail_id: int


def _step_rows(case_id: int, opened: datetime, closed: bool) -> list[dict[str, Any]]:
    return [{"case_id": case_id, "position": position, "key": key,
             "title_da": f"Trin {position}", "title_en": f"Step {position}",
             "description_da": "Beskrivelse af trinnet.",
             "description_en": "What the step is about.", "owner": "manager",
             "due": f"P{days}D", "working_days": False, "due_after": "intake",
             "due_at": opened + timedelta(days=days),
             "done_at": opened + timedelta(days=days - 0.5) if closed else None,
             "done_by": MANAGER if closed else None}
            for position, (key, days) in enumerate(zip(STEP_KEYS, STEP_DAYS, strict=True),
                                                   start=1)]


def build_cases(database: Database, count: int, rng: random.Random) -> str:
    """Insert the cases with their steps, mails and links; return the newest number."""
    last: dict[int, int] = {}
    harassers = [f"plager{number:03d}@ekstern.example" for number in range(500)]
    rows = list(case_rows(count))
    rows[-1]["manager"] = MANAGER
    rows[-1]["status"] = "open"
    rows[-1]["closed_at"] = rows[-1]["close_reason"] = None
    with database.engine.begin() as connection:
        for start in range(0, len(rows), INSERT_CHUNK):
            connection.execute(insert(Case), rows[start:start + INSERT_CHUNK])
        for row in rows:
            last[row["year"]] = row["sequence"]
        connection.execute(insert(CaseCounter), [{"year": year, "last_sequence": sequence}
                                                 for year, sequence in last.items()])
        cases = connection.execute(
            select(Case.id, Case.opened_at, Case.status).order_by(Case.id)).all()
        steps: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        for case_id, opened, status in cases:
            steps += _step_rows(case_id, opened, status == "closed")
            messages.append({
                "sha256": secrets.token_hex(32), "size": 4096, "source": "smtp",
                "rcpt_tos": ["chikanemail@bench.local"], "received_at": opened,
                "last_seen_at": opened, "state": "processed", "case_id": case_id,
                "kind": "report", "from_address": "ansat@bench.local",
                "subject": "Fwd: ubehagelig besked", "original_rule": "attached-message",
                "original_from_address": rng.choice(harassers),
                "original_subject": "Du skal passe på", "original_date": opened})
            if rng.random() < 0.05 and case_id > 1:
                other = rng.randrange(1, case_id)
                links += [{"case_id": case_id, "other_case_id": other, "reason": "sender",
                           "detail": "plager@ekstern.example", "created_at": opened},
                          {"case_id": other, "other_case_id": case_id, "reason": "sender",
                           "detail": "plager@ekstern.example", "created_at": opened}]
            if len(steps) >= INSERT_CHUNK:
                connection.execute(insert(CaseStep), steps)
                steps = []
            if len(messages) >= INSERT_CHUNK:
                connection.execute(insert(Message), messages)
                messages = []
        for table, chunk in ((CaseStep, steps), (Message, messages), (CaseLink, links)):
            if chunk:
                connection.execute(insert(table), chunk)
    if database.is_postgresql:
        with database.engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
    year, sequence = max(last.items())
    return f"{year:04d}-{sequence:04d}"


def screenshot(number: int) -> bytes:
    """A phone screenshot of a chat (PNG), different for each number."""
    image = Image.new("RGB", (1080, 2340), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    for line in range(30):
        top = 120 + line * 70
        draw.rounded_rectangle((60 + (line % 2) * 300, top, 720 + (line % 2) * 300, top + 56),
                               radius=20, fill=(200, 230, 255) if line % 2 else (255, 255, 255))
        draw.text((90 + (line % 2) * 300, top + 18), f"Besked {number}.{line}: du er til grin",
                  fill=(20, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def thumbnail_of(data: bytes) -> bytes:
    """A 512-pixel JPEG thumbnail, as intake makes it."""
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((512, 512))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def add_evidence(database: Database, evidence: BlobStore, derived: BlobStore,
                 number: str) -> int:
    """Put EVIDENCE_ITEMS screenshots on the case with a timeline; the first item's id."""
    with database.write() as session:
        case = session.execute(select(Case).where(Case.number == number)).scalar_one()
        message = session.execute(select(Message).where(Message.case_id == case.id)
                                  ).scalar_one()
        ids = []
        for position in range(1, EVIDENCE_ITEMS + 1):
            data = screenshot(position)
            row = Evidence(
                message_pk=message.id, part_path=str(position + 1), position=position,
                role="attachment", sha256=evidence.put(data), size=len(data),
                declared_type="image/png", sniffed_type="image/png",
                filename=f"skaermbillede-{position}.png", disposition="attachment",
                defects=[], flags=[], image={"format": "PNG", "width": 1080, "height": 2340},
                thumbnail_sha256=derived.put(thumbnail_of(data)))
            session.add(row)
            session.flush()
            ids.append(row.id)
        for action in ("received", "evidence-extracted", "case-opened", "routed",
                       "mail-queued", "mail-queued", "mail-sent", "mail-sent"):
            audit.record(session, action, case=case, message_sha256=message.sha256,
                         details={})
    return ids[0]


@contextmanager
def serving(context: WebContext) -> Iterator[int]:
    """The web app under uvicorn in a thread of its own, on a free loopback port."""
    listener = bind_socket("127.0.0.1", 0)  # as the daemon binds it
    server = uvicorn.Server(uvicorn.Config(build_app(context), log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[listener])),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise BenchError("the web server did not start")
        time.sleep(0.01)
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def timed_requests(port: int, cookie: str, path: str, count: int,
                   check: Callable[[bytes], bool]) -> list[float]:
    """Milliseconds of `count` GETs of `path` on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("GET", path, headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
            response = connection.getresponse()
            body = response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200 or not check(body):
                raise BenchError(f"GET {path}: {response.status} {body[:200]!r}")
    finally:
        connection.close()
    return times


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(backend: str, database_url: str, cases: int, requests: int,
        work: Path) -> list[Result]:
    """Build, serve, measure; the results of this backend."""
    rng = random.Random(9)
    storage = StorageSettings(data_dir=str(work / "data"), database_url=database_url)
    database = Database(storage.effective_database_url)
    evidence, derived = BlobStore(storage.blob_root), BlobStore(storage.derived_root)
    evidence.ensure_root()
    derived.ensure_root()
    started = time.perf_counter()
    upgrade_database(database)
    newest = build_cases(database, cases, rng)
    thumbnail_id = add_evidence(database, evidence, derived, newest)
    build_s = time.perf_counter() - started
    print(f"[{backend}] built {cases:,} cases in {build_s:.1f} s; newest {newest}")
    config = AppConfig(storage=storage)
    config = _with_admin(config)
    composer = MailComposer(config.notify, intake_address="chikanemail@bench.local",
                            hostname="bench.local")
    context = WebContext(config=config, database=database, evidence=evidence,
                         derived=derived, composer=composer)
    now = datetime.now(UTC)
    manager_cookie, _ = start_session(database, MANAGER, now=now, client="127.0.0.1")
    admin_cookie, _ = start_session(database, ADMIN, now=now, client="127.0.0.1")
    case_path = f"/cases/{newest}"
    thumb_path = f"{case_path}/evidence/{thumbnail_id}/thumbnail"
    measured: dict[str, list[float]] = {}
    with serving(context) as port:
        plan: list[tuple[str, str, str, Callable[[bytes], bool]]] = [
            ("list", manager_cookie, "/cases", lambda body: newest.encode() in body),
            ("case", manager_cookie, case_path,
             lambda body: body.count(b"/thumbnail") == EVIDENCE_ITEMS),
            ("thumbnail", manager_cookie, thumb_path, lambda body: body[:2] == b"\xff\xd8"),
            ("admin-list", admin_cookie, "/cases?scope=all", lambda body: b"/cases/" in body),
            ("overdue-list", admin_cookie, "/cases?scope=all&overdue=1",
             lambda body: b"/cases/" in body),
        ]
        for name, cookie, path, check in plan:
            timed_requests(port, cookie, path, WARM_UP, check)
            measured[name] = timed_requests(port, cookie, path, requests, check)
    database.dispose()
    for name, times in measured.items():
        print(f"[{backend}] {name:13} p50 {statistics.median(times):7.1f} ms   "
              f"p99 {percentile(times, 0.99):7.1f} ms   max {max(times):7.1f} ms")
    details = {name: {"p50_ms": round(statistics.median(times), 2),
                      "p99_ms": round(percentile(times, 0.99), 2),
                      "max_ms": round(max(times), 2)} for name, times in measured.items()}
    details.update(cases=cases, requests=requests, evidence_items=EVIDENCE_ITEMS,
                   build_s=round(build_s, 1))
    results = []
    for name, what in (("list", "case list"), ("case", "case page")):
        times = measured[name]
        results.append(Result(
            id=f"P9-{name}-{backend}",
            what=f"web {what} p99, {cases:,} cases, {backend}",
            value=round(percentile(times, 0.99), 1), unit="ms", comparison="<",
            limit=TARGET_MS,
            summary=(f"p50 {statistics.median(times):.1f} ms; thumbnail p99 "
                     f"{percentile(measured['thumbnail'], 0.99):.1f} ms"),
            details=details))
    return results


def _with_admin(config: AppConfig) -> AppConfig:
    """The configuration with ADMIN among `[plan] admins`."""
    from dataclasses import replace

    return replace(config, plan=replace(config.plan, admins=(ADMIN,)))


def bench_main(argv: list[str] | None, *, name: str, description: str,
               run_one: Callable[[str, str, int, int, Path], list[Result]]) -> int:
    """A web bench's command line: build its cases on SQLite or a fresh PostgreSQL schema
    in a private folder, run it, print each figure and its verdict, and write --json."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix=f"chikanemail-bench-{name}-") as folder:
            work = Path(folder)
            os.chmod(work, 0o700)
            if args.backend == "postgresql" and not args.database_url:
                with fresh_postgres_schema(POSTGRES_URL) as url:
                    results = run_one("postgresql", url, args.cases, args.requests, work)
            else:
                results = run_one(args.backend, args.database_url or "", args.cases,
                                  args.requests, work)
    except BenchError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(f"{result.id}: {result.value} ms (target {result.target}): "
              f"{'met' if result.met else 'NOT met'}")
    write_results(args.json, results)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures and the verdict."""
    return bench_main(argv, name="web_pages", description=__doc__.splitlines()[0], run_one=run)


if __name__ == "__main__":
    sys.exit(main())
