"""RFC 3161 trusted time-stamps: a time-stamp authority (TSA) signs each raw message's SHA-256.

Only the digest leaves the building: the query carries the message's SHA-256 as its message
imprint (hash algorithm SHA-256), a fresh nonce and certReq, so the token holds the TSA's
certificate and `openssl ts -verify -digest <sha256> -in <token> -CAfile <ca>` can check
it later without the message. The answer is decoded and checked with `rfc3161-client`:
status granted, imprint equal to our digest, nonce ours, and, when a CA file is configured,
signature and certificate chain up to that CA at the token's time. The TSA's whole DER
response is kept as a blob in the derived store; its row and the `timestamped` audit event
are committed together (`storage.timestamps`).

A TSA that is down or answers badly never touches intake: this runs from the scheduler, the
failed try is recorded on the message's row (with when to try again: `first_retry_seconds`,
doubling up to `max_retry_seconds`), a streak of failures is logged once at WARNING, and a
later run tries again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from cryptography import x509
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from notifier.clock import Clock, SystemClock
from notifier.settings import TimestampSettings
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
SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
# How many messages one run asks for at most; the next run takes the rest.
DEFAULT_BATCH_SIZE = 50
# A time-stamp response is a few KiB; anything much larger is not one.
_MAX_REPLY_BYTES = 1024 * 1024
# Errors quoted from libraries are cut to this length in the row and the log.
_MAX_QUOTED = 300
# 2**_MAX_DOUBLINGS seconds is far beyond any sensible cap; keeps the float finite.
_MAX_DOUBLINGS = 40


class TimestampError(Exception):
    """No usable token came back for a digest (the TSA refused, or its answer is wrong)."""


class TsaUnavailable(TimestampError):
    """The TSA could not be reached or answered with an HTTP error."""


@dataclass(frozen=True)
class TimestampToken:
    """A checked answer of a TSA: its whole DER TimeStampResp and the time it vouches for."""

    response: bytes
    gen_time: datetime


# -- the query ---------------------------------------------------------------------------
# rfc3161-client builds a query only from the data itself (it hashes what it is given), and
# the data here is a whole raw message (up to 50 MB) whose SHA-256 is already its name. The
# query is four fields, so it is written here for the digest; a test checks that it is
# byte for byte what rfc3161-client's builder makes for the same digest and nonce.

# AlgorithmIdentifier { id-sha256, NULL }, as rfc3161-client and openssl write it.
_SHA256_ALGORITHM = bytes.fromhex("300d06096086480165030402010500")


def _der(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def _der_unsigned(value: int) -> bytes:
    """A non-negative DER INTEGER (a leading zero byte where the top bit is set)."""
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def new_nonce() -> int:
    """A fresh 64-bit nonce for one query."""
    return secrets.randbits(64)


def timestamp_query(digest: bytes, nonce: int) -> bytes:
    """The DER TimeStampReq (RFC 3161 section 2.4.1) over a SHA-256 digest: version 1, the
    digest as message imprint, the nonce, certReq true."""
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError(f"a SHA-256 digest has 32 bytes, not {len(digest)}")
    if nonce < 0:
        raise ValueError("the nonce must not be negative")
    imprint = _der(0x30, _SHA256_ALGORITHM + _der(0x04, digest))
    return _der(0x30, _der_unsigned(1) + imprint + _der_unsigned(nonce) + b"\x01\x01\xff")


# -- the answer --------------------------------------------------------------------------


def _element(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """The DER element at `offset`: (tag, start of content, end of element)."""
    if offset + 2 > end:
        raise ValueError("truncated element")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag number")
    if first < 0x80:
        start, size = offset + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise ValueError("indefinite or oversized length")
        start = offset + 2 + count
        size = int.from_bytes(data[offset + 2:start], "big")
    if start + size > end:
        raise ValueError("element runs past its container")
    return tag, start, start + size


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements inside a constructed element's content: (tag, offset, start, end)."""
    found, offset = [], start
    while offset < end:
        tag, content, after = _element(data, offset, end)
        found.append((tag, offset, content, after))
        offset = after
    return found


def with_sorted_certificates(response: bytes) -> bytes:
    """The response with the certificates of its SignedData in DER order (a SET OF is
    sorted by encoding), or the response unchanged if they already are or it cannot be read.

    openssl's `ts -reply` (and, by public reports, several commercial TSAs) lists the
    certificates in chain order, which rfc3161-client's strict DER parser refuses. The
    signature does not cover that set, so sorting it changes nothing that is checked; the
    original bytes are what is kept.
    """
    try:
        _, start, end = _element(response, 0, len(response))
        token = _children(response, start, end)[1]  # after the PKIStatusInfo
        content = _children(response, token[2], token[3])[1]  # [0] EXPLICIT, after the OID
        signed_data = _children(response, content[2], content[3])[0]
        for tag, _offset, set_start, set_end in _children(response, signed_data[2],
                                                           signed_data[3]):
            if tag == 0xA0:  # certificates [0] IMPLICIT SET OF CertificateChoices
                members = sorted(response[member[1]:member[3]]
                                 for member in _children(response, set_start, set_end))
                return response[:set_start] + b"".join(members) + response[set_end:]
    except (ValueError, IndexError):
        pass
    return response


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED] + "…"


def _quoted(error: BaseException) -> str:
    return _short(str(error)) or type(error).__name__


def _verify_failure(error: BaseException) -> str:
    # OpenSSL's reason, e.g. "Verify error: unable to get local issuer certificate", is at
    # the end of a long error stack.
    match = re.search(r'data: "([^"]+)"', str(error))
    return _short(match.group(1)) if match else _quoted(error)


def _decode(response: bytes) -> TimeStampResponse:
    try:
        return decode_timestamp_response(with_sorted_certificates(response))
    except ValueError as error:
        raise TimestampError(f"the answer is not a time-stamp response ({_quoted(error)})") \
            from error


def check_response(response: bytes, *, digest: bytes, nonce: int,
                   roots: Sequence[x509.Certificate] = ()) -> datetime:
    """The time a TSA's DER response vouches for, if it grants a token over `digest` that
    answers `nonce` (and, with `roots`, is signed by a certificate that chains up to one of
    them at that time); raises `TimestampError` otherwise."""
    decoded = _decode(response)
    if decoded.status != PKIStatus.GRANTED:
        try:
            status = PKIStatus(decoded.status).name.lower()
        except ValueError:
            status = str(decoded.status)
        said = _short(" ".join(decoded.status_string))
        raise TimestampError(f"the TSA did not grant a token (status {status}"
                             f"{': ' + said if said else ''})")
    try:
        info = decoded.tst_info
        imprint = info.message_imprint
        if imprint.hash_algorithm != SHA256_OID or imprint.message != digest:
            raise TimestampError("the token is over another digest than the one asked for")
        if info.nonce != nonce:
            raise TimestampError("the token answers another query (its nonce differs)")
        gen_time = info.gen_time
    except ValueError as error:
        raise TimestampError(f"the token cannot be read ({_quoted(error)})") from error
    if roots:
        verifier = VerifierBuilder(roots=list(roots), nonce=nonce).build()
        try:
            verifier.verify(decoded, digest)
        except (VerificationError, ValueError) as error:
            raise TimestampError(f"the token does not verify against the CA file "
                                 f"({_verify_failure(error)})") from error
    return gen_time if gen_time.tzinfo is not None else gen_time.replace(tzinfo=UTC)


def load_ca_file(path: str) -> list[x509.Certificate]:
    """The certificates (PEM) a token's chain must lead to; raises ValueError if there are
    none in the file."""
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise ValueError(f"timestamp.ca_file {path}: no readable PEM certificate "
                         f"({_quoted(error)})") from error


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
            raise TimestampError(f"unexpected {type(error).__name__} ({_quoted(error)})") \
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
