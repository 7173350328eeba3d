"""Outbox rows: queued in the caller's transaction, once per Message-ID, claimed without
overlap, retried with backoff until the deadline, failed once and loudly."""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from notifier.outbox import enqueue, mark_failed, retry_delay, schedule_retry
from notifier.outgoing import OutgoingMail
from notifier.settings import NotifySettings
from storage.database import Database
from storage.models import Case, OutboxMail, utc_now
from storage.outbox_rows import (
    claim_outbox,
    list_outbox_rows,
    mark_outbox_retry,
    mark_outbox_sent,
    outbox_rows_for_case,
    release_abandoned_outbox,
    release_outbox_claims,
)
from tests.support import wait_until

SETTINGS = NotifySettings(first_retry_seconds=30.0, max_retry_seconds=3600.0,
                          retry_deadline_hours=120.0)
BODY_LINE = "Hej leder. Der er modtaget en indberetning om chikane."


def make_mail(n: int = 0, *, kind: str = "notification",
              rcpt_tos: tuple[str, ...] = ("leder@kommune.example",)) -> OutgoingMail:
    """A rendered mail with a unique Message-ID, 8-bit text and a line starting with a dot."""
    message_id = f"<{secrets.token_hex(8)}.{n}@chikanemail.test>"
    subject = f"[Sag 2026-{n:04d}] Ny indberetning"
    raw = (
        "From: Chikanemail <chikanemail@kommune.example>\r\n"
        f"To: {', '.join(rcpt_tos)}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Sat, 21 Nov 2026 10:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{BODY_LINE} Næste skridt: første samtale.\r\n"
        ".denne linje starter med et punktum\r\n"
    ).encode()
    return OutgoingMail(kind=kind, mail_from="chikanemail@kommune.example",
                        rcpt_tos=rcpt_tos, message_id=message_id, subject=subject, raw=raw)


def queue(database: Database, mail: OutgoingMail, settings: NotifySettings = SETTINGS,
          now: datetime | None = None) -> OutboxMail:
    """Queue one mail in a transaction of its own."""
    with database.write() as session:
        return enqueue(session, mail, case_id=None, settings=settings, now=now)


def row_of(database: Database, message_id: str) -> OutboxMail:
    (row,) = [row for row in list_outbox_rows(database) if row.message_id == message_id]
    return row


def test_enqueue_adds_a_pending_row_inside_the_callers_transaction(database: Database) -> None:
    mail = make_mail()
    with pytest.raises(RuntimeError), database.write() as session:
        enqueue(session, mail, case_id=None, settings=SETTINGS)
        raise RuntimeError("the case could not be opened")
    assert list_outbox_rows(database) == []

    now = utc_now()
    queue(database, mail, now=now)
    row = row_of(database, mail.message_id)
    assert (row.state, row.attempts, row.kind) == ("pending", 0, "notification")
    assert row.raw == mail.raw and row.rcpt_tos == ["leder@kommune.example"]
    assert row.next_attempt_at == now == row.created_at
    assert row.deadline_at == now + timedelta(hours=120)
    assert row.sent_at is None and row.claimed_by is None


def test_enqueue_twice_with_the_same_message_id_keeps_one_row(database: Database) -> None:
    mail = make_mail()
    first = queue(database, mail)
    with database.write() as session:
        again = enqueue(session, mail, case_id=None, settings=SETTINGS)
        once_more = enqueue(session, mail, case_id=None, settings=SETTINGS)
        assert again.id == once_more.id == first.id
    assert [row.id for row in list_outbox_rows(database)] == [first.id]


def test_concurrent_enqueues_of_one_message_id_keep_one_row(database: Database) -> None:
    """The second transaction waits for the first, then finds its row (on PostgreSQL after a
    unique violation inside a savepoint) and still commits the rest of its own work."""
    mail = make_mail()
    second_result: list[int] = []
    second_backend: list[int] = []

    def second_transaction() -> None:
        with database.write() as session:
            if database.is_postgresql:
                second_backend.append(int(session.execute(text("SELECT pg_backend_pid()"))
                                          .scalar_one()))
            second_result.append(enqueue(session, mail, case_id=None, settings=SETTINGS).id)
            enqueue(session, make_mail(2), case_id=None, settings=SETTINGS)

    with database.write() as first:
        first_id = enqueue(first, mail, case_id=None, settings=SETTINGS).id
        thread = threading.Thread(target=second_transaction)
        thread.start()
        if database.is_postgresql:
            def second_waits_for_our_row() -> bool:
                if not second_backend:
                    return False
                with database.engine.connect() as probe:
                    return probe.execute(
                        text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": second_backend[0]},
                    ).scalar_one_or_none() == "Lock"
            wait_until(second_waits_for_our_row, message="the second insert to wait")
    thread.join(30)
    assert second_result == [first_id]
    assert len(list_outbox_rows(database)) == 2


def test_enqueue_refuses_a_mail_without_recipients(database: Database) -> None:
    with pytest.raises(ValueError, match="no recipients"), database.write() as session:
        enqueue(session, make_mail(rcpt_tos=()), case_id=None, settings=SETTINGS)


def test_claim_due_takes_due_mails_and_expired_claims_only(database: Database) -> None:
    now = utc_now()
    hour_ago = now - timedelta(hours=1)
    live, expired = make_mail(1), make_mail(2)
    queue(database, live, now=hour_ago)
    queue(database, expired, now=hour_ago)
    # Another host's sender holds `live` for an hour; `expired` was claimed and its lease ran out.
    assert [m.message_id for m in claim_outbox(database, sender_id="elsewhere:1:a", limit=1,
                                            lease=timedelta(hours=2), now=hour_ago)] \
        == [live.message_id]
    assert [m.message_id for m in claim_outbox(database, sender_id="elsewhere:2:b", limit=1,
                                            lease=timedelta(minutes=10), now=hour_ago)] \
        == [expired.message_id]
    due, later = make_mail(3), make_mail(4)
    queue(database, due, now=now)
    queue(database, later, now=now + timedelta(minutes=5))

    claimed = claim_outbox(database, sender_id="here:3:c", limit=10, lease=timedelta(minutes=10),
                        now=now)
    assert {(m.message_id, m.attempts) for m in claimed} == {
        (expired.message_id, 2), (due.message_id, 1)}
    mail = next(m for m in claimed if m.message_id == due.message_id)
    assert (mail.raw, mail.rcpt_tos, mail.kind) == (due.raw, due.rcpt_tos, "notification")
    assert row_of(database, live.message_id).claimed_by == "elsewhere:1:a"
    assert row_of(database, later.message_id).state == "pending"
    assert row_of(database, expired.message_id).claimed_by == "here:3:c"
    assert claim_outbox(database, sender_id="here:3:c", limit=10, lease=timedelta(minutes=10),
                     now=now) == []


def test_retry_delay_doubles_from_the_first_retry_up_to_the_cap() -> None:
    settings = NotifySettings(first_retry_seconds=30.0, max_retry_seconds=3600.0)
    for attempts, nominal in [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920)]:
        delay = retry_delay(attempts, settings).total_seconds()
        assert nominal <= delay <= nominal * 1.1
    assert retry_delay(8, settings).total_seconds() == 3600
    assert retry_delay(10_000, settings).total_seconds() == 3600


def test_a_temporary_failure_waits_and_one_past_the_deadline_fails_loudly(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings = NotifySettings(first_retry_seconds=30.0, retry_deadline_hours=1.0)
    mail = make_mail(kind="receipt")
    start = utc_now()
    queue(database, mail, settings, now=start)
    (claimed,) = claim_outbox(database, sender_id="s:1:a", limit=5, lease=timedelta(minutes=10),
                           now=start)
    assert schedule_retry(database, claimed, "s:1:a", error="451 4.3.0 try later",
                          settings=settings, now=start) == "pending"
    row = row_of(database, mail.message_id)
    assert (row.state, row.last_error, row.claimed_by) == ("pending", "451 4.3.0 try later", None)
    assert start + timedelta(seconds=30) <= row.next_attempt_at <= start + timedelta(seconds=33)

    late = start + timedelta(minutes=59, seconds=50)  # the next try would be past the deadline
    (claimed,) = claim_outbox(database, sender_id="s:1:a", limit=5, lease=timedelta(minutes=10),
                           now=late)
    caplog.set_level(logging.INFO, logger="chikanemail.notifier")
    assert schedule_retry(database, claimed, "s:1:a", error="451 4.3.0 try later",
                          settings=settings, now=late) == "failed"
    assert not mark_failed(database, claimed, "s:1:a", error="again")  # the claim is gone
    row = row_of(database, mail.message_id)
    assert (row.state, row.attempts) == ("failed", 2)
    assert row.last_error is not None and "deadline" in row.last_error
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert mail.message_id in text and "receipt" in text and BODY_LINE not in text
    assert claim_outbox(database, sender_id="s:1:a", limit=5, lease=timedelta(minutes=10),
                     now=late + timedelta(days=1)) == []


def test_a_sender_that_lost_its_claim_cannot_undo_the_new_holders_work(
    database: Database,
) -> None:
    mail = make_mail()
    past = utc_now() - timedelta(hours=1)
    queue(database, mail, now=past)
    (old,) = claim_outbox(database, sender_id="slow:1:a", limit=1, lease=timedelta(seconds=1),
                       now=past)
    (new,) = claim_outbox(database, sender_id="fast:2:b", limit=1, lease=timedelta(minutes=10))
    assert new.attempts == 2
    assert not mark_outbox_retry(database, old.id, "slow:1:a", error="timed out",
                          next_attempt_at=utc_now())
    assert not release_outbox_claims(database, [old.id], "slow:1:a")
    # The slow sender did get it out: "sent" is the truth, though its claim was gone.
    assert not mark_outbox_sent(database, old.id, "slow:1:a")
    assert row_of(database, mail.message_id).state == "sent"
    assert not mark_outbox_retry(database, new.id, "fast:2:b", error="451",
                                 next_attempt_at=utc_now())
    assert row_of(database, mail.message_id).state == "sent"


def test_released_claims_cost_no_attempt(database: Database) -> None:
    mails = [make_mail(n) for n in range(3)]
    for mail in mails:
        queue(database, mail)
    claimed = claim_outbox(database, sender_id="s:1:a", limit=3, lease=timedelta(minutes=10))
    assert release_outbox_claims(database, [m.id for m in claimed[1:]], "s:1:a") == 2
    states = sorted((row.state, row.attempts) for row in list_outbox_rows(database))
    assert states == [("pending", 0), ("pending", 0), ("sending", 1)]


def test_release_abandoned_requeues_only_the_claims_of_gone_senders(database: Database) -> None:
    for n in range(3):
        queue(database, make_mail(n))
    for sender_id in ("here:10:dead", "here:11:alive", "elsewhere:10:x"):
        claim_outbox(database, sender_id=sender_id, limit=1, lease=timedelta(hours=1))

    assert release_abandoned_outbox(database, is_abandoned=lambda claimed_by: claimed_by.endswith(
        ":dead")) == 1
    rows = {row.claimed_by: row for row in list_outbox_rows(database)}
    assert set(rows) == {None, "here:11:alive", "elsewhere:10:x"}
    assert (rows[None].state, rows[None].attempts) == ("pending", 1)
    assert rows[None].next_attempt_at <= utc_now()


def test_outbox_lists_by_state_and_by_case(database: Database) -> None:
    now = utc_now()
    with database.write() as session:
        case = Case(number="2026-0001", year=2026, sequence=1, status="open",
                    reporter="ansat@kommune.example", manager="leder@kommune.example",
                    language="da", routing_source="default", routing_reason="test",
                    opened_at=now)
        session.add(case)
        session.flush()
        case_id = case.id
        receipt = enqueue(session, make_mail(1, kind="receipt"), case_id=case_id,
                          settings=SETTINGS)
        notification = enqueue(session, make_mail(2), case_id=case_id, settings=SETTINGS)
        other = enqueue(session, make_mail(3), case_id=None, settings=SETTINGS)
        ids = receipt.id, notification.id, other.id
    (claimed,) = claim_outbox(database, sender_id="s:1:a", limit=1, lease=timedelta(minutes=1))
    mark_outbox_sent(database, claimed.id, "s:1:a")

    assert [row.id for row in outbox_rows_for_case(database, case_id)] == [ids[0], ids[1]]
    assert [row.id for row in list_outbox_rows(database)] == [ids[2], ids[1], ids[0]]
    assert [row.id for row in list_outbox_rows(database, state="pending")] == [ids[2], ids[1]]
    assert [row.id for row in list_outbox_rows(database, state="sent")] == [ids[0]]
    assert len(list_outbox_rows(database, limit=1)) == 1
    sent = outbox_rows_for_case(database, case_id)[0]
    assert sent.sent_at is not None and sent.raw.startswith(b"From: ")  # usable once detached
