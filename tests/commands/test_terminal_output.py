"""Terminal output that fits: `cases show`, `audit show`, `messages list`, `outbox list` and
`cases list` at 80 columns from a real case, with no case number or time cut short; times
in the workplace's zone; the words in `[ui] language` (Danish, or English), with no word of
the other language and no internal code; `cases list | head -1` ends quietly; `serve` starts
without Alembic's noise. SQLite only: the layout does not depend on the database."""

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
from storage.audit_words import label
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
# A case number cut short ("2026-0…"), or a table time cut anywhere before its end: English
# "6 Dec 19:24", Danish "06.12 19:24" (a hash cut on purpose, "99cf2ca9…", has no dot).
CUT = re.compile(r"\b\d{4}-\d{0,3}…|\b\d{1,2} [A-Z][a-z]{0,2}(?: \d{0,4})?(?: \d{0,2})?(?::\d?)?…"
                 r"|(?<![0-9a-f])\d{2}\.[\d. :]*…")
# Words a reader of the other language would trip over, and codes nobody should read.
CODES = ("mail-queued", "evidence-extracted", "P14D", "first_absence_day", "first-aid",
         "case-opened")
ENGLISH = ("case", "Case", "opened", "Reporter", "Manager", "Deputy", "Evidence", "message",
           "step", "steps", "waits", "Action", "Details", "Received", "Subject", "report",
           "processed", "notification", "items", "image", "deadlines", "none", "yet", "queued",
           "sent", "Time", "Actor")
DANISH = ("Sag", "sag", "sager", "oprettet", "Anmelder", "Leder", "Beviser", "frister", "trin",
          "Handling", "Modtaget", "Emne", "behandlet", "indberetning", "endnu", "ingen",
          "venter", "dage", "standardleder", "lederen", "Tid", "mails")


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
        "ui": {"language": "en", "timezone": "Europe/Copenhagen"}})
    yield cli_config, number


@pytest.fixture(scope="module")
def danish(one_case: tuple[Path, str]) -> Path:
    """The same case's CLI config with the default language (Danish)."""
    config, _ = one_case
    text = config.read_text(encoding="utf-8").replace('language = "en"\n', "")
    danish_config = config.with_name("cli-da.toml")
    danish_config.write_text(text, encoding="utf-8")
    return danish_config


def _outbox_settled(database: Database) -> bool:
    from storage.outbox_rows import list_outbox_rows

    rows = list_outbox_rows(database)
    return bool(rows) and all(row.state in ("sent", "failed") for row in rows)


def cli(config: Path, *args: str) -> str:
    result = run_cli(["--config", str(config), *args], env=NARROW)
    assert result.exit_code == 0, describe(result)
    return result.stdout


def short(iso: str, language: str = "en") -> str:
    return short_datetime(datetime.fromisoformat(iso), language, COPENHAGEN)


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[\w-]+", text))


def assert_reads(text: str, expected: set[str], foreign: tuple[str, ...],
                 codes: tuple[str, ...] = CODES) -> None:
    """The text has the expected words, none of the other language's and no code."""
    found = words_of(text)
    assert expected <= found, expected - found
    assert not found & set(foreign), found & set(foreign)
    flat = " ".join(text.split())
    assert not [code for code in codes if code in flat], flat


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
    assert lines[0].startswith(f"Case {number}  open  opened ")
    opened = datetime.fromisoformat(shown["opened_at"]).astimezone(COPENHAGEN)
    assert f"{opened:%-d %B %Y}, {opened:%H:%M}" in lines[0]  # the long form, local time
    for deadline in shown["deadlines"]:
        assert any(line.strip(" │├└─").startswith(short(deadline["due"])) for line in lines)
    for message in shown["messages"]:
        assert short(message["received_at"]) in text
    flat = " ".join(text.replace("│", " ").split())
    # The rule of the step waiting for the first day of absence, in words (wrapped in its cell).
    assert "waits: 14 days after" in flat and "first day of absence" in flat
    assert "P14D" not in text and "first_absence_day" not in text
    assert "+00:00" not in text and "T" not in re.findall(r"\d{4}-\d{2}-\d{2}T", text)
    assert "Evidence: 2 items, 1 image" in text and "1 message" in text


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
        assert event["actor"] in row.split()
    for event in events:  # the action in words (wrapped in its cell, never cut), not the code
        assert words_of(label(event["action"], "en")) <= words_of(table)
        assert "-" not in event["action"] or event["action"] not in table  # "mail-queued"

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
    assert first.startswith(b"1200 sager")  # Danish, the default language
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert errors == "", errors


def test_danish_output_reads_danish_and_cuts_nothing(one_case: tuple[Path, str],
                                                     danish: Path) -> None:
    english, number = one_case
    shown = json.loads(cli(english, "cases", "show", number, "--json"))
    case = cli(danish, "cases", "show", number)
    assert_fits(case)
    assert case.splitlines()[0].startswith(f"Sag {number}  åben  oprettet ")
    assert "Beviser: 2 dele, 1 billede" in case and "1 mail" in case
    flat = " ".join(case.replace("│", " ").split())
    assert "venter: 14 dage" in flat and "første fraværsdag" in flat  # wrapped in its cell
    for deadline in shown["deadlines"]:
        assert short(deadline["due"], "da") in case
    assert_reads(case, {"Sag", "Anmelder", "Leder", "Beviser", "frister", "oprettet",
                        "standardleder", "Psykisk", "førstehjælp"}, ENGLISH,
                 (*CODES, "default manager"))  # the routing reason as it is stored

    audit_table = cli(danish, "audit", "show", number)
    assert_fits(audit_table)
    for event in json.loads(cli(english, "audit", "show", number, "--json")):
        moment = datetime.fromisoformat(event["time_utc"].replace("Z", "+00:00"))
        assert short_datetime(moment, "da", COPENHAGEN) in audit_table
        assert words_of(label(event["action"], "da")) <= words_of(audit_table)
    assert_reads(audit_table, {"Handling", "Tid", "Beviser", "udtrukket", "modtaget"},
                 ENGLISH)

    listed = cli(danish, "messages", "list")
    assert_fits(listed)
    (message,) = json.loads(cli(english, "messages", "list", "--json"))
    assert short(message["received_at"], "da") in listed and number in listed
    assert listed.startswith("1 mail ")
    assert_reads(listed, {"Modtaget", "Emne", "behandlet", "indberetning"}, ENGLISH)


def test_english_output_reads_english(one_case: tuple[Path, str]) -> None:
    config, number = one_case
    case = cli(config, "cases", "show", number)
    assert_reads(case, {"Case", "Reporter", "Manager", "Evidence", "deadlines", "opened",
                        "First", "aid"}, DANISH)
    audit_table = cli(config, "audit", "show", number)
    assert_reads(audit_table, {"Action", "Time", "Evidence", "extracted", "received"}, DANISH)
    listed = cli(config, "messages", "list")
    assert_reads(listed, {"Received", "Subject", "processed", "report"}, DANISH)


def test_a_database_behind_the_schema_is_refused_in_the_readers_words(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "cli.toml", {"storage": {
        "data_dir": str(tmp_path / "data"),
        "database_url": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}})
    result = run_cli(["--config", str(config), "messages", "list"])
    assert result.exit_code == 1, describe(result)
    assert "databasen er på skema (tom), denne version kræver" in result.stderr
    assert "chikanemail db upgrade" in result.stderr  # the command itself, as typed


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
        "storage": {"data_dir": str(tmp_path / "data")}, "smtp": {"port": port},
        "worker": {"processes": 1}})
    log_file = tmp_path / "serve.log"
    with daemon_process(config, log_file) as process:
        wait_until(lambda: "chikanemail running" in log_file.read_text(), timeout=60,
                   message="the daemon's start")
        process.terminate()
        process.wait(30)
    log = log_file.read_text()
    assert "setup plugin" not in log and "alembic" not in log, log
