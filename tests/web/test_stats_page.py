"""The statistics page (issue 22, point 5) on a real daemon over real sockets, with 500
generated cases: a pure stats viewer logs in by mail link and reaches only /stats; a manager
who is no viewer gets a 404; the page names no address or case number; the charts render in
chromium under the site's own policy, axe finds nothing serious, the page fits 375 pixels;
`chikanemail stats --json` and `--csv` give the page model's numbers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from intake.commands.cli.stats import csv_rows
from intake.service.config import CONFIG_ENV_VAR
from intake.web.login_links import login_url, record_request
from intake.web.settings import WebSettings
from intake.web.stats.settings import StatsSettings
from notifier.clock import ManualClock
from storage.database import Database
from storage.statistics import StatisticsReport, case_statistics
from storage.statistics_periods import DEFAULT_PERIODS, default_first_period
from tests.browser import chromium
from tests.storage.statistics_cases import ZONE, Generated, generate
from tests.support import DaemonThread, describe, make_config, run_cli, write_toml
from tests.web.node_packages import axe_results, serious
from tests.web.web_support import log_in, press_login_button

pytestmark = pytest.mark.integration

ADMIN = "it@kommune.example"
VIEWER = "amr@kommune.example"  # the safety representative: reads statistics, manages none
MANAGER_OF_CASES = "leder1@kommune.example"


@dataclass
class World:
    daemon: DaemonThread
    clock: ManualClock
    base_url: str
    database: Database
    cases: Generated
    config_file: Path

    def session_for(self, address: str) -> requests.Session:
        """A session logged in as `address` (a link as `chikanemail web link` makes it)."""
        with self.database.write() as session:
            token = record_request(session, address=address, client="test",
                                   now=self.clock.now(), web=self.daemon.config.web,
                                   with_link=True)
        assert token is not None
        http = requests.Session()
        assert press_login_button(http, login_url(self.base_url, token)).status_code == 303
        return http

    def report(self, granularity: str = "month") -> StatisticsReport:
        now = self.clock.now()
        first = default_first_period(granularity, now, ZONE,  # type: ignore[arg-type]
                                     DEFAULT_PERIODS[granularity])  # type: ignore[index]
        with self.database.read() as session:
            return case_statistics(session, granularity, first,  # type: ignore[arg-type]
                                   now=now, zone=ZONE)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("stats")
    database_url = f"sqlite:///{root / 'stats.sqlite3'}"
    # No reminders or digests for the generated cases: only the login mails go out.
    config = make_config(root / "data", database_url, extract={"ocr": False},
                         plan={"admins": (ADMIN,), "safety_rep": VIEWER,
                               "remind_overdue": False, "digest": False,
                               "remind_before_working_days": (), "tick_seconds": 3600.0})
    config = replace(config, web=WebSettings(listen="127.0.0.1:0"), stats=StatsSettings())
    config_file = root / "config.toml"
    write_toml(config_file, {"storage": {"data_dir": str(root / "data"),
                                         "database_url": database_url},
                             "intake": {"addresses": ["chikanemail@kommune.example"]},
                             "ui": {"language": "en"}})
    clock = ManualClock(datetime.now(UTC))
    with DaemonThread(config, clock=clock) as daemon:
        assert daemon.ready_info is not None and daemon.ready_info.web_address is not None
        host, port = daemon.ready_info.web_address
        database = Database(database_url)
        try:
            yield World(daemon, clock, f"http://{host}:{port}", database, generate(database),
                        config_file)
        finally:
            database.dispose()


def test_a_pure_stats_viewer_logs_in_by_mail_and_reaches_only_the_statistics(
        world: World) -> None:
    http = requests.Session()
    # The safety representative asks for a link like a manager: no [stats] viewers needed.
    landed = log_in(http, world.daemon, world.base_url, VIEWER, set())
    assert landed.headers["location"] == "/stats"
    page = http.get(f"{world.base_url}/stats")
    assert page.status_code == 200 and "<svg" in page.text
    assert 'href="/cases"' not in page.text and 'href="/stats"' in page.text
    number = str(world.cases.cases[0]["number"])
    for path in ("/cases", f"/cases/{number}", f"/cases/{number}/registration"):
        assert http.get(f"{world.base_url}{path}", allow_redirects=False).status_code == 404
    assert http.get(f"{world.base_url}/", allow_redirects=False).headers["location"] == "/stats"


def test_a_manager_who_is_no_viewer_gets_a_404_and_an_admin_the_page(world: World) -> None:
    manager = world.session_for(MANAGER_OF_CASES)
    assert manager.get(f"{world.base_url}/cases").status_code == 200
    assert manager.get(f"{world.base_url}/stats").status_code == 404
    assert manager.get(f"{world.base_url}/stats/charts.css").status_code == 404
    anonymous = requests.get(f"{world.base_url}/stats", allow_redirects=False, timeout=30)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    admin = world.session_for(ADMIN)
    for query in ("", "?granularity=quarter&from=2025-01&to=2025-Q4"):
        page = admin.get(f"{world.base_url}/stats{query}")
        assert page.status_code == 200
        assert "&lt; 5" in page.text
        for case in world.cases.cases:  # no address or case number of any case
            for key in ("number", "reporter", "reporter_name", "manager"):
                assert str(case[key]) not in page.text, (key, case[key])
    quarterly = admin.get(f"{world.base_url}/stats?granularity=quarter&from=2025-02&to=2025-Q4")
    assert all(f">2025-Q{n}<" in quarterly.text for n in (1, 2, 3, 4))
    assert ">2024-Q4<" not in quarterly.text


def test_the_cli_gives_the_numbers_of_the_page_model(world: World) -> None:
    env = {CONFIG_ENV_VAR: str(world.config_file)}
    for granularity, flag in (("month", "--monthly"), ("quarter", "--quarterly")):
        expected = world.report(granularity).as_json()
        as_json = run_cli(["stats", flag, "--json"], env=env)
        assert as_json.exit_code == 0, describe(as_json)
        assert json.loads(as_json.stdout) == expected
        as_csv = run_cli(["stats", flag, "--csv"], env=env)
        assert as_csv.exit_code == 0, describe(as_csv)
        rows = list(csv.reader(io.StringIO(as_csv.stdout)))
        assert rows[0] == ["table", "period", "category", "value"]
        assert rows[1:] == [[str(value) for value in row] for row in csv_rows(expected)]
        assert any(row[3] == "<5" for row in rows[1:])
    text = run_cli(["stats"], env=env)
    assert text.exit_code == 0, describe(text)
    assert max(len(line) for line in text.stdout.splitlines()) <= 80
    assert "< 5" in text.stdout


def test_the_charts_render_under_the_sites_policy_pass_axe_and_fit_375_pixels(
        world: World) -> None:
    viewer = world.session_for(VIEWER)
    cookies = [{"name": cookie.name, "value": cookie.value or "", "url": world.base_url}
               for cookie in viewer.cookies]
    with chromium() as browser:
        # First under the page's own policy: the charts must show without any exception.
        strict = browser.new_context(viewport={"width": 375, "height": 812})
        strict.add_cookies(cookies)  # type: ignore[arg-type]
        page = strict.new_page()
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text)
                if "Content Security Policy" in message.text else None)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{world.base_url}/stats")
        assert page.url.endswith("/stats")
        charts = page.locator("svg.pygal-chart")
        assert charts.count() == 7
        for index in range(charts.count()):
            box = charts.nth(index).bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            assert charts.nth(index).get_attribute("role") == "img"
        assert page.locator("svg.pygal-chart rect.rect").count() > 20  # bars were drawn
        # The chart style sheet applied: the plot's background is white, not black.
        fill = page.evaluate("() => getComputedStyle(document.querySelector("
                             "'svg.pygal-chart .plot > .background')).fill")
        assert fill in ("rgb(255, 255, 255)", "#ffffff"), fill
        assert refused == []
        assert all(url.startswith(world.base_url) for url in requested), requested
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375
        strict.close()
        # axe is a script of the test's own, which the page's policy would refuse.
        context = browser.new_context(bypass_csp=True, viewport={"width": 375, "height": 812})
        context.add_cookies(cookies)  # type: ignore[arg-type]
        page = context.new_page()
        page.goto(f"{world.base_url}/stats")
        result = axe_results(page)
        assert result["passes"] > 5
        assert serious(result) == []
        context.close()
