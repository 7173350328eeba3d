"""RFC 3161 time-stamps of raw messages, against a local TSA run by openssl."""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rfc3161_client import HashAlgorithm, TimestampRequestBuilder, decode_timestamp_response
from sqlalchemy import select

from intake.service.config import AppConfig
from intake.service.daemon import Services, open_services
from notifier.clock import ManualClock
from notifier.settings import TimestampSettings
from notifier.timestamp_protocol import timestamp_query, with_sorted_certificates
from notifier.timestamps import TimestampJob, public_url
from storage import audit
from storage.blobstore import BlobStore
from storage.messages import DeliveryEnvelope
from storage.models import AuditEvent, Message, MessageTimestamp
from storage.timestamps import timestamp_of, token_for_message
from tests.mail_flow import database_of, report, send
from tests.support import DaemonThread, wait_until
from tests.tsa import LocalTsa, TsaFiles, make_tsa_files

START = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
FIRST_RETRY = 60.0
MAX_RETRY = 200.0


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TsaFiles:
    """The test TSA's CA (made once for the module)."""
    return make_tsa_files(tmp_path_factory.mktemp("tsa-ca"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> TsaFiles:
    """Another CA, which did not issue the test TSA's certificate."""
    return make_tsa_files(tmp_path_factory.mktemp("other-ca"), name="Stranger")


@pytest.fixture
def tsa(authority: TsaFiles, tmp_path: Path) -> Iterator[LocalTsa]:
    """The local TSA, answering."""
    with LocalTsa(authority, tmp_path / "tsa-work") as running:
        yield running


def stamping(config: AppConfig, tsa: LocalTsa, **overrides: Any) -> AppConfig:
    """The config with time-stamps from the local TSA, checked against its root CA."""
    settings = TimestampSettings(tsa_url=tsa.url, ca_file=str(tsa.authority.root_pem),
                                 timeout_seconds=10.0, first_retry_seconds=FIRST_RETRY,
                                 max_retry_seconds=MAX_RETRY)
    return replace(config, timestamp=replace(settings, **overrides))


@pytest.fixture
def services(config: AppConfig) -> Iterator[Services]:
    """The accept path and database of the test's config."""
    opened = open_services(config)
    yield opened
    opened.close()


def accept(services: Services, text: str) -> str:
    """Accept one raw message the way every receiver does; its SHA-256."""
    raw = f"From: Ansat <ansat@kommune.example>\r\nSubject: {text}\r\n\r\n{text}\r\n".encode()
    return services.intake.accept_message(raw, DeliveryEnvelope(source="ingest")).sha256


def job_for(config: AppConfig, services: Services,
            clock: ManualClock | None = None) -> TimestampJob:
    return TimestampJob(services.database, BlobStore(config.storage.derived_root),
                        config.timestamp, clock or ManualClock(START))


def openssl_verify(token: bytes, digest_hex: str, ca_file: Path,
                   directory: Path) -> subprocess.CompletedProcess[str]:
    """What a recipient of an export runs on `timestamps/<sha256>.tsr`."""
    token_file = directory / f"{digest_hex}.tsr"
    token_file.write_bytes(token)
    return subprocess.run(["openssl", "ts", "-verify", "-digest", digest_hex,
                           "-in", str(token_file), "-CAfile", str(ca_file)],
                          capture_output=True, text=True, check=False, timeout=60)


def timestamped_events(services: Services) -> list[AuditEvent]:
    with services.database.read() as session:
        rows = list(session.execute(
            select(AuditEvent).where(AuditEvent.action == "timestamped")
            .order_by(AuditEvent.seq)).scalars())
        session.expunge_all()
    return rows


def test_the_query_is_what_rfc3161_client_builds_for_the_same_digest() -> None:
    for n in range(20):  # nonces with and without the top bit set
        data = f"message {n}".encode()
        built = (TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256)
                 .nonce(nonce=True).cert_request(cert_request=True).build())
        assert built.nonce is not None
        ours = timestamp_query(hashlib.sha256(data).digest(), built.nonce)
        assert ours == built.as_bytes()
    with pytest.raises(ValueError, match="32 bytes"):
        timestamp_query(b"\x00" * 20, 1)


def test_accepted_messages_get_tokens_openssl_verifies(
    config: AppConfig, tsa: LocalTsa, tmp_path: Path
) -> None:
    config = stamping(config, tsa)
    services = open_services(config)
    try:
        first, second = accept(services, "first"), accept(services, "second")
        job = job_for(config, services)
        assert job.run_due() == 2
        assert len(tsa.queries) == 2
        # Only the digest went out: each query is a few dozen bytes holding the SHA-256.
        for query, sha256 in zip(tsa.queries, (first, second), strict=True):
            assert len(query) < 80 and bytes.fromhex(sha256) in query
            assert b"first" not in query and b"second" not in query
        derived = BlobStore(config.storage.derived_root)
        for sha256, reply in zip((first, second), tsa.replies, strict=True):
            row = timestamp_of(services.database, sha256)
            assert row is not None and row.token_sha256 is not None
            assert row.tsa_url == tsa.url and row.attempts == 1 and row.last_error is None
            assert row.gen_time is not None
            assert abs(row.gen_time - datetime.now(UTC)) < timedelta(minutes=5)
            token = token_for_message(services.database, derived, sha256)
            assert token == reply  # the TSA's bytes, as it sent them
            assert not services.store.exists(row.token_sha256)  # derived, not evidence
            verified = openssl_verify(token, sha256, tsa.authority.root_pem, tmp_path)
            assert verified.returncode == 0, verified.stderr
            assert "Verification: OK" in verified.stdout
            other = openssl_verify(token, hashlib.sha256(b"other").hexdigest(),
                                   tsa.authority.root_pem, tmp_path)
            assert other.returncode != 0
            assert "Verification: OK" not in other.stdout
        events = timestamped_events(services)
        assert [event.message_sha256 for event in events] == [first, second]
        row = timestamp_of(services.database, first)
        assert row is not None and row.gen_time is not None
        assert events[0].details == {"tsa_url": tsa.url, "token_sha256": row.token_sha256,
                                     "gen_time": audit.format_utc(row.gen_time)}
        assert audit.check_chain(services.database).ok
        # Done is done: nothing is asked again.
        assert job.run_due() == 0
        assert len(tsa.queries) == 2
        assert token_for_message(services.database, derived, "0" * 64) is None
    finally:
        services.close()


def test_openssl_lists_the_chain_in_an_order_that_is_sorted_before_decoding(
    config: AppConfig, tsa: LocalTsa
) -> None:
    config = stamping(config, tsa)
    services = open_services(config)
    try:
        accept(services, "chain order")
        assert job_for(config, services).run_due() == 1
    finally:
        services.close()
    original = tsa.replies[0]
    sorted_copy = with_sorted_certificates(original)
    assert len(sorted_copy) == len(original)
    if sorted_copy != original:  # openssl lists the signer first, which is usually unsorted
        with pytest.raises(ValueError, match="InvalidSetOrdering"):
            decode_timestamp_response(original)
    decoded = decode_timestamp_response(sorted_copy)
    assert len(decoded.signed_data.certificates) == 2  # the TSA's and the intermediate
    assert with_sorted_certificates(sorted_copy) == sorted_copy
    assert with_sorted_certificates(b"\x30\x03garbage") == b"\x30\x03garbage"


def test_a_tsa_that_is_down_never_stops_intake_and_a_later_run_gets_the_token(
    config: AppConfig, tsa: LocalTsa, tmp_path: Path
) -> None:
    config = stamping(config, tsa)
    services = open_services(config)
    try:
        tsa.stop()
        sha256 = accept(services, "while the TSA is down")  # accepted all the same
        clock = ManualClock(START)
        job = job_for(config, services, clock)
        assert job.run_due() == 0
        row = timestamp_of(services.database, sha256)
        assert row is not None and row.token_sha256 is None
        assert row.attempts == 1
        assert row.last_error is not None and "unreachable" in row.last_error
        assert row.next_attempt_at == START + timedelta(seconds=FIRST_RETRY)

        tsa.start()  # back, on the same port
        clock.advance(timedelta(seconds=FIRST_RETRY - 1))
        assert job.run_due() == 0  # not due yet: the TSA is not asked
        assert tsa.queries == []
        clock.advance(timedelta(seconds=1))
        assert job.run_due() == 1
        row = timestamp_of(services.database, sha256)
        assert row is not None and row.token_sha256 is not None
        assert row.attempts == 2 and row.last_error is None and row.next_attempt_at is None
        token = token_for_message(services.database, BlobStore(config.storage.derived_root),
                                  sha256)
        assert token is not None
        verified = openssl_verify(token, sha256, tsa.authority.root_pem, tmp_path)
        assert verified.returncode == 0 and "Verification: OK" in verified.stdout
        assert [event.message_sha256 for event in timestamped_events(services)] == [sha256]
        assert audit.check_chain(services.database).ok
    finally:
        services.close()


def test_retries_back_off_doubling_to_the_cap_and_warn_once_per_streak(
    config: AppConfig, tsa: LocalTsa, caplog: pytest.LogCaptureFixture
) -> None:
    config = stamping(config, tsa)
    services = open_services(config)
    try:
        first, second = accept(services, "Secret-one"), accept(services, "Secret-two")
        tsa.mode = "unavailable"
        clock = ManualClock(START)
        job = job_for(config, services, clock)
        caplog.set_level(logging.DEBUG, logger="chikanemail.notifier.timestamps")
        expected_waits = [60.0, 120.0, MAX_RETRY, MAX_RETRY]
        for attempt, wait in enumerate(expected_waits, start=1):
            assert job.run_due() == 0
            row = timestamp_of(services.database, first)
            assert row is not None and row.attempts == attempt
            assert row.last_error == "the TSA answered HTTP 503"
            assert row.next_attempt_at == clock.now() + timedelta(seconds=wait)
            # The run stopped at the unavailable TSA: the second message was not tried.
            assert timestamp_of(services.database, second) is None
            clock.set(row.next_attempt_at)
        assert len(tsa.queries) == len(expected_waits)
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert first in warnings[0].getMessage()
        ours = [record.getMessage() for record in caplog.records
                if record.name == "chikanemail.notifier.timestamps"]
        assert not any("Secret" in text or "ansat" in text for text in ours)

        tsa.mode = "reply"
        caplog.clear()
        assert job.run_due() == 2  # both: the first is due again, the second never waited
        assert any("work again" in record.getMessage() for record in caplog.records)
        tsa.mode = "unavailable"
        third = accept(services, "three")
        caplog.clear()
        assert job.run_due() == 0  # a new streak is reported again
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        assert timestamp_of(services.database, third) is not None
    finally:
        services.close()


def test_a_tsa_that_does_not_answer_is_given_up_on_after_the_timeout(
    config: AppConfig, tsa: LocalTsa
) -> None:
    config = stamping(config, tsa, timeout_seconds=0.3)
    services = open_services(config)
    try:
        first, second = accept(services, "first"), accept(services, "second")
        tsa.mode = "hang"
        assert job_for(config, services).run_due() == 0
        row = timestamp_of(services.database, first)
        assert row is not None and row.last_error == "the TSA did not answer within 0.3 s"
        assert timestamp_of(services.database, second) is None  # one wait per run, not two
        assert len(tsa.queries) == 1
    finally:
        services.close()


@pytest.mark.parametrize(("mode", "error"), [
    ("garbage", "not a time-stamp response"),
    ("other-digest", "another digest"),
])
def test_a_wrong_answer_is_recorded_and_not_kept(
    config: AppConfig, tsa: LocalTsa, mode: str, error: str
) -> None:
    config = stamping(config, tsa)
    services = open_services(config)
    try:
        first, second = accept(services, "first"), accept(services, "second")
        tsa.mode = mode  # type: ignore[assignment]
        assert job_for(config, services).run_due() == 0
        for sha256 in (first, second):  # a bad answer does not stop the run
            row = timestamp_of(services.database, sha256)
            assert row is not None and row.token_sha256 is None
            assert row.last_error is not None and error in row.last_error
            assert row.next_attempt_at == START + timedelta(seconds=FIRST_RETRY)
        assert timestamped_events(services) == []
    finally:
        services.close()


def test_a_token_that_does_not_chain_to_the_ca_file_is_refused(
    config: AppConfig, tsa: LocalTsa, stranger: TsaFiles
) -> None:
    config = stamping(config, tsa, ca_file=str(stranger.root_pem))
    services = open_services(config)
    try:
        sha256 = accept(services, "wrong CA")
        assert job_for(config, services).run_due() == 0
        row = timestamp_of(services.database, sha256)
        assert row is not None and row.token_sha256 is None
        assert row.last_error is not None
        assert row.last_error.startswith("the token does not verify against the CA file")
        assert "unable to get local issuer certificate" in row.last_error
        # Without a CA file the token is kept (status, digest and nonce are still checked).
        unchecked = replace(config, timestamp=replace(config.timestamp, ca_file=""))
        clock = ManualClock(START + timedelta(seconds=FIRST_RETRY))
        assert job_for(unchecked, services, clock).run_due() == 1
    finally:
        services.close()


def test_nothing_is_asked_when_no_tsa_is_configured(
    config: AppConfig, tsa: LocalTsa, services: Services
) -> None:
    assert config.timestamp.tsa_url == ""
    accept(services, "no TSA")
    job = job_for(config, services)
    assert not job.enabled
    assert job.run_due() == 0
    assert tsa.queries == []
    with services.database.read() as session:
        assert session.execute(select(MessageTimestamp)).first() is None


def test_credentials_in_the_tsa_url_stay_out_of_rows_and_audit() -> None:
    assert public_url("https://user:secret@tsa.example:8443/tsr?x=1") == \
        "https://tsa.example:8443/tsr?x=1"
    assert public_url("http://tsa.example/tsr") == "http://tsa.example/tsr"


def test_mail_delivered_to_a_running_daemon_gets_a_token(
    config: AppConfig, tsa: LocalTsa, tmp_path: Path
) -> None:
    """The daemon's own scheduler asks for the token: no test code runs the job."""
    config = replace(stamping(config, tsa), plan=replace(config.plan, tick_seconds=0.1))
    derived = BlobStore(config.storage.derived_root)
    with DaemonThread(config) as daemon:
        send(daemon, report("Tidsstempel"))
        database = database_of(daemon)
        try:
            def stored_message() -> str:
                with database.read() as session:
                    return session.execute(select(Message.sha256)).scalar_one_or_none() or ""

            sha256 = wait_until(stored_message, message="the delivered message")
            token = wait_until(lambda: token_for_message(database, derived, sha256),
                               message="the daemon's time-stamp token")
        finally:
            database.dispose()
    verified = openssl_verify(token, sha256, tsa.authority.root_pem, tmp_path)
    assert verified.returncode == 0 and "Verification: OK" in verified.stdout
