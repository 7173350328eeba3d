"""Read the few header values kept on a message row, without ever failing on bad input."""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from intake.parse.header_policy import BOUNDED_POLICY
from storage.blobstore import BlobStore
from storage.messages import HeaderSummary

log = logging.getLogger("chikanemail.intake.headers")

# Enough for any sane header block; a 200 KB header (real mail has them) is still read whole.
_MAX_HEADER_BYTES = 1024 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_VALUE_CHARS = 998


def parse_header_block(store: BlobStore, sha256: str) -> EmailMessage:
    """The header block of a stored message, parsed (never fails: an empty one on errors)."""
    with store.open(sha256) as handle:
        head = handle.read(_MAX_HEADER_BYTES)
    match = _HEADER_END.search(head)
    block = head[: match.end()] if match else head
    try:
        headers = BytesHeaderParser(policy=BOUNDED_POLICY).parsebytes(block)
    except Exception:  # the raw blob is safe; a parser bug must not stop the pipeline
        log.warning("header block could not be parsed sha256=%s", sha256)
        return EmailMessage()
    assert isinstance(headers, EmailMessage)
    return headers


def header_str(headers: EmailMessage, name: str) -> str | None:
    """A header's value as text, or None when it is missing or cannot be read."""
    try:
        value = headers.get(name)
    except Exception:  # a malformed value: treat as missing
        return None
    return None if value is None else str(value)


def summarize_headers(raw: bytes) -> HeaderSummary:
    """Message-ID and Subject of a raw message; None for any value that cannot be read."""
    match = _HEADER_END.search(raw, 0, _MAX_HEADER_BYTES)
    block = raw[: match.end()] if match else raw[:_MAX_HEADER_BYTES]
    try:
        headers = BytesHeaderParser(policy=BOUNDED_POLICY).parsebytes(block)
    except Exception:  # a parser bug must not stop intake: the raw bytes are already safe
        log.warning("header block could not be parsed; row keeps no Message-ID or Subject")
        return HeaderSummary()
    return HeaderSummary(
        message_id=_header_text(headers, "Message-ID"),
        subject=_header_text(headers, "Subject"),
        from_address=first_address(_header_text(headers, "From")),
    )


def first_address(value: str | None) -> str | None:
    """The first address with an "@" in a header value, lower-cased; None if there is none."""
    if not value:
        return None
    for _name, address in getaddresses([value]):
        if "@" in address:
            return address.strip().lower()
    return None


def _header_text(headers: object, name: str) -> str | None:
    try:
        value = headers.get(name)  # type: ignore[attr-defined]
        if value is None:
            return None
        text = " ".join(str(value).split())
    except Exception:  # malformed encoded words and the like: keep the row, lose the label
        return None
    return text[:_MAX_VALUE_CHARS] or None
