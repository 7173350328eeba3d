"""P10: an action's round trip on the case page under 100,000 cases.

What it measures
    It builds the 100,000 cases of `web_pages.py` (five years, 40 managers, the five steps
    of the response plan, one mail each, 5 % linked; the newest case the manager's own,
    with 10 screenshots and their thumbnails), serves the web view the daemon serves
    (`intake.web.app.build_app` under uvicorn, in this process, on a loopback port) and
    logs the manager in with a server-side session.

    One round trip is what the browser does when the manager presses an action's button:
    the POST of the form (with the session's CSRF token), its 303 answer, and the GET of the
    case page it redirects to, the whole page read, on one keep-alive connection. After 20
    warm-up trips of each, it times N trips of each of these actions:

    a) note: a new note each time;
    b) relation: who the harasser is, switched between colleague and external;
    c) hold: a legal hold set and lifted in turn.

    The trips go round the manager's 25 newest open cases (the newest first, with its 10
    screenshots), so that no case's timeline grows past what a busy case has (about 60
    events more each): the case page renders every event and note of the case, and one case
    acted on 700 times would measure that growth, not an action. Every trip writes its
    audit events (the action's and the page view's), as in use; the chain is walked at the
    end. The POST alone is timed too. Target: p99 of the round trip under 200 ms.

How to run (from the repository root)
    .venv/bin/python bench/web_actions.py
    .venv/bin/python bench/web_actions.py --backend postgresql --requests 200 --json out.json

Exit status: 0 when every trip answered as it should (even if the target is missed: the
figures and the verdict are printed); 1 otherwise.
"""

from __future__ import annotations

import http.client
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from daemon_process import BenchError
from results import Result
from sqlalchemy import select, update
from web_pages import MANAGER, add_evidence, bench_main, build_cases, percentile, serving

from intake.service.config import AppConfig
from intake.web.context import WebContext
from intake.web.csrf import FIELD_NAME
from intake.web.sessions import COOKIE_NAME, start_session
from notifier.mails import MailComposer
from storage.audit import check_chain
from storage.blobstore import BlobStore
from storage.database import Database
from storage.migrate import upgrade_database
from storage.models import Case
from storage.settings import StorageSettings

TARGET_MS = 200.0
WARM_UP = 20
CASES_ACTED_ON = 25

ACTIONS = ("note", "relation", "hold")


def trip_form(name: str, i: int, round_number: int) -> tuple[str, dict[str, str]]:
    """The action posted on trip `i` of the series `name` (the case's `round_number`th
    trip of the series), and its form: each one changes the case (see busy_cases)."""
    if name == "note":
        return "note", {"note": f"Samtale nr. {i} med medarbejderen er holdt."}
    if name == "relation":
        return "relation", {"relation": ("colleague", "external")[round_number % 2]}
    if round_number % 2 == 0:
        return "hold", {"reason": f"Politiets sag {i}"}
    return "unhold", {}


@dataclass(frozen=True)
class Trip:
    """The milliseconds of one round trip, and of its POST alone."""

    total_ms: float
    post_ms: float


def round_trips(port: int, cookie: str, csrf: str, numbers: list[str], name: str,
                count: int, start: int) -> list[Trip]:
    """`count` round trips (POST, 303, GET of the case page), trip i on numbers[i % n]."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}",
               "Content-Type": "application/x-www-form-urlencoded"}
    trips = []
    try:
        for i in range(start, start + count):
            number = numbers[i % len(numbers)]
            action, form = trip_form(name, i, i // len(numbers))
            body = urlencode({FIELD_NAME: csrf, **form})
            started = time.perf_counter()
            connection.request("POST", f"/cases/{number}/actions/{action}", body=body,
                               headers=headers)
            answer = connection.getresponse()
            answer.read()
            posted = time.perf_counter()
            location = answer.getheader("location", "")
            if answer.status != 303 or f"result={action}:done" not in location:
                raise BenchError(f"POST {action} on {number}: {answer.status} {location!r}")
            connection.request("GET", location.split("#")[0],
                               headers={"Cookie": headers["Cookie"]})
            page = connection.getresponse()
            html = page.read()
            ended = time.perf_counter()
            if page.status != 200 or b'class="action-result"' not in html:
                raise BenchError(f"GET {location}: {page.status} {html[:200]!r}")
            trips.append(Trip((ended - started) * 1000, (posted - started) * 1000))
    finally:
        connection.close()
    return trips


def busy_cases(database: Database, newest: str, count: int) -> list[str]:
    """The manager's `count` newest open cases, `newest` first, with the harasser's
    relation not known and no legal hold, so the first trip of each series changes them."""
    with database.write() as session:
        numbers = [newest, *session.execute(
            select(Case.number).where(Case.manager == MANAGER, Case.status == "open",
                                      Case.number != newest)
            .order_by(Case.id.desc()).limit(count - 1)).scalars()]
        session.execute(update(Case).where(Case.number.in_(numbers))
                        .values(relation="unknown", legal_hold=False, hold_reason=None))
    return numbers


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
    add_evidence(database, evidence, derived, newest)
    build_s = time.perf_counter() - started
    print(f"[{backend}] built {cases:,} cases in {build_s:.1f} s; newest {newest}")
    config = AppConfig(storage=storage)
    composer = MailComposer(config.notify, intake_address="chikanemail@bench.local",
                            hostname="bench.local")
    context = WebContext(config=config, database=database, evidence=evidence,
                         derived=derived, composer=composer)
    cookie, active = start_session(database, MANAGER, now=datetime.now(UTC),
                                   client="127.0.0.1")
    numbers = busy_cases(database, newest, CASES_ACTED_ON)
    trips: dict[str, list[Trip]] = {}
    with serving(context) as port:
        for name in ACTIONS:
            round_trips(port, cookie, active.csrf_token, numbers, name, WARM_UP, 0)
            trips[name] = round_trips(port, cookie, active.csrf_token, numbers, name,
                                      requests, WARM_UP)
    measured = {name: [trip.total_ms for trip in series] for name, series in trips.items()}
    posts = [trip.post_ms for series in trips.values() for trip in series]
    chain = check_chain(database)
    database.dispose()
    if not chain.ok:
        raise BenchError(f"the audit chain does not hold: {chain.broken}")
    for name, times in measured.items():
        print(f"[{backend}] {name:9} p50 {statistics.median(times):7.1f} ms   "
              f"p99 {percentile(times, 0.99):7.1f} ms   max {max(times):7.1f} ms")
    details: dict[str, object] = {
        name: {"p50_ms": round(statistics.median(times), 2),
               "p99_ms": round(percentile(times, 0.99), 2), "max_ms": round(max(times), 2)}
        for name, times in measured.items()}
    details.update(cases=cases, requests=requests, build_s=round(build_s, 1),
                   audit_events=chain.events, cases_acted_on=len(numbers),
                   post_p50_ms=round(statistics.median(posts), 2),
                   post_p99_ms=round(percentile(posts, 0.99), 2))
    print(f"[{backend}] the POST alone: p50 {statistics.median(posts):.1f} ms   "
          f"p99 {percentile(posts, 0.99):.1f} ms")
    everything = [value for times in measured.values() for value in times]
    return [Result(
        id=f"P10-action-{backend}",
        what=f"web action round trip p99 (POST, redirect, case page), {cases:,} cases, "
             f"{backend}",
        value=round(percentile(everything, 0.99), 1), unit="ms", comparison="<",
        limit=TARGET_MS,
        summary="; ".join([*(f"{name} p99 {percentile(times, 0.99):.1f} ms"
                             for name, times in measured.items()),
                           f"the POST alone p99 {percentile(posts, 0.99):.1f} ms"]),
        details=details)]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures and the verdict."""
    return bench_main(argv, name="web_actions", description=__doc__.splitlines()[0],
                      run_one=run)


if __name__ == "__main__":
    sys.exit(main())
