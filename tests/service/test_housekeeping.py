"""The daemon's housekeeping jobs on its one scheduler: verify when due, retention, and the
refusal of a time-stamp CA file that holds no certificate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from intake.commands.cli.context import CONFIG_ERROR_EXIT
from intake.commands.cli.main import main
from notifier.case_actions import CaseActions
from notifier.clock import ManualClock, SystemClock
from notifier.plan.checklist import calendar_for
from notifier.plan.settings import PlanSettings
from storage import audit
from storage.cases import get_case, lock_case
from storage.ui_settings import UiSettings
from storage.verify import last_verify_run
from tests.mail_flow import CapturingRelay, database_of, list_cases_of, report, send
from tests.support import MANAGER, wait_until, write_toml


def test_verify_runs_at_start_and_retention_deletes_an_expired_case(
        start: Any, relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    first = start()
    send(first, report())
    number = wait_until(lambda: list_cases_of(first), message="a case")[0]
    wait_until(lambda: capture.to(MANAGER), message="the notification")
    database = database_of(first)
    try:
        run = wait_until(lambda: last_verify_run(database), message="verify at start")
        assert run.trigger == "scheduler"
        closed_at = SystemClock().now()
        with database.write() as session:
            CaseActions(calendar_for(PlanSettings(), UiSettings().zone)).close(
                session, lock_case(session, number), "resolved", actor=MANAGER, now=closed_at)
        first.stop()
        # Five years and a day later the case has expired: the next start deletes it.
        later = ManualClock(closed_at + timedelta(days=1826))
        start(clock=later)
        tombstone = wait_until(
            lambda: [event for event in audit.events_for_case(database, number)
                     if event.action == "deleted-by-retention"], message="the tombstone")[0]
        assert get_case(database, number) is None
        assert tombstone.details["message_sha256s"]
        assert audit.check_chain(database).ok
    finally:
        database.dispose()


def test_a_time_stamp_ca_file_without_a_certificate_stops_the_start(tmp_path: Path) -> None:
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("this is no PEM\n", encoding="utf-8")
    config = write_toml(tmp_path / "config.toml", {
        "storage": {"data_dir": str(tmp_path / "data")},
        "smtp": {"port": 0},
        "timestamp": {"tsa_url": "http://127.0.0.1:9/tsr", "ca_file": str(not_a_certificate)},
    })
    result = CliRunner().invoke(main, ["--config", str(config), "serve"])
    assert result.exit_code == CONFIG_ERROR_EXIT, result.output
    assert "timestamp.ca_file" in result.output
    assert str(config) in result.output
