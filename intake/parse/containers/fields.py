"""Turn what the TNEF and .msg libraries hand back into ContainerContents fields.

Shared by intake.parse.containers.tnef and intake.parse.containers.outlook_msg: opening
without raising, collecting flags while reading, the header facts of a container's copy of
the internet headers (a ForwardedOriginal), code pages, and bodies as text and as parts.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable
from datetime import datetime
from email.parser import HeaderParser
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any, TypeVar

import RTFDE
from extract_msg.utils import stripRtf

from intake.parse.containers.contents import (
    FLAG_PARTLY_READ,
    FLAG_UNREADABLE,
    ROLE_BODY,
    ContainerContents,
    ContainerItem,
)
from intake.parse.header_policy import BOUNDED_POLICY
from storage.forwarded_original import ForwardedOriginal

log = logging.getLogger("chikanemail.intake.containers")

T = TypeVar("T")

# RTFDE needs about a second per 40 KB of RTF; bigger bodies are kept as RTF only.
_MAX_RTF_TO_DECODE = 256 * 1024
_RTF_HEADER_SCAN = 4096

_BLANK = " \t\r\n\x00"

_CODEPAGE_CODECS = {
    1200: "utf-16-le",
    1201: "utf-16-be",
    20127: "ascii",
    20866: "koi8-r",
    21866: "koi8-u",
    50220: "iso2022_jp",
    51932: "euc_jp",
    54936: "gb18030",
    65001: "utf-8",
    **{28590 + n: f"iso8859-{n}" for n in range(1, 10)},
    28603: "iso8859-13",
    28605: "iso8859-15",
}


class Flags:
    """Flags in the order first raised, each once."""

    def __init__(self, *initial: str) -> None:
        self._flags: list[str] = []
        for flag in initial:
            self.add(flag)

    def add(self, flag: str) -> None:
        if flag not in self._flags:
            self._flags.append(flag)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._flags)


def open_or_flag(kind: str, what: str, read: Callable[[], ContainerContents]) -> ContainerContents:
    """What `read` opened; if it raised, contents of `kind` flagged unreadable.

    A bug in reading a container must not stop intake: the raw bytes are kept all the same.
    """
    try:
        return read()
    except Exception as error:
        log.warning("%s could not be opened (%s)", what, type(error).__name__)
        log.debug("%s open failure", what, exc_info=True)
        return ContainerContents(kind=kind, flags=(FLAG_UNREADABLE,))


def attempt(flags: Flags, read: Callable[[], T], flag: str = FLAG_PARTLY_READ) -> T | None:
    """The value read, or None with the flag raised if the library failed reading it."""
    try:
        return read()
    except Exception as error:
        log.debug("container value unreadable (%s)", type(error).__name__, exc_info=True)
        flags.add(flag)
        return None


# --- header facts (both kinds) ----------------------------------------------------------


def header_facts(text: str | None, rule: str) -> ForwardedOriginal:
    """What a container's copy of the original internet headers says, where readable."""
    if not text:
        return ForwardedOriginal(rule=rule)
    # Outlook puts this line in front of some header blocks.
    prefix = "Microsoft Mail Internet Headers Version 2.0"
    if text.startswith(prefix):
        text = text[len(prefix) :].lstrip()
    try:
        headers = HeaderParser(policy=BOUNDED_POLICY).parsestr(text, headersonly=True)
    except Exception:
        return ForwardedOriginal(rule=rule)
    from_text = _header_value(headers, "From")
    from_name, from_address = parseaddr(from_text) if from_text else ("", "")
    date_raw = _header_value(headers, "Date")
    return ForwardedOriginal(
        rule=rule,
        from_name=from_name or None,
        from_address=from_address or None,
        to=_header_value(headers, "To"),
        subject=_header_value(headers, "Subject"),
        message_id=_header_value(headers, "Message-ID"),
        date=_parse_date(date_raw),
        date_raw=date_raw,
    )


def _header_value(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
        text = None if value is None else " ".join(str(value).split())
    except Exception:  # malformed encoded words and the like: lose the value, keep the rest
        return None
    return text or None


def _parse_date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except Exception:
        return None


def pick_date(*candidates: datetime | None) -> datetime | None:
    """The first timezone-aware candidate, else the first one at all."""
    present = [value for value in candidates if value is not None]
    aware = [value for value in present if value.tzinfo is not None]
    ranked = aware or present
    return ranked[0] if ranked else None


def first_text(*values: object) -> str | None:
    """The first non-blank string, without outer whitespace and C string terminators."""
    for value in values:
        if isinstance(value, str) and (text := value.strip(_BLANK)):
            return text
    return None


def first_address(*values: object) -> str | None:
    """The first value that is an internet address (Exchange X.500 addresses are not)."""
    for value in values:
        if isinstance(value, str) and "@" in value:
            return value.strip()
    return None


# --- text helpers -----------------------------------------------------------------------


def codec_for_codepage(codepage: object) -> str | None:
    """A Python codec for a Windows code page number, if there is one."""
    if not isinstance(codepage, int) or isinstance(codepage, bool):
        return None
    return known_codec(_CODEPAGE_CODECS.get(codepage, f"cp{codepage}"))


def known_codec(name: object) -> str | None:
    """The Python codec of an encoding name a library handed back, if there is one."""
    if not isinstance(name, str):
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def as_text(value: object, codec: str | None) -> str | None:
    """A library's str or bytes value as text (undecodable bytes replaced)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode(codec or "utf-8", errors="replace")
        except LookupError:
            return bytes(value).decode("utf-8", errors="replace")
    return None


def field_text(value: object, codec: str | None) -> str | None:
    """A body as text for the contents' fields: without the C string terminator some carry."""
    text = as_text(value, codec)
    return text.rstrip("\x00") or None if text is not None else None


def body_item(value: object, subtype: str, codec: str | None) -> ContainerItem | None:
    """A body as a part: library bytes kept as they are, library text stored as UTF-8."""
    charset: str | None
    if isinstance(value, str):
        if not value:
            return None
        data, charset = value.encode("utf-8", errors="surrogatepass"), "utf-8"
    elif isinstance(value, bytes | bytearray):
        if not value:
            return None
        data, charset = bytes(value), codec
    else:
        return None
    content_type = f"text/{subtype}; charset={charset}" if charset else f"text/{subtype}"
    return ContainerItem(filename=None, content_type=content_type, data=data, role=ROLE_BODY)


def rtf_item(rtf: bytes) -> ContainerItem:
    return ContainerItem(filename=None, content_type="application/rtf", data=rtf, role=ROLE_BODY)


def bodies_from_rtf(rtf: bytes | None) -> tuple[str | None, str | None]:
    """(html, text) encapsulated in an RTF body; (None, None) for native RTF or on errors."""
    if not rtf or len(rtf) > _MAX_RTF_TO_DECODE:
        return None, None
    header = rtf[:_RTF_HEADER_SCAN]
    if b"\\fromhtml" not in header and b"\\fromtext" not in header:
        return None, None  # native rich text: kept as application/rtf only
    try:
        end = rtf.rfind(b"}")
        deencapsulator = RTFDE.DeEncapsulator(stripRtf(rtf[: end + 1]))
        deencapsulator.deencapsulate()
        if deencapsulator.content_type == "html":
            return field_text(deencapsulator.html, "utf-8"), None
        if deencapsulator.content_type == "text":
            return None, field_text(deencapsulator.text, "utf-8")
    except Exception as error:
        log.debug("RTF body not de-encapsulated (%s)", type(error).__name__, exc_info=True)
    return None, None
