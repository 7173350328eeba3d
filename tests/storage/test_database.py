"""Message rows on SQLite and PostgreSQL: record, deduplicate, claim, fail, recover."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta

from sqlalchemy import inspect

from storage.database import Database
from storage.messages import (
    DeliveryEnvelope,
    HeaderSummary,
    claim_messages,
    count_by_state,
    find_message,
    get_message_by_sha256,
    list_messages,
    mark_failed,
    mark_processed,
    record_delivery,
    release_abandoned_claims,
)
from storage.migrate import current_revision, head_revision, upgrade_database
from storage.models import QuarantineReason

ENVELOPE = DeliveryEnvelope(source="smtp", mail_from="a@kommune.dk",
                            rcpt_tos=("chikanemail@kommune.dk",), peer="127.0.0.1:1234",
                            helo="mx.kommune.dk", tls=True)


def record(database: Database, n: int, **kwargs: object) -> int:
    return record_delivery(database, sha256=f"{n:064x}", size=n, envelope=ENVELOPE,
                           headers=HeaderSummary(f"<{n}@x>", f"subject {n}"),
                           **kwargs).message_pk  # type: ignore[arg-type]


def test_migrations_create_the_schema_and_are_idempotent(database: Database) -> None:
    assert current_revision(database) == head_revision()
    upgrade_database(database)
    assert "message" in inspect(database.engine).get_table_names()


def test_a_delivery_is_recorded_with_its_envelope(database: Database) -> None:
    record(database, 1)
    row = get_message_by_sha256(database, f"{1:064x}")
    assert row is not None
    assert (row.mail_from, row.rcpt_tos, row.peer, row.helo, row.tls) == (
        "a@kommune.dk", ["chikanemail@kommune.dk"], "127.0.0.1:1234", "mx.kommune.dk", True)
    assert (row.state, row.times_seen, row.attempts) == ("received", 1, 0)
    assert row.received_at.tzinfo is not None
    assert row.received_at.utcoffset() == timedelta(0)
    assert (row.message_id, row.subject) == ("<1@x>", "subject 1")


def test_the_same_bytes_twice_give_one_row_seen_twice(database: Database) -> None:
    first = record(database, 7)
    again = record_delivery(database, sha256=f"{7:064x}", size=7, envelope=ENVELOPE,
                            headers=HeaderSummary())
    assert again.duplicate and again.message_pk == first and again.times_seen == 2
    rows = list_messages(database)
    assert len(rows) == 1 and rows[0].times_seen == 2


def test_concurrent_deliveries_neither_fail_nor_duplicate(database: Database) -> None:
    errors: list[BaseException] = []

    def deliver(offset: int) -> None:
        try:
            for n in range(20):
                record(database, n)  # every thread delivers the same 20 messages
                record(database, 1000 + offset * 100 + n)  # and 20 of its own
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = list_messages(database)
    assert len(rows) == 20 + 6 * 20
    shared = [row for row in rows if row.size < 20]
    assert all(row.times_seen == 6 for row in shared)


def test_claims_never_hand_one_message_to_two_workers(database: Database) -> None:
    for n in range(60):
        record(database, n)
    claimed: dict[str, list[int]] = {}
    lock = threading.Lock()

    def work(name: str) -> None:
        while batch := claim_messages(database, worker_id=name, limit=4,
                                      lease=timedelta(minutes=5)):
            with lock:
                claimed.setdefault(name, []).extend(m.message_pk for m in batch)

    threads = [threading.Thread(target=work, args=(f"host:{i}:t",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [pk for pks in claimed.values() for pk in pks]
    assert len(every) == 60 and len(set(every)) == 60
    assert count_by_state(database) == {"processing": 60}


def test_a_failing_message_is_retried_then_quarantined(database: Database) -> None:
    pk = record(database, 3)
    states = []
    for _ in range(3):
        (claim,) = claim_messages(database, worker_id="w", limit=5, lease=timedelta(minutes=5))
        assert claim.message_pk == pk
        states.append(mark_failed(database, pk, "w", error="parse: boom", max_attempts=3,
                                  retry_after=timedelta(0)))
    assert states == ["received", "received", "quarantined"]
    row = get_message_by_sha256(database, f"{3:064x}")
    assert row is not None
    assert (row.state, row.quarantine_reason, row.attempts, row.last_error) == (
        "quarantined", "processing-failed", 3, "parse: boom")
    assert claim_messages(database, worker_id="w", limit=5, lease=timedelta(minutes=5)) == []


def test_a_retry_waits_for_its_pause(database: Database) -> None:
    pk = record(database, 4)
    claim_messages(database, worker_id="w", limit=1, lease=timedelta(minutes=5))
    mark_failed(database, pk, "w", error="x", max_attempts=3, retry_after=timedelta(hours=1))
    assert claim_messages(database, worker_id="w", limit=1, lease=timedelta(minutes=5)) == []


def test_only_the_claiming_worker_can_finish(database: Database) -> None:
    pk = record(database, 5)
    claim_messages(database, worker_id="mine", limit=1, lease=timedelta(minutes=5))
    assert not mark_processed(database, pk, "someone-else")
    assert mark_processed(database, pk, "mine")
    row = get_message_by_sha256(database, f"{5:064x}")
    assert row is not None and row.state == "processed" and row.processed_at is not None


def test_an_expired_lease_is_taken_over(database: Database) -> None:
    pk = record(database, 6)
    claim_messages(database, worker_id="dead", limit=1, lease=timedelta(seconds=-1))
    (claim,) = claim_messages(database, worker_id="alive", limit=1, lease=timedelta(minutes=5))
    assert claim.message_pk == pk and claim.attempts == 2


def test_abandoned_claims_are_released_or_quarantined(database: Database) -> None:
    survivor, poison = record(database, 8), record(database, 9)
    for _ in range(3):
        release_abandoned_claims(database, is_abandoned=lambda _: True, max_attempts=3)
        claims = claim_messages(database, worker_id="dead", limit=5, lease=timedelta(minutes=5))
        assert poison in [c.message_pk for c in claims]
        mark_processed(database, survivor, "dead")
    released = release_abandoned_claims(database, is_abandoned=lambda w: w == "dead",
                                        max_attempts=3)
    assert released == 1
    row = get_message_by_sha256(database, f"{9:064x}")
    assert row is not None and row.state == "quarantined"
    assert "worker died" in (row.last_error or "")


def test_a_dead_workers_unstarted_claims_get_their_attempt_back(database: Database) -> None:
    under_way, waiting, last = record(database, 12), record(database, 13), record(database, 14)
    for _ in range(5):  # five kills, each while the first of the batch was under way
        claims = claim_messages(database, worker_id="dead", limit=5, lease=timedelta(minutes=5))
        assert [claim.message_pk for claim in claims] == [under_way, waiting, last]
        assert release_abandoned_claims(database, is_abandoned=lambda _: True,
                                        max_attempts=10) == 3
    attempts = {row.id: (row.state, row.attempts) for row in list_messages(database)}
    assert attempts[under_way] == ("received", 5)
    assert attempts[waiting] == attempts[last] == ("received", 0)


def test_a_foreign_sender_is_recorded_as_quarantined(database: Database) -> None:
    record(database, 10, quarantine_reason=QuarantineReason.FOREIGN_SENDER)
    row = get_message_by_sha256(database, f"{10:064x}")
    assert row is not None and (row.state, row.quarantine_reason) == (
        "quarantined", "foreign-sender")
    assert claim_messages(database, worker_id="w", limit=5, lease=timedelta(minutes=5)) == []


def test_times_are_utc(database: Database) -> None:
    record(database, 11)
    (row,) = list_messages(database)
    assert row.received_at.tzinfo is not None
    assert row.received_at.astimezone(UTC) == row.received_at


def test_a_message_is_found_by_id_or_by_a_prefix_that_may_be_all_digits(
        database: Database) -> None:
    first = record(database, 7)
    digits = record_delivery(database, sha256="123456789012" + "a" * 52, size=1,
                             envelope=ENVELOPE, headers=HeaderSummary("<d@x>", "d")).message_pk
    assert find_message(database, str(first)).id == first  # type: ignore[union-attr]
    # Twelve digits: past what an id column holds, so a prefix of the SHA-256.
    assert find_message(database, "123456789012").id == digits  # type: ignore[union-attr]
    assert find_message(database, "99999999999999") is None
    assert find_message(database, "0000000") is None  # too short for a prefix, no such id
