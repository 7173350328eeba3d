"""Pattern linking under concurrency: two filings that open related cases at the same time,
each in its own transaction, both end linked, because the second to link waits for the first
to commit (PostgreSQL's advisory lock; SQLite lets one writer in at a time anyway)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from intake.cases.patterns import PatternFinder, PatternMatch
from intake.pipeline.filing.link_patterns import LinkPatterns
from intake.pipeline.filing.step import Filing, NewCase
from intake.pipeline.step import MessageContext
from notifier.plan.settings import PlanSettings
from storage.case_links import CASE_LINKING_LOCK
from storage.cases import open_case
from storage.database import Database
from storage.leader import advisory_key
from storage.migrate import upgrade_database
from storage.models import CaseLink, Message, MessageKind, MessageState
from tests.support import MANAGER, postgres_schema, wait_until

HARASSER = "chef@leverandoer.example"


@pytest.fixture
def postgres() -> Iterator[Database]:
    """A migrated PostgreSQL database in a schema of its own."""
    with postgres_schema() as url:
        database = Database(url)
        upgrade_database(database)
        yield database
        database.dispose()


def open_and_link(session: Session, reporter: str, now: datetime) -> tuple[int, list[PatternMatch]]:
    """Open a case for a report forwarding a mail from HARASSER and run the LinkPatterns
    step on it, in the caller's transaction; the case's id and what it matched."""
    case = open_case(session, reporter=reporter, reporter_name=None, manager=MANAGER,
                     deputy=None, language="da", routing_source="default",
                     routing_reason="test", now=now)
    session.add(Message(sha256=f"{case.id:064x}", size=1, source="smtp", rcpt_tos=[],
                        received_at=now, last_seen_at=now, state=MessageState.PROCESSING,
                        kind=MessageKind.REPORT, case_id=case.id,
                        original_from_address=HARASSER))
    session.flush()
    filing = Filing(cast(MessageContext, None))  # the step reads the transaction and case
    filing.session = session
    filing.new_case = NewCase(case, [], now)
    LinkPatterns(PatternFinder(PlanSettings(), own_domains=())).file(filing)
    return case.id, filing.matches


def waiting_for_the_linking_lock(database: Database, pid: int) -> bool:
    """Whether the backend `pid` waits for CASE_LINKING_LOCK of the database's schema."""
    with database.read() as session:
        schema = str(session.execute(text("SELECT current_schema()")).scalar_one())
        key = advisory_key(CASE_LINKING_LOCK, schema) & 0xFFFF_FFFF_FFFF_FFFF
        return session.execute(
            text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND locktype = 'advisory' "
                 "AND NOT granted AND classid = CAST(:high AS oid) "
                 "AND objid = CAST(:low AS oid) AND objsubid = 1"),
            {"pid": pid, "high": key >> 32, "low": key & 0xFFFF_FFFF},
        ).scalar_one() == 1


def test_cases_opened_at_once_by_two_transactions_both_end_linked(postgres: Database) -> None:
    """Around New Year the two reports take different case-number counters, so only the
    linking lock orders them: the second transaction waits for it until the first commits,
    then finds the first case and links both ways."""
    first_linked, first_may_commit = threading.Event(), threading.Event()
    second_pid: list[int] = []
    results: dict[str, tuple[int, list[PatternMatch]]] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with postgres.write() as session:
                results["first"] = open_and_link(
                    session, "a@kommune.example", datetime(2026, 12, 31, 23, 50, tzinfo=UTC))
                first_linked.set()
                assert first_may_commit.wait(30)
        except BaseException as error:  # reported by the test below
            errors.append(error)
            first_linked.set()

    def second() -> None:
        try:
            with postgres.write() as session:
                second_pid.append(int(session.execute(
                    text("SELECT pg_backend_pid()")).scalar_one()))
                results["second"] = open_and_link(
                    session, "b@kommune.example", datetime(2027, 1, 1, 0, 10, tzinfo=UTC))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    try:
        assert first_linked.wait(30) and not errors
        threads[1].start()
        wait_until(lambda: second_pid and waiting_for_the_linking_lock(postgres, second_pid[0]),
                   timeout=10, message="the second transaction to wait for the linking lock")
        assert "second" not in results  # it has not looked for matches yet
    finally:
        first_may_commit.set()
        for thread in threads:
            thread.join(30)
    assert not errors
    first_case, first_matches = results["first"]
    second_case, second_matches = results["second"]
    assert first_matches == []  # nothing else was there when it linked
    assert [(m.other_case_id, m.reason) for m in second_matches] == [(first_case, "sender")]
    with postgres.read() as session:
        links = set(session.execute(select(CaseLink.case_id, CaseLink.other_case_id)).all())
    assert links == {(first_case, second_case), (second_case, first_case)}
