"""The audit log: the events a report leaves, the chain under concurrent writers, rollback,
tampering found at the right event, hashes anyone can recompute, and `audit show` (where a
refused command and an unverified sender read plainly)."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, text, update

from intake.commands.cli.main import main
from storage import audit
from storage.database import Database
from storage.models import AuditEvent, AuditHead
from tests.mail_flow import REPORTER, CapturingRelay, database_of, list_cases_of, report, send
from tests.support import MANAGER, describe, wait_until, write_toml


def _actions(events: list[AuditEvent]) -> list[str]:
    return [event.action for event in events]


def test_a_report_leaves_its_custody_trail(start: Any,
                                            relay: tuple[CapturingRelay, int]) -> None:
    capture, _ = relay
    daemon = start()
    raw = report()
    send(daemon, raw)
    number = wait_until(lambda: list_cases_of(daemon), message="a case")[0]
    wait_until(lambda: capture.to(MANAGER), message="the notification")
    database = database_of(daemon)
    try:
        def trail() -> list[str] | None:
            actions = _actions(audit.events_for_case(database, number))
            return actions if actions.count("mail-sent") == 2 else None

        actions = wait_until(trail, message="both mails sent")
        # The order things happened in: stored, parsed, case opened, mails queued with it.
        for earlier, later in (("received", "evidence-extracted"),
                               ("evidence-extracted", "case-opened"),
                               ("case-opened", "routed"), ("routed", "mail-queued"),
                               ("mail-queued", "filed"), ("filed", "processed"),
                               ("mail-queued", "mail-sent")):
            assert actions.index(earlier) < actions.index(later), actions
        events = audit.events_for_case(database, number)
        received = next(event for event in events if event.action == "received")
        assert received.actor == "system"
        assert received.details["source"] == "smtp"
        assert received.details["size"] == len(raw) + 2  # smtplib ends DATA with a CRLF
        routed = next(event for event in events if event.action == "routed")
        assert routed.details["manager"] == MANAGER
        extracted = next(event for event in events if event.action == "evidence-extracted")
        assert extracted.details["items"] == len(extracted.details["parts"]) >= 1
        queued = {event.details["kind"]: event.details["to"] for event in events
                  if event.action == "mail-queued"}
        assert queued == {"receipt": ["(reporter)"], "notification": [MANAGER]}
        # The log outlives the case: the reporter is never named in it.
        assert REPORTER not in json.dumps([[event.actor, event.details] for event in events])
        # The same bytes again: one message, one case, and the log says it was seen twice.
        send(daemon, raw)
        seen = wait_until(lambda: [event for event in audit.events_for_case(database, number)
                                   if event.action == "seen-again"], message="seen again")
        assert seen[0].details["times_seen"] == 2
        assert list_cases_of(daemon) == [number]
        assert audit.check_chain(database).ok
    finally:
        database.dispose()


def _append(database: Database, action: str, **details: Any) -> None:
    with database.write() as session:
        audit.record(session, action, case_number="2026-0001", details=details)


def test_concurrent_writers_make_one_unbroken_chain(database: Database) -> None:
    writers, per_writer = 4, 25
    failures: list[BaseException] = []

    def write(number: int) -> None:
        try:
            for index in range(per_writer):
                _append(database, "note", writer=number, index=index)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    check = audit.check_chain(database)
    assert check.ok, check.broken
    assert check.events == check.head_seq == writers * per_writer
    with database.read() as session:
        seqs = list(session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars())
    assert seqs == list(range(1, writers * per_writer + 1))


def test_a_rolled_back_transaction_leaves_no_event(database: Database) -> None:
    _append(database, "note", index=1)
    with pytest.raises(RuntimeError), database.write() as session:
        audit.record(session, "note", details={"index": 2})
        raise RuntimeError("the work failed")
    _append(database, "note", index=3)
    events = list(audit.iter_events(database))
    assert [event.details["index"] for event in events] == [1, 3]
    assert [event.seq for event in events] == [1, 2]
    assert audit.check_chain(database).ok


def test_savepoints_neither_chain_early_nor_lose_the_transactions_events(
        database: Database) -> None:
    """Events are chained (and the head row locked) at the outermost commit only: a savepoint's
    release chains nothing, and its rollback drops only the events recorded inside it."""
    with database.write() as session:
        audit.record(session, "note", details={"index": 1})
        with session.begin_nested():
            audit.record(session, "note", details={"index": 2})
        assert session.execute(select(AuditEvent)).first() is None  # nothing chained yet
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.record(session, "note", details={"index": 3})
            raise RuntimeError("the savepoint's work failed")
        audit.record(session, "note", details={"index": 4})
    events = list(audit.iter_events(database))
    assert [event.details["index"] for event in events] == [1, 2, 4]
    assert [event.seq for event in events] == [1, 2, 3]
    assert audit.check_chain(database).ok


def _tamper(database: Database, statement: Any) -> None:
    with database.write() as session:
        session.execute(statement)


@pytest.mark.parametrize("change", ["details", "actor", "time", "prev_hash"])
def test_a_changed_row_breaks_the_chain_at_that_event(database: Database, change: str) -> None:
    for index in range(5):
        _append(database, "note", index=index)
    changes = {
        "details": {"details": {"index": 99}},
        "actor": {"actor": "someone-else"},
        "time": {"occurred_at": datetime(2020, 1, 1, tzinfo=UTC)},
        "prev_hash": {"prev_hash": "f" * 64},
    }
    _tamper(database, update(AuditEvent).where(AuditEvent.seq == 3).values(**changes[change]))
    check = audit.check_chain(database)
    assert check.broken is not None
    assert check.broken.seq == 3
    assert check.broken.action == "note"


def test_a_removed_event_or_tail_is_found(database: Database) -> None:
    for index in range(5):
        _append(database, "note", index=index)
    _tamper(database, delete(AuditEvent).where(AuditEvent.seq == 5))
    check = audit.check_chain(database)
    assert check.broken is not None and "removed" in check.broken.reason
    _tamper(database, delete(AuditEvent).where(AuditEvent.seq == 2))
    check = audit.check_chain(database)
    assert check.broken is not None
    assert check.broken.seq == 2 and "missing" in check.broken.reason


def test_a_hash_recomputes_with_printf_and_sha256sum(database: Database) -> None:
    _append(database, "note", text_sha256="ab" * 32, note="ø and ✓")
    _append(database, "step-done", step=2)
    for event in audit.iter_events(database):
        canonical = audit.event_json(event)
        shell = subprocess.run(["sh", "-c", 'printf "%s%s" "$1" "$2" | sha256sum', "sh",
                                event.prev_hash, canonical],
                               capture_output=True, text=True, check=True)
        assert shell.stdout.split()[0] == event.hash


def test_the_head_row_moves_with_every_event(database: Database) -> None:
    _append(database, "note")
    _append(database, "note")
    with database.read() as session:
        head = session.execute(select(AuditHead)).scalar_one()
        last = session.execute(text("SELECT max(seq) FROM audit_event")).scalar_one()
    assert (head.seq, last) == (2, 2)
    assert head.hash == list(audit.iter_events(database))[-1].hash


def test_audit_show_lists_events_in_local_time_and_records_the_look(
        tmp_path: Path, database: Database) -> None:
    with database.write() as session:
        audit.record(session, "case-opened", case_number="2026-0042",
                     now=datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
        audit.record(session, "note", actor="leder@kommune.example", case_number="2026-0042",
                     now=datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    config = write_toml(tmp_path / "config.toml", {
        "storage": {"data_dir": str(tmp_path / "data"),
                    "database_url": database.url.render_as_string(hide_password=False)},
        "ui": {"language": "en"},  # the English texts the test reads
    })
    result = CliRunner().invoke(main, ["--config", str(config), "audit", "show", "2026-0042",
                                       "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert [event["action"] for event in shown] == ["case-opened", "note"]
    # Copenhagen: summer time in July, winter time in December, each with its offset.
    assert shown[0]["time_local"].startswith("2026-07-01 12:00:00 CEST (+0200)")
    assert shown[1]["time_local"].startswith("2026-12-01 11:00:00 CET (+0100)")
    assert shown[1]["actor"] == "leder@kommune.example"
    assert audit.chain_hash(shown[1]["prev_hash"], shown[1]["canonical_json"]) == \
        shown[1]["hash"]
    viewed = audit.events_for_case(database, "2026-0042")[-1]
    assert viewed.action == "viewed"
    assert viewed.actor.startswith("cli:")
    missing = CliRunner().invoke(main, ["--config", str(config), "audit", "show", "2026-9999"])
    assert missing.exit_code != 0
    assert "No audit events for case 2026-9999" in missing.output


def test_audit_show_says_plainly_what_was_refused_and_unverified(
        tmp_path: Path, database: Database) -> None:
    forged, genuine = "f0" * 32, "a1" * 32
    recorded = {
        "filed-forged": {"kind": "follow-up", "automatic": False, "unverified": True,
                         "sender_check": "dkim-fail"},
        "filed-genuine": {"kind": "note", "automatic": False, "unverified": False,
                          "sender_check": "dkim-pass"},
        "command-refused": {"reason": "token-for-another-case", "commands": ["luk", "kvitter"]},
    }
    with database.write() as session:
        audit.record(session, "sender-unverified", case_number="2026-0043")
        audit.record(session, "filed", case_number="2026-0043", message_sha256=forged,
                     details=recorded["filed-forged"])
        audit.record(session, "command-refused", case_number="2026-0043",
                     message_sha256=forged, details=recorded["command-refused"])
        audit.record(session, "filed", case_number="2026-0043", message_sha256=genuine,
                     details=recorded["filed-genuine"])
    config = write_toml(tmp_path / "config.toml", {
        "storage": {"data_dir": str(tmp_path / "data"),
                    "database_url": database.url.render_as_string(hide_password=False)},
        "ui": {"language": "en"},  # the English texts the test reads
    })
    command = ["--config", str(config), "audit", "show", "2026-0043"]
    # One row a line, with the message column (--wide).
    table = CliRunner(env={"COLUMNS": "300"}).invoke(main, [*command, "--wide"])
    assert table.exit_code == 0, describe(table)
    rows = {}
    for line in table.stdout.splitlines():
        for sha256 in (forged, genuine):
            if sha256[:12] in line:
                action = "command-refused" if "command-refused" in line else "filed"
                rows[f"{action}-{sha256[:2]}"] = line
    refused = rows["command-refused-f0"]
    assert "REFUSED luk, kvitter: the reply address belongs to another case" in refused
    assert "UNVERIFIED sender, kept as evidence, changed nothing (dkim-fail)" in rows[
        "filed-f0"]
    assert "UNVERIFIED" not in rows["filed-a1"] and "(dkim-pass)" in rows["filed-a1"]
    assert "UNVERIFIED reporter sender: no receipt sent" in table.stdout

    # The JSON keeps every detail as it was recorded.
    shown = json.loads(CliRunner().invoke(main, [*command, "--json"]).stdout)
    details = [(event["action"], event["details"]) for event in shown
               if event["action"] != "viewed"]
    assert details == [("sender-unverified", {}), ("filed", recorded["filed-forged"]),
                       ("command-refused", recorded["command-refused"]),
                       ("filed", recorded["filed-genuine"])]
