"""Open Outlook containers (TNEF winmail.dat streams and .msg files) into their parts.

Nothing here raises on bad input: what cannot be read is flagged, and everything read before
the damage is kept. Container bytes are only ever held in memory; a filename found inside a
container is metadata and never becomes a path.
"""

from __future__ import annotations

import codecs
import io
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import HeaderParser
from email.utils import parseaddr, parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar

import olefile
import RTFDE
from extract_msg import openMsg
from extract_msg.enums import ErrorBehavior
from extract_msg.msg_classes import MSGFile
from extract_msg.utils import stripRtf
from tnefparse import TNEF

from intake.header_policy import BOUNDED_POLICY

log = logging.getLogger("chikanemail.intake.containers")

T = TypeVar("T")

# Flags a ContainerContents can carry.
FLAG_UNREADABLE = "container-unreadable"  # not opened at all: no items
FLAG_PARTLY_READ = "container-partly-read"  # damaged or cut short: items/fields may be missing
FLAG_ITEM_UNREADABLE = "container-item-unreadable"  # an attachment's bytes could not be read
FLAG_TRAILING_DATA = "container-trailing-data"  # bytes after the last TNEF attribute, ignored
FLAG_CHECKSUM_MISMATCH = "container-checksum-mismatch"  # a TNEF attribute fails its checksum
FLAG_TOO_DEEP = "container-too-deep"  # an embedded message beyond max_depth was not opened
FLAG_EMBEDDED_NOT_EXPORTED = "embedded-message-not-exported"  # its item has empty bytes

ROLE_ATTACHMENT = "attachment"
ROLE_BODY = "body"

TNEF_CONTENT_TYPE = "application/ms-tnef"
OUTLOOK_MSG_CONTENT_TYPE = "application/vnd.ms-outlook"

_TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78 little-endian
_CFB_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
# The interface ID in front of a PT_OBJECT value that holds an embedded TNEF message.
_IMESSAGE_IID = bytes.fromhex("0703020000000000c000000000000046")
_IID_LENGTH = 16

# TNEF framing: signature (4) and key (2), then attributes of level (1), id (2), type (2),
# length (4), value, checksum (2). tnefparse reads on while more than 12 bytes are left.
_TNEF_HEADER = 6
_ATTRIBUTE_OVERHEAD = 11
_TNEF_MIN_ATTRIBUTE = 12
_LEVEL_MESSAGE = 0x01
_LEVEL_ATTACHMENT = 0x02
_ATT_RENDER_DATA = 0x9002  # starts a new attachment
_ATT_MAPI_PROPS = 0x9003  # the message's MAPI properties
_ATT_RECIPIENTS = 0x9004  # the recipient table: rows of MAPI properties
_ATT_ATTACHMENT = 0x9005  # an attachment's MAPI properties

# How tnefparse reads MAPI property values (tnefparse.mapi.parse_property).
_MAPI_FIXED_SIZES = {
    0x0002: 2,  # short (an odd number of shorts or booleans is padded to 4 bytes)
    0x000B: 2,  # boolean
    0x0003: 4,  # long
    0x0004: 4,  # float
    0x000A: 4,  # error
    0x0005: 8,  # double
    0x0006: 8,  # currency
    0x0007: 8,  # application time
    0x0014: 8,  # 64-bit integer
    0x0040: 8,  # system time
    0x0048: 16,  # CLSID
}
_MAPI_VARIABLE_TYPES = frozenset({0x0000, 0x000D, 0x001E, 0x001F, 0x0102})
_MAPI_MULTI_VALUE = 0x1000
_MAPI_NAMED_ID = 0x8000
_PR_ATTACH_DATA = 0x3701
_LIST_ABANDONED = -1  # tnefparse gives up on a property list half-way, keeping what it read
_MAX_MISSING_PROPERTIES = 64

# PR_ATTACH_DATA_BIN / PR_ATTACH_DATA_OBJ as they appear in a TNEF MAPI block (type, id).
_ATTACH_DATA_TAGS = ((b"\x02\x01\x01\x37", False), (b"\x0d\x00\x01\x37", True))
_MAX_TAG_CANDIDATES = 64

# tnefparse copies the rest of the stream once per attribute (quadratic on hostile input):
# past this many copied bytes, or this many attributes, properties and values, the stream is
# cut short (see "keeping tnefparse out of trouble").
_TNEF_COPY_BUDGET = 4 * 1024**3
_TNEF_MAX_STEPS = 200_000
_TNEF_MAX_EMBEDDED_DEPTH = 16

# MAPI property ids read from TNEF streams.
_PR_SUBJECT = 0x0037
_PR_CLIENT_SUBMIT_TIME = 0x0039
_PR_SENT_REPRESENTING_NAME = 0x0042
_PR_SENT_REPRESENTING_EMAIL = 0x0065
_PR_TRANSPORT_HEADERS = 0x007D
_PR_SENDER_NAME = 0x0C1A
_PR_SENDER_EMAIL = 0x0C1F
_PR_DISPLAY_TO = 0x0E04
_PR_INTERNET_MESSAGE_ID = 0x1035
_PR_ATTACH_LONG_FILENAME = 0x3707
_PR_ATTACH_MIME_TAG = 0x370E
_PR_INTERNET_CPID = 0x3FDE
_PR_SENDER_SMTP = 0x5D01
_PR_SENT_REPRESENTING_SMTP = 0x5D02
_ATT_SUBJECT = 0x8004
_ATT_FROM = 0x8000
_ATT_DATE_SENT = 0x8005

# extract-msg: keep going past broken attachments and bad RTF, but let OLE defects raise at
# first so a damaged file is known to be damaged (then it is opened leniently and flagged).
_MSG_ERRORS = (
    ErrorBehavior.ATTACH_SUPPRESS_ALL
    | ErrorBehavior.RTFDE
    | ErrorBehavior.STANDARDS_VIOLATION
    | ErrorBehavior.NAMED_NAME_STREAM
)
_MSG_CONTENT_TYPES = frozenset({OUTLOOK_MSG_CONTENT_TYPE, "application/x-msg"})

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


@dataclass(frozen=True)
class ContainerItem:
    """One part found in a container: an attachment, or one form of the container's body."""

    filename: str | None  # metadata only, never used as a path
    content_type: str | None  # declared (or, for bodies and embedded messages, derived)
    data: bytes  # the attachment's bytes; for an embedded .msg a standalone .msg export
    role: str  # ROLE_ATTACHMENT or ROLE_BODY
    nested: ContainerContents | None = None  # an embedded message, opened


@dataclass(frozen=True)
class ContainerContents:
    """What a TNEF stream or Outlook message holds, and what could not be read of it."""

    kind: str  # "tnef" or "outlook-msg"
    items: tuple[ContainerItem, ...] = ()
    body_text: str | None = None
    body_html: str | None = None
    from_name: str | None = None
    from_address: str | None = None
    date: datetime | None = None
    date_raw: str | None = None
    subject: str | None = None
    to: str | None = None
    message_id: str | None = None
    flags: tuple[str, ...] = ()


def is_tnef(data: bytes, declared_type: str | None = None, filename: str | None = None) -> bool:
    """Whether the bytes are a TNEF stream.

    Only the signature decides: a part declared application/ms-tnef or named winmail.dat
    without it is not TNEF (real mail carries PNGs named winmail.dat).
    """
    del declared_type, filename  # accepted for symmetry with is_outlook_msg; bytes decide
    try:
        return bytes(data[:4]) == _TNEF_SIGNATURE
    except Exception:
        return False


def is_outlook_msg(
    data: bytes, declared_type: str | None = None, filename: str | None = None
) -> bool:
    """Whether the bytes are an Outlook .msg file.

    Needs the OLE compound-file signature. If the compound file can be read, its streams
    decide; if it is too damaged to read, a .msg name or Outlook content type decides.
    """
    try:
        if bytes(data[:8]) != _CFB_SIGNATURE:
            return False
        structure = _msg_structure(data)
        if structure is not None:
            return structure
        declared = (declared_type or "").split(";")[0].strip().lower()
        return declared in _MSG_CONTENT_TYPES or (filename or "").lower().endswith(".msg")
    except Exception:
        return False


def open_tnef(data: bytes, *, depth: int = 0, max_depth: int = 10) -> ContainerContents:
    """The attachments, bodies and header facts of a TNEF stream, never raising.

    Embedded TNEF messages are opened as nested contents down to max_depth.
    """
    try:
        return _open_tnef(data, depth, max_depth)
    except Exception as error:  # a bug here must not stop intake: the raw bytes are kept
        log.warning("TNEF stream could not be opened (%s)", type(error).__name__)
        log.debug("TNEF open failure", exc_info=True)
        return ContainerContents(kind="tnef", flags=(FLAG_UNREADABLE,))


def open_outlook_msg(data: bytes, *, depth: int = 0, max_depth: int = 10) -> ContainerContents:
    """The attachments, bodies and header facts of an Outlook .msg file, never raising.

    Embedded Outlook messages are opened as nested contents down to max_depth.
    """
    try:
        return _open_outlook_msg(data, depth, max_depth)
    except Exception as error:  # a bug here must not stop intake: the raw bytes are kept
        log.warning("Outlook message could not be opened (%s)", type(error).__name__)
        log.debug("Outlook message open failure", exc_info=True)
        return ContainerContents(kind="outlook-msg", flags=(FLAG_UNREADABLE,))


class _Flags:
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


def _attempt(flags: _Flags, read: Callable[[], T], flag: str = FLAG_PARTLY_READ) -> T | None:
    """The value read, or None with the flag raised if the library failed reading it."""
    try:
        return read()
    except Exception as error:
        log.debug("container value unreadable (%s)", type(error).__name__, exc_info=True)
        flags.add(flag)
        return None


# --- header facts (both kinds) ----------------------------------------------------------


@dataclass(frozen=True)
class _HeaderFacts:
    from_name: str | None = None
    from_address: str | None = None
    to: str | None = None
    subject: str | None = None
    message_id: str | None = None
    date: datetime | None = None
    date_raw: str | None = None


def _header_facts(text: str | None) -> _HeaderFacts:
    """What a container's copy of the original internet headers says, where readable."""
    if not text:
        return _HeaderFacts()
    # Outlook puts this line in front of some header blocks.
    prefix = "Microsoft Mail Internet Headers Version 2.0"
    if text.startswith(prefix):
        text = text[len(prefix) :].lstrip()
    try:
        headers = HeaderParser(policy=BOUNDED_POLICY).parsestr(text, headersonly=True)
    except Exception:
        return _HeaderFacts()
    from_text = _header_value(headers, "From")
    from_name, from_address = parseaddr(from_text) if from_text else ("", "")
    date_raw = _header_value(headers, "Date")
    return _HeaderFacts(
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


def _pick_date(*candidates: datetime | None) -> datetime | None:
    """The first timezone-aware candidate, else the first one at all."""
    present = [value for value in candidates if value is not None]
    aware = [value for value in present if value.tzinfo is not None]
    ranked = aware or present
    return ranked[0] if ranked else None


def _first_text(*values: object) -> str | None:
    """The first non-blank string, without outer whitespace and C string terminators."""
    for value in values:
        if isinstance(value, str) and (text := value.strip(_BLANK)):
            return text
    return None


def _first_address(*values: object) -> str | None:
    """The first value that is an internet address (Exchange X.500 addresses are not)."""
    for value in values:
        if isinstance(value, str) and "@" in value:
            return value.strip()
    return None


# --- text helpers -----------------------------------------------------------------------


def _codec_for_codepage(codepage: object) -> str | None:
    """A Python codec for a Windows code page number, if there is one."""
    if not isinstance(codepage, int) or isinstance(codepage, bool):
        return None
    name = _CODEPAGE_CODECS.get(codepage, f"cp{codepage}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _as_text(value: object, codec: str | None) -> str | None:
    """A library's str or bytes value as text (undecodable bytes replaced)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode(codec or "utf-8", errors="replace")
        except LookupError:
            return bytes(value).decode("utf-8", errors="replace")
    return None


def _field_text(value: object, codec: str | None) -> str | None:
    """A body as text for the contents' fields: without the C string terminator some carry."""
    text = _as_text(value, codec)
    return text.rstrip("\x00") or None if text is not None else None


def _body_item(value: object, subtype: str, codec: str | None) -> ContainerItem | None:
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


def _rtf_item(rtf: bytes) -> ContainerItem:
    return ContainerItem(filename=None, content_type="application/rtf", data=rtf, role=ROLE_BODY)


def _bodies_from_rtf(rtf: bytes | None) -> tuple[str | None, str | None]:
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
            return _field_text(deencapsulator.html, "utf-8"), None
        if deencapsulator.content_type == "text":
            return None, _field_text(deencapsulator.text, "utf-8")
    except Exception as error:
        log.debug("RTF body not de-encapsulated (%s)", type(error).__name__, exc_info=True)
    return None, None


# --- TNEF -------------------------------------------------------------------------------


def _u16(data: bytes | memoryview, offset: int) -> int:
    return int(struct.unpack_from("<H", data, offset)[0])


def _u32(data: bytes | memoryview, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


# --- keeping tnefparse out of trouble ---------------------------------------------------
#
# tnefparse trusts the counts in a stream: a MAPI block claiming four billion properties makes
# it loop (and log a warning) four billion times, a multi-valued property claiming as many
# values makes it build that many objects, and it copies the rest of the stream once per
# attribute. One flipped byte in a winmail.dat would stop intake for hours. So the stream is
# walked first, mirroring the offsets tnefparse's MAPI reader (tnefparse.mapi.decode_mapi)
# computes, and tnefparse is only given what it can read in bounded time.


@dataclass(frozen=True)
class _Framing:
    parser_input: bytes  # the stream minus what tnefparse cannot be given
    flags: tuple[str, ...]


class _Budget:
    """The work tnefparse may do on one stream, counted while walking it."""

    def __init__(self) -> None:
        self.copied = 0  # bytes tnefparse copies: the rest of a stream, once per attribute
        self.steps = 0  # attributes, properties and values

    def spent(self) -> bool:
        return self.copied > _TNEF_COPY_BUDGET or self.steps > _TNEF_MAX_STEPS


def _tnef_framing(data: bytes) -> _Framing:
    """What of the stream tnefparse is given, and what the attribute framing shows.

    The stream is cut before garbage and before the work budget runs out; an attribute
    whose properties tnefparse could not read in bounded time is left out.
    """
    flags = _Flags()
    budget = _Budget()
    view = memoryview(data)
    size = len(data)
    offset, stop = _TNEF_HEADER, size
    dropped: list[tuple[int, int]] = []
    while offset + _TNEF_MIN_ATTRIBUTE < size:
        level = data[offset]
        if level not in (_LEVEL_MESSAGE, _LEVEL_ATTACHMENT):
            flags.add(FLAG_TRAILING_DATA)  # not an attribute: garbage after the stream
            stop = offset
            break
        declared = _u32(data, offset + 5) + _ATTRIBUTE_OVERHEAD
        length = min(size - offset, declared)
        budget.copied += size - offset
        budget.steps += 1
        value = view[offset + 9 : offset + length - 2]  # as tnefparse cuts it
        safe = _attribute_is_safe(level, _u16(data, offset + 1), value, budget, 0)
        if budget.spent():
            flags.add(FLAG_PARTLY_READ)
            stop = offset
            break
        if not safe:
            flags.add(FLAG_PARTLY_READ)
            dropped.append((offset, offset + length))
        if declared > size - offset:
            flags.add(FLAG_PARTLY_READ)  # the stream ends inside this attribute
        offset += length
    else:
        if offset < size:  # too short for an attribute: the start of a cut one, or garbage
            cut = data[offset] in (_LEVEL_MESSAGE, _LEVEL_ATTACHMENT)
            flags.add(FLAG_PARTLY_READ if cut else FLAG_TRAILING_DATA)
    if stop == size and not dropped:
        return _Framing(data, flags.as_tuple())
    pieces, start = [], 0
    for begin, end in dropped:
        pieces.append(view[start:begin])
        start = end
    pieces.append(view[start:stop])
    return _Framing(b"".join(pieces), flags.as_tuple())


def _attribute_is_safe(
    level: int, attr_id: int, value: memoryview, budget: _Budget, depth: int
) -> bool:
    """Whether tnefparse reads the attribute in bounded time and without raising out."""
    if level == _LEVEL_ATTACHMENT:
        if attr_id != _ATT_ATTACHMENT:
            return True
    elif attr_id == _ATT_RECIPIENTS:
        return _recipient_table_is_safe(value, budget, depth)
    elif attr_id != _ATT_MAPI_PROPS:
        return True
    return _property_list_end(value, 0, budget, depth) is not None


def _recipient_table_is_safe(value: memoryview, budget: _Budget, depth: int) -> bool:
    """Whether every row of a recipient table is a readable property list."""
    size = len(value)
    if size < 4:
        return False  # tnefparse raises reading the row count
    offset = 4
    for _ in range(_u32(value, 0)):
        if offset + 4 > size:
            return False  # tnefparse raises reading the row's property count
        end = _property_list_end(value, offset, budget, depth)
        if end is None or end == _LIST_ABANDONED:
            return False
        offset = end
    return True


def _property_list_end(data: memoryview, offset: int, budget: _Budget, depth: int) -> int | None:
    """Where tnefparse's reading of a MAPI property list ends.

    _LIST_ABANDONED if it gives up half-way (it logs and keeps what it read), None if it would
    loop on counts the data does not hold or raise out of the whole stream.
    """
    size = len(data)
    if offset + 4 > size:
        return None  # the count itself is unreadable: tnefparse raises
    count = _u32(data, offset)
    offset += 4
    for index in range(count):
        if offset >= size:  # tnefparse loops on, once per property the data does not hold
            return offset if count - index <= _MAX_MISSING_PROPERTIES else None
        budget.steps += 1
        end = _property_end(data, offset, budget, depth)
        if end is None or end == _LIST_ABANDONED or budget.spent():
            return None if budget.spent() else end
        offset = end
    return offset


def _property_end(data: memoryview, offset: int, budget: _Budget, depth: int) -> int | None:
    """Where tnefparse's reading of one MAPI property ends (see _property_list_end)."""
    size = len(data)
    if offset + 4 > size:
        return _LIST_ABANDONED
    prop_type, prop_id = _u16(data, offset), _u16(data, offset + 2)
    offset += 4
    if prop_id >= _MAPI_NAMED_ID:  # GUID, kind, then a numeric id or a padded UTF-16 name
        if offset + 24 > size:
            return _LIST_ABANDONED
        kind = _u32(data, offset + 16)
        offset += 20
        if kind == 0:
            offset += 4
        else:
            name_length = _u32(data, offset)
            name_length += -name_length % 4
            try:
                bytes(data[offset + 4 : offset + 4 + name_length]).decode("utf-16")
            except UnicodeDecodeError:
                return _LIST_ABANDONED
            offset += 4 + name_length
    values, multi = 1, False
    if prop_type & _MAPI_MULTI_VALUE:
        prop_type ^= _MAPI_MULTI_VALUE
        if offset + 4 > size:
            return _LIST_ABANDONED
        values = _u32(data, offset) or 1  # tnefparse reads a zero count as single-valued
        multi = _u32(data, offset) != 0
        offset += 4
    fixed = _MAPI_FIXED_SIZES.get(prop_type)
    if fixed is not None:
        if values > (size - offset) // fixed + _MAX_MISSING_PROPERTIES:
            return None  # tnefparse builds one value per claimed one, present or not
        budget.steps += values
        offset += values * fixed
        return offset + 2 if values % 2 and fixed == 2 else offset
    if prop_type not in _MAPI_VARIABLE_TYPES:
        return _LIST_ABANDONED  # tnefparse raises on a type it does not know
    for _ in range(values):
        count = 1
        if not multi:
            if offset + 4 > size:
                return _LIST_ABANDONED
            count = _u32(data, offset)
            offset += 4
        if prop_id == _PR_ATTACH_DATA and (values != 1 or count != 1):
            return None  # tnefparse would join the values; no real stream has several
        for _ in range(count):
            if offset + 4 > size:
                return _LIST_ABANDONED
            length = _u32(data, offset)
            length += -length % 4
            offset += 4
            if prop_id == _PR_ATTACH_DATA and not _embedded_stream_is_safe(
                data[offset : offset + length], budget, depth
            ):
                return None
            offset += length
            budget.steps += 1
            if budget.spent():
                return None
    return offset


def _embedded_stream_is_safe(value: memoryview, budget: _Budget, depth: int) -> bool:
    """Whether an attachment value that is an embedded message is one tnefparse can read.

    tnefparse parses embedded messages itself, while reading the outer stream, to any depth.
    """
    if bytes(value[:_IID_LENGTH]) != _IMESSAGE_IID:
        return True
    inner = bytes(value).rstrip(b"\x00")[_IID_LENGTH:]
    if depth >= _TNEF_MAX_EMBEDDED_DEPTH or not inner.startswith(_TNEF_SIGNATURE):
        return False  # too deep, or tnefparse raises and loses the rest of the outer stream
    view, size = memoryview(inner), len(inner)
    offset = _TNEF_HEADER
    while offset + _TNEF_MIN_ATTRIBUTE < size:  # every attribute: tnefparse reads garbage too
        length = min(size - offset, _u32(inner, offset + 5) + _ATTRIBUTE_OVERHEAD)
        budget.copied += size - offset
        budget.steps += 1
        value = view[offset + 9 : offset + length - 2]
        level, attr_id = inner[offset], _u16(inner, offset + 1)
        if not _attribute_is_safe(level, attr_id, value, budget, depth + 1) or budget.spent():
            return False
        offset += length
    return True


def _parse_tnef(data: bytes) -> tuple[Any, bool]:
    """The tnefparse object and whether it parsed to the end.

    tnefparse does all its work in the constructor; running it on a bare instance keeps
    every attribute it read before an exception.
    """
    tnef = TNEF.__new__(TNEF)
    try:
        tnef.__init__(data)
    except Exception as error:
        log.info("TNEF stream read only in part (%s)", type(error).__name__)
        log.debug("TNEF parse failure", exc_info=True)
        return tnef, False
    return tnef, True


def _open_tnef(data: bytes, depth: int, max_depth: int) -> ContainerContents:
    if not is_tnef(data):
        return ContainerContents(kind="tnef", flags=(FLAG_UNREADABLE,))
    data = bytes(data)
    framing = _tnef_framing(data)
    flags = _Flags(*framing.flags)
    tnef, complete = _parse_tnef(framing.parser_input)
    if not complete:
        flags.add(FLAG_PARTLY_READ)
    objects = list(getattr(tnef, "objects", None) or [])
    if any(not getattr(obj, "good_checksum", True) for obj in objects):
        flags.add(FLAG_CHECKSUM_MISMATCH)

    oem_codec = _known_codec(getattr(tnef, "codepage", None))
    mapi = _tnef_mapi_values(tnef, flags)
    internet_codec = _codec_for_codepage(mapi.get(_PR_INTERNET_CPID))
    message = _tnef_message_values(tnef)

    items: list[ContainerItem] = []
    body = getattr(tnef, "body", None)
    html = getattr(tnef, "htmlbody", None)
    text_codec = oem_codec if isinstance(body, bytes) else internet_codec or oem_codec
    for item in (
        _body_item(body, "plain", text_codec),
        _body_item(html, "html", internet_codec or oem_codec),
    ):
        if item is not None:
            items.append(item)
    rtf = _tnef_rtf(tnef, flags, items)

    blocks = _attachment_blocks(objects)
    for index, attachment in enumerate(list(getattr(tnef, "attachments", None) or [])):
        block_list = blocks[index] if index < len(blocks) else []
        item = _attempt(
            flags,
            partial(
                _tnef_attachment_item, attachment, block_list, oem_codec, depth, max_depth, flags
            ),
            FLAG_ITEM_UNREADABLE,
        )
        if item is not None:
            items.append(item)

    html_text = _field_text(html, internet_codec or oem_codec)
    body_text = _field_text(body, text_codec)
    if html_text is None and body_text is None:
        html_text, body_text = _bodies_from_rtf(rtf)
    facts = _header_facts(_first_text(mapi.get(_PR_TRANSPORT_HEADERS)))
    sender = message.get(_ATT_FROM)
    sender_name, sender_address = sender if isinstance(sender, tuple) else (None, None)
    submit_time = mapi.get(_PR_CLIENT_SUBMIT_TIME)
    date_sent = message.get(_ATT_DATE_SENT)
    if not objects or (not complete and not (items or mapi or message)):
        return ContainerContents(kind="tnef", flags=(FLAG_UNREADABLE,))
    return ContainerContents(
        kind="tnef",
        items=tuple(items),
        body_text=body_text,
        body_html=html_text,
        from_name=facts.from_name
        or _first_text(
            mapi.get(_PR_SENT_REPRESENTING_NAME), mapi.get(_PR_SENDER_NAME), sender_name
        ),
        from_address=facts.from_address
        or _first_address(
            mapi.get(_PR_SENT_REPRESENTING_SMTP),
            mapi.get(_PR_SENT_REPRESENTING_EMAIL),
            mapi.get(_PR_SENDER_SMTP),
            mapi.get(_PR_SENDER_EMAIL),
            sender_address,
        ),
        date=_pick_date(
            facts.date,
            submit_time.replace(tzinfo=UTC) if isinstance(submit_time, datetime) else None,
            date_sent if isinstance(date_sent, datetime) else None,
        ),
        date_raw=facts.date_raw,
        subject=_first_text(mapi.get(_PR_SUBJECT), message.get(_ATT_SUBJECT)) or facts.subject,
        to=facts.to or _first_text(mapi.get(_PR_DISPLAY_TO)),
        message_id=facts.message_id or _first_text(mapi.get(_PR_INTERNET_MESSAGE_ID)),
        flags=flags.as_tuple(),
    )


def _known_codec(name: object) -> str | None:
    if not isinstance(name, str):
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _tnef_mapi_values(tnef: Any, flags: _Flags) -> dict[int, object]:
    """The message-level MAPI properties tnefparse kept, by property id (first wins)."""
    values: dict[int, object] = {}
    for prop in list(getattr(tnef, "mapiprops", None) or []):
        name = getattr(prop, "name", None)
        if not isinstance(name, int) or name in values or _is_named(prop):
            continue
        value = _attempt(flags, partial(_property_data, prop))
        if value is not None:
            values[name] = value
    return values


def _is_named(prop: Any) -> bool:
    """Whether a MAPI property is a named one (its id then means nothing on its own)."""
    return bool(getattr(prop, "guid", None))


def _property_data(prop: Any) -> object:
    return prop.data  # a property: tnefparse decodes the value when it is read


def _tnef_message_values(tnef: Any) -> dict[int, object]:
    """Subject, sender and sent date from the TNEF message attributes."""
    codec = _known_codec(getattr(tnef, "codepage", None))
    values: dict[int, object] = {}
    for obj in list(getattr(tnef, "msgprops", None) or []):
        name, data = getattr(obj, "name", None), getattr(obj, "data", None)
        if not isinstance(name, int):
            continue
        if (name, type(data)) in ((_ATT_SUBJECT, str), (_ATT_DATE_SENT, datetime)):
            values[name] = data
        elif name == _ATT_FROM and isinstance(data, tuple) and len(data) == 3:
            sender, _, address = data
            values[name] = (_as_text(sender, codec), _as_text(address, codec))
    return values


def _tnef_rtf(tnef: Any, flags: _Flags, items: list[ContainerItem]) -> bytes | None:
    """Add the RTF body as a part (decompressed if possible); return the RTF bytes."""
    compressed = getattr(tnef, "_rtfbody", None)
    if not compressed:
        return None
    rtf = _attempt(flags, lambda: tnef.rtfbody, FLAG_ITEM_UNREADABLE)
    if isinstance(rtf, bytes) and rtf:
        items.append(_rtf_item(rtf))
        return rtf
    if isinstance(compressed, bytes):  # keep the compressed form rather than nothing
        flags.add(FLAG_ITEM_UNREADABLE)
        items.append(ContainerItem(None, None, compressed, ROLE_BODY))
    return None


def _attachment_blocks(objects: list[Any]) -> list[list[bytes]]:
    """Each attachment's raw MAPI property blocks, grouped the way tnefparse groups them."""
    blocks: list[list[bytes]] = []
    for obj in objects:
        if getattr(obj, "name", None) == _ATT_RENDER_DATA:
            blocks.append([])
        if (
            blocks
            and getattr(obj, "level", None) == _LEVEL_ATTACHMENT
            and getattr(obj, "name", None) == _ATT_ATTACHMENT
            and isinstance(obj.data, bytes)
        ):
            blocks[-1].append(obj.data)
    return blocks


def _tnef_attachment_item(
    attachment: Any,
    blocks: list[bytes],
    codec: str | None,
    depth: int,
    max_depth: int,
    flags: _Flags,
) -> ContainerItem | None:
    """One TNEF attachment with its exact bytes, opened further if it is an embedded message."""
    library_data = attachment.data if isinstance(attachment.data, bytes) else b""
    declared = _declared_attach_data(blocks, library_data)
    data, iid = library_data, None
    if declared is not None:
        value, is_object = declared
        data, iid = (value[_IID_LENGTH:], value[:_IID_LENGTH]) if is_object else (value, None)
    mapi = {
        getattr(prop, "name", None): prop
        for prop in list(getattr(attachment, "mapi_attrs", None) or [])
        if not _is_named(prop)
    }
    content_type = _first_text(_mapi_data(mapi.get(_PR_ATTACH_MIME_TAG)))
    nested = None
    if iid == _IMESSAGE_IID or (iid is None and hasattr(attachment, "embed")):
        content_type = TNEF_CONTENT_TYPE
        if depth >= max_depth:
            flags.add(FLAG_TOO_DEEP)
        else:
            nested = open_tnef(data, depth=depth + 1, max_depth=max_depth)
    filename = _first_text(
        _mapi_data(mapi.get(_PR_ATTACH_LONG_FILENAME)), _tnef_short_name(attachment, codec)
    )
    if not data and filename is None:  # begun but never filled in: the stream was cut
        flags.add(FLAG_ITEM_UNREADABLE)
        return None
    return ContainerItem(filename, content_type, data, ROLE_ATTACHMENT, nested)


def _mapi_data(prop: Any) -> object:
    try:
        return None if prop is None else prop.data
    except Exception:
        return None


def _tnef_short_name(attachment: Any, codec: str | None) -> str | None:
    """The attachment title; tnefparse decodes it as UTF-8, which fails on code-page names."""
    try:
        name = attachment.name
    except UnicodeDecodeError:
        name = _as_text(getattr(attachment, "_name", None), codec)
    return name if isinstance(name, str) else None


def _declared_attach_data(blocks: list[bytes], library_data: bytes) -> tuple[bytes, bool] | None:
    """PR_ATTACH_DATA exactly as declared in the stream, and whether it is a PT_OBJECT.

    tnefparse strips every trailing NUL byte from MAPI binary values (so an OLE document
    loses the zeros at its end) and keeps the object IID in front of OLE storages. The value
    is found again in the raw property block and accepted only if it is what tnefparse read.
    """
    for block in reversed(blocks):
        for tag, is_object in _ATTACH_DATA_TAGS:
            position, tries = block.find(tag), 0
            while position >= 0 and tries < _MAX_TAG_CANDIDATES:
                value = _declared_value(block, position, library_data)
                if value is not None:
                    return value, is_object
                position, tries = block.find(tag, position + 1), tries + 1
    return None


def _declared_value(block: bytes, position: int, library_data: bytes) -> bytes | None:
    """The single binary value whose tag is at position, if tnefparse read it as library_data."""
    if position + 12 > len(block) or _u32(block, position + 4) != 1:
        return None
    length = _u32(block, position + 8)
    start = position + 12
    if start + length > len(block) or length < len(library_data):
        return None
    head = library_data[:32]  # cheap test before copying a value that may be megabytes long
    if not (block.startswith(head, start) or block.startswith(head, start + _IID_LENGTH)):
        return None
    value = block[start : start + length]
    stripped = value.rstrip(b"\x00")
    if stripped == library_data:
        return value
    if stripped.startswith(_IMESSAGE_IID) and stripped[_IID_LENGTH:] == library_data:
        return value
    return None


# --- Outlook .msg -----------------------------------------------------------------------


def _msg_structure(data: bytes) -> bool | None:
    """Whether a readable compound file holds a message; None if it cannot be read."""
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception:
        return None
    try:
        names = [str(kid.name) for kid in ole.root.kids]
        return "__properties_version1.0" in names and any(
            name.startswith("__substg1.0_") for name in names
        )
    except Exception:
        return None
    finally:
        ole.close()


def _open_msg_file(data: bytes) -> tuple[MSGFile | None, bool]:
    """The opened message and whether OLE defects had to be tolerated to open it."""
    for lenient in (False, True):
        errors = _MSG_ERRORS | ErrorBehavior.OLE_DEFECT_INCORRECT if lenient else _MSG_ERRORS
        try:
            # A file object, never bytes: olefile takes short bytes for a filename.
            # strict=False: a message class extract-msg does not know still has its streams.
            msg = openMsg(
                io.BytesIO(data), errorBehavior=errors, delayAttachments=True, strict=False
            )
            return msg, lenient
        except Exception as error:
            log.debug("Outlook message not opened (%s)", type(error).__name__, exc_info=True)
    return None, False


def _open_outlook_msg(data: bytes, depth: int, max_depth: int) -> ContainerContents:
    if bytes(data[:8]) != _CFB_SIGNATURE or _msg_structure(data) is False:
        return ContainerContents(kind="outlook-msg", flags=(FLAG_UNREADABLE,))
    msg, lenient = _open_msg_file(bytes(data))
    if msg is None:
        log.warning("Outlook message could not be opened")
        return ContainerContents(kind="outlook-msg", flags=(FLAG_UNREADABLE,))
    flags = _Flags(FLAG_PARTLY_READ) if lenient else _Flags()
    try:
        return _read_msg(msg, depth, max_depth, flags)
    finally:
        try:
            msg.close()
        except Exception:
            log.debug("Outlook message not closed cleanly", exc_info=True)


def _read_msg(msg: MSGFile, depth: int, max_depth: int, flags: _Flags) -> ContainerContents:
    """The contents of an opened message (top-level or embedded)."""

    def string(stream: str) -> str | None:
        return _attempt(flags, lambda: msg.getStringStream(stream))

    facts = _header_facts(_attempt(flags, lambda: getattr(msg, "headerText", None)))
    codec = _codec_for_codepage(_attempt(flags, lambda: msg.getPropertyVal("3FDE0003")))
    plain = string("__substg1.0_1000")
    html = _attempt(flags, lambda: msg.getStream("__substg1.0_10130102"))
    rtf = _attempt(flags, lambda: getattr(msg, "rtfBody", None), FLAG_ITEM_UNREADABLE)

    items = [
        item
        for item in (_body_item(plain, "plain", None), _body_item(html, "html", codec))
        if item is not None
    ]
    if isinstance(rtf, bytes) and rtf:
        items.append(_rtf_item(rtf))
    items.extend(_msg_attachment_items(msg, depth, max_depth, flags))

    html_text = _field_text(html, codec)
    text = _field_text(plain, None)
    if html_text is None or text is None:
        rtf_html, rtf_text = _bodies_from_rtf(rtf if isinstance(rtf, bytes) else None)
        html_text, text = html_text or rtf_html, text or rtf_text
    submit_time = _attempt(flags, lambda: getattr(msg, "date", None))
    return ContainerContents(
        kind="outlook-msg",
        items=tuple(items),
        body_text=text,
        body_html=html_text,
        from_name=facts.from_name
        or _first_text(string("__substg1.0_0042"), string("__substg1.0_0C1A")),
        from_address=facts.from_address
        or _first_address(
            string("__substg1.0_5D02"),
            string("__substg1.0_0065"),
            string("__substg1.0_5D01"),
            string("__substg1.0_0C1F"),
        ),
        date=_pick_date(facts.date, submit_time if isinstance(submit_time, datetime) else None),
        date_raw=facts.date_raw,
        subject=_first_text(string("__substg1.0_0037")) or facts.subject,
        to=facts.to or _first_text(_attempt(flags, lambda: getattr(msg, "to", None))),
        message_id=facts.message_id or _first_text(string("__substg1.0_1035")),
        flags=flags.as_tuple(),
    )


def _msg_attachment_items(
    msg: MSGFile, depth: int, max_depth: int, flags: _Flags
) -> list[ContainerItem]:
    """Every attachment, each opened on its own so one broken attachment loses only itself."""
    folders = _attempt(flags, partial(_attachment_folders, msg))
    items: list[ContainerItem] = []
    for folder in folders or []:
        attachment = _attempt(
            flags, partial(msg.initAttachmentFunc, msg, folder), FLAG_ITEM_UNREADABLE
        )
        if attachment is None:
            continue
        item = _attempt(
            flags,
            partial(_msg_attachment_item, attachment, depth, max_depth, flags),
            FLAG_ITEM_UNREADABLE,
        )
        if item is not None:
            items.append(item)
    return items


def _attachment_folders(msg: MSGFile) -> list[str]:
    """The message's attachment storages, in order."""
    storages = msg.listDir(streams=False, storages=True, includePrefix=False)
    return sorted({entry[0] for entry in storages if entry[0].startswith("__attach")})


def _msg_attachment_item(
    attachment: Any, depth: int, max_depth: int, flags: _Flags
) -> ContainerItem | None:
    name = _first_text(_attempt(flags, lambda: attachment.name))
    data = attachment.data
    if isinstance(data, bytes):
        mimetype = _first_text(_attempt(flags, lambda: attachment.mimetype))
        return ContainerItem(name, mimetype, data, ROLE_ATTACHMENT)
    if isinstance(data, MSGFile):
        return _embedded_msg_item(name, data, depth, max_depth, flags)
    # Broken, unsupported or reference-only attachments have no bytes to keep.
    flags.add(FLAG_ITEM_UNREADABLE)
    return None


def _embedded_msg_item(
    name: str | None, embedded: MSGFile, depth: int, max_depth: int, flags: _Flags
) -> ContainerItem:
    """An embedded message: a standalone .msg rebuilt from its storage, and its contents."""
    exported = _attempt(flags, embedded.exportBytes, FLAG_EMBEDDED_NOT_EXPORTED)
    if not exported:
        flags.add(FLAG_EMBEDDED_NOT_EXPORTED)
    nested = None
    if depth >= max_depth:
        flags.add(FLAG_TOO_DEEP)
    else:
        nested = _read_msg(embedded, depth + 1, max_depth, _Flags())
    return ContainerItem(name, OUTLOOK_MSG_CONTENT_TYPE, exported or b"", ROLE_ATTACHMENT, nested)
