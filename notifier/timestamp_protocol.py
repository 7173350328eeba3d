"""RFC 3161 messages: the time-stamp query over a SHA-256 digest, and the check of a TSA's
answer with `rfc3161-client` (status granted, imprint equal to our digest, nonce ours, and,
given CA certificates, signature and chain up to them at the token's time).

Nothing here talks to the network; `notifier.timestamps` asks the TSA and keeps the tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from storage.errors import ChikanemailError

SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
# Errors quoted from libraries are cut to this length in the row and the log.
_MAX_QUOTED = 300


class TimestampError(ChikanemailError):
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


def quoted_error(error: BaseException) -> str:
    """A library's error as one short line, for rows and the log."""
    return _short(str(error)) or type(error).__name__


def _verify_failure(error: BaseException) -> str:
    # OpenSSL's reason, e.g. "Verify error: unable to get local issuer certificate", is at
    # the end of a long error stack.
    match = re.search(r'data: "([^"]+)"', str(error))
    return _short(match.group(1)) if match else quoted_error(error)


def _decode(response: bytes) -> TimeStampResponse:
    try:
        return decode_timestamp_response(with_sorted_certificates(response))
    except ValueError as error:
        raise TimestampError(f"the answer is not a time-stamp response ({quoted_error(error)})") \
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
        raise TimestampError(f"the token cannot be read ({quoted_error(error)})") from error
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
                         f"({quoted_error(error)})") from error
