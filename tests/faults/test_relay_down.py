"""R2: the outgoing relay is down for the whole load, then comes up: every queued mail
(receipt and manager notification of each case, and whatever else the plan queued) reaches
it exactly once, and every outbox row ends `sent` with one `mail-sent` audit event.

Two ways of being down: nothing listens on the relay's port (connection refused), and a
relay that answers every DATA with 451 until it recovers.
"""

from __future__ import annotations

import smtplib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from storage.audit import check_chain, iter_events
from storage.cases import list_cases
from storage.database import Database
from storage.messages import list_messages
from storage.models import OutboxMail
from storage.outbox_rows import list_outbox_rows
from storage.reply_tokens import without_reply_token
from tests.mail_flow import REPORTER, CapturingRelay
from tests.support import (
    INTAKE_ADDRESS,
    MANAGER,
    DaemonThread,
    free_port,
    make_config,
    wait_until,
)

pytestmark = pytest.mark.faults

# 40 reports, 80 mails: each report opens a case (about 0.2 s of work on this 2-core machine)
# and queues a receipt and a manager notification.
REPORTS = 40
DEADLINE = 30.0
# How long the relay is watched, after the outbox is drained, for a mail sent twice.
WATCH_AFTER_DRAIN = 1.0


@contextmanager
def relay_on(port: int, handler: CapturingRelay) -> Iterator[None]:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


def delivered_counts(handler: CapturingRelay) -> dict[str, int]:
    return {message_id: len(mails) for message_id, mails in handler.by_message_id().items()}


def stays(predicate: Callable[[], bool], seconds: float, message: str) -> None:
    """Poll the predicate until `seconds` have passed; fail as soon as it is false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), message
        time.sleep(0.05)  # the poll interval; the deadline ends the watch
    assert predicate(), message


def report(number: int) -> bytes:
    """A report of its own: no forwarded original, so no two cases are linked as a pattern
    (a harasser shared by all would link every case to every other one)."""
    return (f"From: Ansat <{REPORTER}>\r\nTo: <{INTAKE_ADDRESS}>\r\n"
            f"Subject: Chikane nummer {number}\r\n"
            f"Message-ID: <relay-down-{number}@kommune.example>\r\n\r\n"
            f"Jeg fik en grim besked i dag ({number}).\r\n").encode()


def all_processed(database: Database) -> bool:
    rows = list_messages(database)
    return len(rows) == REPORTS and all(row.state == "processed" for row in rows)


# Each way of being down on one backend, to stay within the time budget: the sender treats
# a refused connection and a 451 alike, and the backends differ in how mails are claimed.
@pytest.mark.parametrize(("database_url", "down"), [("sqlite", "refused"), ("postgresql", "451")],
                         indirect=["database_url"])
def test_every_mail_queued_while_the_relay_is_down_arrives_once(
        tmp_path: Path, database_url: str, down: str) -> None:
    port = free_port()
    # "451": a relay that answers every DATA with 451 until told to stop refusing.
    handler = CapturingRelay(refuse_first=10**9 if down == "451" else 0)
    config = make_config(
        tmp_path / "data", database_url, extract={"ocr": False},
        # Short backoff so the mails are due again soon after the relay is back.
        notify={"smtp_host": "127.0.0.1", "smtp_port": port, "first_retry_seconds": 0.05,
                "max_retry_seconds": 1.0, "poll_seconds": 0.1, "timeout_seconds": 10.0},
    )
    database = Database(config.storage.effective_database_url)
    with ExitStack() as stack:
        stack.callback(database.dispose)
        if down == "451":
            stack.enter_context(relay_on(port, handler))
        with DaemonThread(config) as daemon:
            with smtplib.SMTP(*daemon.smtp_address, timeout=DEADLINE) as client:
                for number in range(REPORTS):
                    assert client.sendmail(REPORTER, [INTAKE_ADDRESS], report(number)) == {}
            wait_until(lambda: all_processed(database), timeout=DEADLINE, interval=0.1,
                       message=f"{REPORTS} reports processed")

            def all_tried_and_pending() -> list[OutboxMail]:
                rows = list_outbox_rows(database)
                ready = len(rows) >= 2 * REPORTS and all(
                    row.state == "pending" and row.attempts >= 1 and row.last_error
                    for row in rows)
                return rows if ready else []

            queued = wait_until(all_tried_and_pending, timeout=DEADLINE, interval=0.1,
                                message="every outbox mail tried and waiting for a retry")
            assert handler.mails == [], "nothing may arrive while the relay is down"
            if down == "451":
                assert handler.refused >= len(queued)
                assert all("451" in (row.last_error or "") for row in queued)
            else:
                assert all("connect" in (row.last_error or "") for row in queued)

            # The relay comes up (or stops refusing).
            if down == "451":
                with handler.lock:
                    handler.refuse_first = handler.refused
            else:
                stack.enter_context(relay_on(port, handler))

            def drained() -> list[OutboxMail]:
                rows = list_outbox_rows(database)
                return rows if all(row.state == "sent" for row in rows) else []

            sent_rows = wait_until(drained, timeout=DEADLINE, interval=0.1,
                                   message="every outbox mail sent")
            # A row says "sent" only after the relay's 250: all are there, once each.
            expected = {row.message_id: 1 for row in sent_rows}
            assert delivered_counts(handler) == expected
            # Watch a little longer for a second copy of anything.
            stays(lambda: delivered_counts(handler) == expected, WATCH_AFTER_DRAIN,
                  "a mail arrived again after the outbox was drained")
        # The daemon has stopped: no sender thread can send anything any more.
        final_rows = list_outbox_rows(database)
        assert {row.message_id for row in final_rows} == set(expected), "no new mail queued"
        assert delivered_counts(handler) == expected, "every mail exactly once, nothing else"

        rows_by_id = {row.message_id: row for row in final_rows}
        for message_id, (mail,) in handler.by_message_id().items():
            row = rows_by_id[message_id]
            assert row.state == "sent" and row.sent_at is not None and row.claimed_by is None
            # The outbox keeps the sent mail with its reply token blanked (issue 15).
            assert without_reply_token(mail.raw) == row.raw, "the relay got the queued bytes"
            assert mail.raw != row.raw, "the relay got the reply token"
            assert mail.rcpt_tos == list(row.rcpt_tos)

        cases = list_cases(database)
        assert len(cases) == REPORTS
        kinds = Counter((row.case_id, row.kind) for row in final_rows)
        for case in cases:
            assert kinds[(case.id, "notification")] == 1, case.number
            assert kinds[(case.id, "receipt")] == 1, case.number
        assert len(handler.to(MANAGER)) >= REPORTS
        assert len(handler.to(REPORTER)) == REPORTS

        events = [event for event in iter_events(database) if event.action == "mail-sent"]
        sent_events = Counter(str(event.details["message_id"]) for event in events)
        assert sent_events == Counter(expected), "one mail-sent audit event per mail"
        chain = check_chain(database)
        assert chain.broken is None, chain.broken
