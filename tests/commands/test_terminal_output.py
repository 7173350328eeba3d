"""Terminal output that fits: `cases show`, `audit show`, `messages list`, `outbox list` and
`cases list` at 80 columns from a real case, with no case number or time cut short; times
in the workplace's zone; `cases list | head -1` ends quietly; `serve` starts without
Alembic's noise. SQLite only: the layout does not depend on the database."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from intake.commands.cli.demo import build_demo_report
from intake.service.config import AppConfig
from storage.cases import format_case_number
from storage.database import Database
from storage.migrate import upgrade_database
from storage.models import Case
from storage.time_text import short_datetime
from tests.mail_flow import database_of, list_cases_of
from tests.support import (
    INTAKE_ADDRESS,
    DaemonThread,
    chikanemail_command,
    daemon_process,
    describe,
    free_port,
    make_config,
    run_cli,
    wait_until,
    write_toml,
)

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
NARROW = {"COLUMNS": "80"}
REPORTER = "ansat@localhost"
# A case number cut short ("2026-0…"), or a table time ("6 Dec 19:24", English as the
# tests' config pins it) cut anywhere before its end.
CUT = re.compile(r"\b\d{4}-\d{0,3}…|\b\d{1,2} [A-Z][a-z]{0,2}(?: \d{0,4})?(?: \d{0,2})?(?::\d?)?…")


@pytest.fixture(scope="module")
def one_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A case opened by the daemon from the demo report (a forwarded mail with a
    screenshot); the daemon is stopped, the CLI's config (English, Copenhagen) remains."""
    folder = tmp_path_factory.mktemp("one-case")
    database_url = f"sqlite:///{folder / 'cases.sqlite3'}"
    config: AppConfig = make_config(folder / "data", database_url, extract={"ocr": False})
    config = replace(config, intake=replace(config.intake, allowed_sender_domains=("localhost",)))
    with DaemonThread(config) as daemon:
        mail = build_demo_report(REPORTER, INTAKE_ADDRESS)
        with smtplib.SMTP(*daemon.smtp_address) as client:
            client.send_message(mail, from_addr=REPORTER, to_addrs=[INTAKE_ADDRESS])
        wait_until(lambda: len(list_cases_of(daemon)) == 1, message="the case")
        database = database_of(daemon)
        try:
            wait_until(lambda: _outbox_settled(database), message="the outbox")
        finally:
            database.dispose()
        number = list_cases_of(daemon)[0]
    cli_config = write_toml(folder / "cli.toml", {
        "storage": {"data_dir": str(folder / "data"), "database_url": database_url},
        "notify": {"language": "en"}, "ui": {"timezone": "Europe/Copenhagen"}})
    yield cli_config, number


def _outbox_settled(database: Database) -> bool:
    from storage.outbox_rows import list_outbox_rows

    rows = list_outbox_rows(database)
    return bool(rows) and all(row.state in ("sent", "failed") for row in rows)


def cli(config: Path, *args: str) -> str:
    result = run_cli(["--config", str(config), *args], env=NARROW)
    assert result.exit_code == 0, describe(result)
    return result.stdout


def short(iso: str) -> str:
    return short_datetime(datetime.fromisoformat(iso), "en", COPENHAGEN)


def assert_fits(text: str) -> None:
    too_long = [line for line in text.splitlines() if len(line.rstrip()) > 80]
    assert not too_long, "\n".join(too_long)
    assert not CUT.search(text), CUT.search(text)


def test_cases_show_fits_80_columns_with_every_time_whole(one_case: tuple[Path, str]) -> None:
    config, number = one_case
    shown = json.loads(cli(config, "cases", "show", number, "--json"))
    text = cli(config, "cases", "show", number)
    assert_fits(text)
    lines = text.splitlines()
    assert lines[0].startswith(f"case {number}  open  opened ")
    opened = datetime.fromisoformat(shown["opened_at"]).astimezone(COPENHAGEN)
    assert f"{opened:%-d %B %Y}, {opened:%H:%M}" in lines[0]  # the long form, local time
    for deadline in shown["deadlines"]:
        assert any(line.strip(" │├└─").startswith(short(deadline["due"])) for line in lines)
    for message in shown["messages"]:
        assert short(message["received_at"]) in text
    flat = " ".join(text.split())
    # The rule of the step waiting for the first day of absence, in words (wrapped in its cell).
    assert "waits: 14 days after" in flat and "first day of absence" in flat
    assert "P14D" not in text and "first_absence_day" not in text
    assert "+00:00" not in text and "T" not in re.findall(r"\d{4}-\d{2}-\d{2}T", text)
    assert "evidence (2 items, 1 image)" in text and "1 message" in text


def test_audit_show_and_messages_list_fit(one_case: tuple[Path, str]) -> None:
    config, number = one_case
    events = json.loads(cli(config, "audit", "show", number, "--json"))
    table = cli(config, "audit", "show", number)
    assert_fits(table)
    rows = {line.split()[0]: line for line in table.splitlines()
            if line.strip() and line.split()[0].isdigit()}
    for event in events:
        row = rows[str(event["seq"])]
        moment = datetime.fromisoformat(event["time_utc"].replace("Z", "+00:00"))
        assert short_datetime(moment, "en", COPENHAGEN) in row
        assert event["action"] in row.split()  # whole, never "evidence-ex…"
        assert event["actor"] in row.split()

    listed = cli(config, "messages", "list")
    assert_fits(listed)
    (message,) = json.loads(cli(config, "messages", "list", "--json"))
    assert short(message["received_at"]) in listed and number in listed
    assert "1 message" in listed and "1 messages" not in listed
    wide = run_cli(["--config", str(config), "messages", "list", "--wide"], env=NARROW)
    assert message["sha256"][:16] in wide.stdout


def test_outbox_and_cases_list_show_case_numbers(one_case: tuple[Path, str]) -> None:
    config, number = one_case
    outbox = cli(config, "outbox", "list")
    assert_fits(outbox)
    rows = json.loads(cli(config, "outbox", "list", "--json"))
    assert rows and all(row["case"] == number for row in rows)
    body = [line for line in outbox.splitlines() if "notification" in line or "receipt" in line]
    assert body and all(line.split()[0] == number for line in body)
    listed = cli(config, "cases", "list")
    assert_fits(listed)
    assert listed.startswith("1 case (newest first)")


def test_cases_list_into_head_ends_quietly(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'many.sqlite3'}"
    database = Database(database_url)
    upgrade_database(database)
    opened = datetime(2026, 1, 1, 8, tzinfo=UTC)
    with database.engine.begin() as connection:
        connection.execute(insert(Case), [_case_row(sequence, opened + timedelta(hours=sequence))
                                          for sequence in range(1, 1201)])
    database.dispose()
    config = write_toml(tmp_path / "cli.toml", {"storage": {
        "data_dir": str(tmp_path / "data"), "database_url": database_url}})
    # More than a pipe holds (64 KiB), so the listing is still writing when its reader goes.
    command = [*chikanemail_command(), "--config", str(config), "cases", "list", "--all"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()  # what `head -1` reads before it exits
        process.stdout.close()
        errors = process.stderr.read().decode()
        process.wait(60)
    assert first.startswith(b"1200 cases")
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert errors == "", errors


def _case_row(sequence: int, opened: datetime) -> dict[str, Any]:
    return {
        "number": format_case_number(2026, sequence), "year": 2026, "sequence": sequence,
        "status": "open", "reporter": f"ansat{sequence}@kommune.example", "reporter_name": None,
        "manager": "leder@kommune.example", "deputy": None, "language": "da",
        "routing_source": "default", "routing_reason": "test", "opened_at": opened,
        "closed_at": None, "close_reason": None, "relation": "unknown", "medium": None,
        "first_absence_day": None, "witnesses": [], "acknowledged_at": None,
        "acknowledged_by": None, "escalation_level": 0, "legal_hold": False,
        "hold_reason": None,
    }


def test_serve_starts_without_alembic_noise(tmp_path: Path) -> None:
    port = free_port()
    config = write_toml(tmp_path / "serve.toml", {
        "storage": {"data_dir": str(tmp_path / "data")}, "smtp": {"port": port}})
    log_file = tmp_path / "serve.log"
    with daemon_process(config, log_file) as process:
        wait_until(lambda: "chikanemail running" in log_file.read_text(), timeout=60,
                   message="the daemon's start")
        process.terminate()
        process.wait(30)
    log = log_file.read_text()
    assert "setup plugin" not in log and "alembic" not in log, log
