"""`chikanemail cases assign NUMBER ADDRESS [--deputy ADDRESS | --no-deputy]`: the new
manager and deputy, the old ones' reply tokens retired, the notification with a fresh
secret reply address, the short mail to the previous manager (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from notifier.plan.checklist import add_checklist, calendar_for
from notifier.plan.settings import PlanSettings
from storage.audit import events_for_case
from storage.cases import case_notes, get_case, open_case
from storage.database import Database
from storage.models import Message, OutboxMail, ReplyToken
from storage.reply_tokens import issue_token
from storage.ui_settings import UiSettings
from tests.support import INTAKE_ADDRESS, describe, run_cli, write_toml

MANAGER = "leder@kommune.example"
DEPUTY = "stedfortraeder@kommune.example"
NEW_MANAGER = "ny.leder@kommune.example"
NEW_DEPUTY = "ny.stedfortraeder@kommune.example"
REPORTER = "ansat@kommune.example"
REPORTER_NAME = "Anna Ansat"
ORIGINAL_SUBJECT = "Du er ikke velkommen her"
OPENED = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
SECRET_REPLY_TO = re.compile(r"chikanemail\+([a-z2-7]{32})@kommune\.example")


@pytest.fixture
def setup(database: Database, tmp_path: Path) -> tuple[Database, Path]:
    """The migrated database and a CLI config on it whose intake address is INTAKE_ADDRESS."""
    config = write_toml(tmp_path / "cli.toml", {
        "storage": {"data_dir": str(tmp_path / "data"),
                    "database_url": database.url.render_as_string(hide_password=False)},
        "intake": {"addresses": [INTAKE_ADDRESS]},
    })
    return database, config


def seed_case(database: Database, *, deputy: str | None = DEPUTY, report: bool = True) -> str:
    """An open case with its checklist and report message, and a live token for each of
    manager, deputy and reporter (as if earlier mails had gone out); its number."""
    plan = PlanSettings()
    with database.write() as session:
        case = open_case(session, reporter=REPORTER, reporter_name=REPORTER_NAME,
                         manager=MANAGER, deputy=deputy, language="da",
                         routing_source="default", routing_reason="standardleder",
                         now=OPENED)
        add_checklist(session, case, plan, calendar_for(plan, UiSettings().zone))
        if report:
            session.add(Message(
                sha256=hashlib.sha256(case.number.encode()).hexdigest(), size=1234,
                source="smtp", rcpt_tos=[INTAKE_ADDRESS], received_at=OPENED,
                last_seen_at=OPENED, state="processed", case_id=case.id, kind="report",
                from_address=REPORTER, subject="Fwd: chikane", message_id="<r1@kommune.example>",
                original_rule="outlook", original_from_address="kasper@eksempel.example",
                original_subject=ORIGINAL_SUBJECT))
        for address, kind in ((MANAGER, "notification"), (DEPUTY, "escalation"),
                              (REPORTER, "receipt")):
            if address is not None and (address != DEPUTY or deputy is not None):
                issue_token(session, case_id=case.id, address=address, kind=kind, now=OPENED)
        return case.number


def assign(config: Path, *args: str, ok: bool = True) -> Any:
    result = run_cli(["--config", str(config), "cases", "assign", *args])
    if ok:
        assert result.exit_code == 0, describe(result)
    return result


def tokens(database: Database, number: str) -> list[ReplyToken]:
    case = get_case(database, number)
    assert case is not None
    with database.read() as session:
        rows = list(session.execute(select(ReplyToken).where(ReplyToken.case_id == case.id)
                                    .order_by(ReplyToken.id)).scalars())
        session.expunge_all()
    return rows


def by_address(rows: list[ReplyToken], address: str) -> list[tuple[str, str | None]]:
    """(kind, retired_reason or 'live') of one person's tokens, oldest first."""
    return [(row.kind, row.retired_reason if row.retired_at else "live")
            for row in rows if row.address == address]


def outbox(database: Database) -> list[tuple[str, list[str], EmailMessage]]:
    """(kind, recipients, parsed mail) of every queued mail, oldest first."""
    with database.read() as session:
        rows = list(session.execute(select(OutboxMail).order_by(OutboxMail.id)).scalars())
        return [(row.kind, list(row.rcpt_tos), parse(row.raw)) for row in rows]


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    """Every text part, decoded."""
    return "\n".join(part.get_content().replace("\r\n", "\n") for part in message.walk()
                     if part.get_content_maintype() == "text")


def test_assign_moves_the_case_retires_the_old_managers_tokens_and_tells_both(
        setup: tuple[Database, Path]) -> None:
    database, config = setup
    number = seed_case(database)

    said = assign(config, number, "Ny.Leder@Kommune.example").stdout
    # The CLI speaks the workplace's language (Danish, the default), as the mails do.
    assert said.strip() == (f"Sag {number} er overdraget til {NEW_MANAGER} (før: {MANAGER}); "
                            f"stedfortræder {DEPUTY}; besked sat i kø til {NEW_MANAGER}, "
                            f"{MANAGER} har fået besked")
    case = get_case(database, number)
    assert case is not None and (case.manager, case.deputy) == (NEW_MANAGER, DEPUTY)

    rows = tokens(database, number)
    assert by_address(rows, MANAGER) == [("notification", "reassigned")]
    assert by_address(rows, DEPUTY) == [("escalation", "live")]  # keeps the deputy role
    assert by_address(rows, REPORTER) == [("receipt", "live")]
    assert by_address(rows, NEW_MANAGER) == [("notification", "live")]

    (kind, to, notification), (told_kind, told_to, told) = outbox(database)
    assert (kind, to, told_kind, told_to) == ("notification", [NEW_MANAGER],
                                              "reassigned", [MANAGER])
    match = SECRET_REPLY_TO.fullmatch(notification["Reply-To"].addresses[0].addr_spec)
    assert match is not None, notification["Reply-To"]
    token = match.group(1)
    issued = {row.token_sha256: row for row in rows}[hashlib.sha256(token.encode()).hexdigest()]
    assert (issued.address, issued.retired_at) == (NEW_MANAGER, None)
    body = text_of(notification)
    assert token not in body and token.upper() not in body
    assert token not in notification.as_string().split("\n\n", 1)[1]
    assert f"Sagen er overdraget til dig fra {MANAGER} af cli:" in body
    assert ORIGINAL_SUBJECT in body  # the same notification the case opened with

    assert told["Reply-To"].addresses[0].addr_spec == INTAKE_ADDRESS
    told_text = text_of(told)
    assert f"Sag {number} behandles nu af {NEW_MANAGER}" in told_text
    assert REPORTER_NAME not in told_text and REPORTER not in told_text
    assert ORIGINAL_SUBJECT not in told_text and "virker ikke" in told_text

    (event,) = [e for e in events_for_case(database, number) if e.action == "assigned"]
    assert {key: event.details[key] for key in ("manager", "previous", "deputy",
                                                "previous_deputy")} == {
        "manager": NEW_MANAGER, "previous": MANAGER, "deputy": DEPUTY,
        "previous_deputy": DEPUTY}
    assert [note.text for note in case_notes(database, case.id)] == [
        f"Assigned to {NEW_MANAGER} (was {MANAGER})."]

    again = assign(config, number, NEW_MANAGER).stdout
    assert "intet at ændre" in again
    assert len(outbox(database)) == 2 and len(tokens(database, number)) == len(rows)


def test_deputy_named_removed_and_promoted(setup: tuple[Database, Path]) -> None:
    database, config = setup
    number = seed_case(database)

    # A new deputy: the old one's tokens go, the new one gets the notification as deputy.
    said = assign(config, number, MANAGER, "--deputy", NEW_DEPUTY).stdout
    assert said.strip() == (f"Sag {number}: lederen er fortsat {MANAGER}; stedfortræder "
                            f"{NEW_DEPUTY} (før: {DEPUTY}); besked sat i kø til {NEW_DEPUTY}")
    rows = tokens(database, number)
    assert by_address(rows, DEPUTY) == [("escalation", "deputy-removed")]
    assert by_address(rows, MANAGER) == [("notification", "live")]
    assert by_address(rows, NEW_DEPUTY) == [("notification", "live")]
    ((kind, to, mail),) = outbox(database)
    assert (kind, to) == ("notification", [NEW_DEPUTY])
    assert SECRET_REPLY_TO.fullmatch(mail["Reply-To"].addresses[0].addr_spec)
    assert (f"Du er gjort til stedfortræder for den ansvarlige leder,\n{MANAGER}, af cli:"
            in text_of(mail))

    # The deputy becomes the manager: they keep their tokens and get a new one; nobody is
    # their own deputy.
    said = assign(config, number, NEW_DEPUTY).stdout
    assert f"ingen stedfortræder (før: {NEW_DEPUTY})" in said
    assert f"{MANAGER} har fået besked" in said
    case = get_case(database, number)
    assert case is not None and (case.manager, case.deputy) == (NEW_DEPUTY, None)
    rows = tokens(database, number)
    assert by_address(rows, NEW_DEPUTY) == [("notification", "live")] * 2
    assert by_address(rows, MANAGER) == [("notification", "reassigned")]

    # --no-deputy retires the deputy's tokens.
    assign(config, number, NEW_DEPUTY, "--deputy", DEPUTY)
    assert by_address(tokens(database, number), DEPUTY)[-1] == ("notification", "live")
    said = assign(config, number, NEW_DEPUTY, "--no-deputy").stdout
    assert f"ingen stedfortræder (før: {DEPUTY})" in said
    assert {reason for _, reason in by_address(tokens(database, number), DEPUTY)} == {
        "deputy-removed"}
    case = get_case(database, number)
    assert case is not None and case.deputy is None


def test_refusals(setup: tuple[Database, Path]) -> None:
    database, config = setup
    number = seed_case(database)

    both = assign(config, number, NEW_MANAGER, "--deputy", NEW_DEPUTY, "--no-deputy", ok=False)
    assert both.exit_code == 2 and "--deputy and --no-deputy" in both.output
    bad = assign(config, number, "Ny Leder", ok=False)
    assert bad.exit_code == 2 and "'ADDRESS'" in bad.output and "not a mail address" in bad.output
    bad_deputy = assign(config, number, NEW_MANAGER, "--deputy", "x@", ok=False)
    assert bad_deputy.exit_code == 2 and "'--deputy'" in bad_deputy.output
    same = assign(config, number, NEW_MANAGER, "--deputy", NEW_MANAGER, ok=False)
    assert same.exit_code == 1 and "both the manager and the deputy" in same.output
    missing = assign(config, "1999-0001", NEW_MANAGER, ok=False)
    assert missing.exit_code == 1 and "ingen sag 1999-0001" in missing.output

    closed = run_cli(["--config", str(config), "cases", "close", number, "--reason", "slut"])
    assert closed.exit_code == 0, describe(closed)
    refused = assign(config, number, NEW_MANAGER, ok=False)
    assert refused.exit_code == 1 and f"Sag {number} er lukket" in refused.output
    case = get_case(database, number)
    assert case is not None and (case.manager, case.deputy) == (MANAGER, DEPUTY)
    # Closing retired every token of the case; a refused assignment issued none.
    assert all(row.retired_reason == "closed" for row in tokens(database, number))
    assert outbox(database) == []


def test_a_case_without_a_report_is_assigned_without_a_notification(
        setup: tuple[Database, Path]) -> None:
    database, config = setup
    number = seed_case(database, deputy=None, report=False)
    said = assign(config, number, NEW_MANAGER).stdout
    assert "ingen besked: sagen har ingen indberetningsmail" in said
    assert [(kind, to) for kind, to, _ in outbox(database)] == [("reassigned", [MANAGER])]
    assert by_address(tokens(database, number), MANAGER) == [("notification", "reassigned")]
