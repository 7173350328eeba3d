"""RFC 3161 trusted time-stamps: a time-stamp authority (TSA) signs each raw message's SHA-256.

Only the digest leaves the building: the query carries the message's SHA-256 as its message
imprint (hash algorithm SHA-256), a fresh nonce and certReq, so the token holds the TSA's
certificate and `openssl ts -verify -digest <sha256> -in <token> -CAfile <ca>` can check
it later without the message. The answer is checked by `notifier.timestamp_protocol`
(with `rfc3161-client`) before it is kept. The TSA's whole DER
response is kept as a blob in the derived store; its row and the `timestamped` audit event
are committed together (`storage.timestamps`).

A TSA that is down or answers badly never touches intake: this runs from the scheduler, the
failed try is recorded on the message's row (with when to try again: `first_retry_seconds`,
doubling up to `max_retry_seconds`), a streak of failures is logged once at WARNING, and a
later run tries again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import requests
from cryptography import x509

from notifier.clock import Clock, SystemClock
from notifier.settings import TimestampSettings
from notifier.timestamp_protocol import (
    TimestampError,
    TimestampToken,
    TsaUnavailable,
    check_response,
    load_ca_file,
    new_nonce,
    quoted_error,
    timestamp_query,
)
from storage.blobstore import BlobStore
from storage.database import Database
from storage.timestamps import (
    DueTimestamp,
    messages_due_for_timestamp,
    record_timestamp_failure,
    record_timestamp_token,
)

log = logging.getLogger("chikanemail.notifier.timestamps")

QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"
# How many messages one run asks for at most; the next run takes the rest.
DEFAULT_BATCH_SIZE = 50
# A time-stamp response is a few KiB; anything much larger is not one.
_MAX_REPLY_BYTES = 1024 * 1024
# 2**_MAX_DOUBLINGS seconds is far beyond any sensible cap; keeps the float finite.
_MAX_DOUBLINGS = 40


# -- asking ------------------------------------------------------------------------------


def public_url(url: str) -> str:
    """The TSA's URL without any user name or password in it (for rows, audit and log)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))


def _unreachable(error: requests.RequestException) -> str:
    # The interesting part of urllib3's long message, e.g. "[Errno 111] Connection refused".
    match = re.search(r"\[Errno [^\]]+\][^'\")]*", str(error))
    return match.group(0).strip() if match else type(error).__name__


def post_query(url: str, query: bytes, *, timeout: float) -> bytes:
    """POST a DER query to a TSA and return the body of its answer; raises `TsaUnavailable`
    if it cannot be reached or answers with anything but HTTP 200."""
    try:
        with requests.post(url, data=query, timeout=timeout, stream=True,
                           headers={"Content-Type": QUERY_CONTENT_TYPE,
                                    "Accept": REPLY_CONTENT_TYPE}) as reply:
            if reply.status_code != requests.codes.ok:
                raise TsaUnavailable(f"the TSA answered HTTP {reply.status_code}")
            body = bytearray()
            for chunk in reply.iter_content(chunk_size=64 * 1024):
                body += chunk
                if len(body) > _MAX_REPLY_BYTES:
                    raise TimestampError(f"the answer is larger than {_MAX_REPLY_BYTES} "
                                         "bytes: not a time-stamp response")
            return bytes(body)
    except requests.Timeout as error:
        raise TsaUnavailable(f"the TSA did not answer within {timeout:g} s") from error
    except requests.RequestException as error:
        raise TsaUnavailable(f"the TSA is unreachable ({_unreachable(error)})") from error


def request_token(url: str, digest: bytes, *, timeout: float,
                  roots: Sequence[x509.Certificate] = ()) -> TimestampToken:
    """Ask the TSA at `url` to time-stamp a SHA-256 digest; the checked token."""
    nonce = new_nonce()
    response = post_query(url, timestamp_query(digest, nonce), timeout=timeout)
    gen_time = check_response(response, digest=digest, nonce=nonce, roots=roots)
    return TimestampToken(response=response, gen_time=gen_time)


def retry_delay(failed_attempts: int, settings: TimestampSettings) -> timedelta:
    """How long to wait after the `failed_attempts`-th failed try: doubling, capped."""
    doublings = min(max(failed_attempts - 1, 0), _MAX_DOUBLINGS)
    seconds = settings.first_retry_seconds * 2.0**doublings
    return timedelta(seconds=min(settings.max_retry_seconds, seconds))


# -- the job -----------------------------------------------------------------------------


class TimestampJob:
    """Gets a token for every raw message that has none; for the scheduler, run often.

    Does nothing when `settings.tsa_url` is empty. One job per daemon; its runs must not
    overlap (the scheduler runs each job once at a time).
    """

    def __init__(self, database: Database, derived_store: BlobStore,
                 settings: TimestampSettings, clock: Clock | None = None, *,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.database = database
        self.derived_store = derived_store
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.batch_size = batch_size
        self.tsa_url = public_url(settings.tsa_url)
        self.roots = (load_ca_file(settings.ca_file)
                      if settings.tsa_url and settings.ca_file else [])
        self._failures_in_a_row = 0

    @property
    def enabled(self) -> bool:
        """Whether a TSA is configured."""
        return bool(self.settings.tsa_url)

    def run_due(self, now: datetime | None = None) -> int:
        """Ask for the tokens that are due now; how many tokens were stored.

        Stops at the first try that finds the TSA unreachable (the rest wait for the next
        run); a bad answer for one message does not stop the others.
        """
        if not self.enabled:
            return 0
        now = now or self.clock.now()
        stored = 0
        for due in messages_due_for_timestamp(self.database, now=now, limit=self.batch_size):
            try:
                token = self._ask(due)
            except TimestampError as error:
                self._record_failure(due, str(error), now)
                if isinstance(error, TsaUnavailable):
                    break
                continue
            if self._store(due, token, now):
                stored += 1
        if stored:
            log.info("time-stamped %d messages tsa=%s", stored, self.tsa_url)
        return stored

    def _ask(self, due: DueTimestamp) -> TimestampToken:
        """The checked token for one message; raises `TimestampError` if there is none."""
        try:
            return request_token(self.settings.tsa_url, bytes.fromhex(due.message_sha256),
                                 timeout=self.settings.timeout_seconds, roots=self.roots)
        except TimestampError:
            raise
        except Exception as error:
            # A library choking on a strange answer: still a bad answer, recorded and tried
            # again later, not a run that fails on the same message every time.
            log.debug("unexpected error while asking for a time-stamp", exc_info=True)
            raise TimestampError(f"unexpected {type(error).__name__} ({quoted_error(error)})") \
                from error

    def _store(self, due: DueTimestamp, token: TimestampToken, now: datetime) -> bool:
        """Keep the token blob, then its row and audit event; True if it was recorded."""
        # Held until the row is committed, so retention cannot remove an identical token
        # file between our put and our commit.
        with self.derived_store.shared_lock():
            token_sha256 = self.derived_store.put(token.response)
            recorded = record_timestamp_token(self.database, due.message_sha256,
                                              tsa_url=self.tsa_url, token_sha256=token_sha256,
                                              gen_time=token.gen_time, now=now)
        if self._failures_in_a_row:
            log.info("time-stamps work again after %d failed tries tsa=%s",
                     self._failures_in_a_row, self.tsa_url)
            self._failures_in_a_row = 0
        log.debug("message time-stamped sha256=%s gen_time=%s token=%s recorded=%s",
                  due.message_sha256, token.gen_time.isoformat(), token_sha256, recorded)
        return recorded

    def _record_failure(self, due: DueTimestamp, error: str, now: datetime) -> None:
        """Note the failed try on the message's row, and in the log once per streak."""
        delay = retry_delay(due.failed_attempts + 1, self.settings)
        attempts = record_timestamp_failure(self.database, due.message_sha256,
                                            tsa_url=self.tsa_url, error=error,
                                            next_attempt_at=now + delay, now=now)
        self._failures_in_a_row += 1
        level = logging.WARNING if self._failures_in_a_row == 1 else logging.DEBUG
        log.log(level, "no time-stamp, will retry (intake is not affected) tsa=%s "
                "sha256=%s attempt=%s in %.0f s error=%s", self.tsa_url, due.message_sha256,
                attempts, delay.total_seconds(), error)
