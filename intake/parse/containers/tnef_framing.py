"""Check a TNEF stream's framing before tnefparse reads it, so it reads in bounded time.

Walks the attributes and MAPI property lists the way tnefparse would, and decides what of
the stream tnefparse is given: cut before trailing garbage or a spent work budget, and
without the attributes it could not read without looping, exhausting memory or raising.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from intake.parse.containers.contents import FLAG_PARTLY_READ, FLAG_TRAILING_DATA
from intake.parse.containers.fields import Flags

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78 little-endian
# The interface ID in front of a PT_OBJECT value that holds an embedded TNEF message.
IMESSAGE_IID = bytes.fromhex("0703020000000000c000000000000046")
IID_LENGTH = 16

# TNEF framing: signature (4) and key (2), then attributes of level (1), id (2), type (2),
# length (4), value, checksum (2). tnefparse reads on while more than 12 bytes are left.
_TNEF_HEADER = 6
_ATTRIBUTE_OVERHEAD = 11
_TNEF_MIN_ATTRIBUTE = 12
_LEVEL_MESSAGE = 0x01
LEVEL_ATTACHMENT = 0x02
_ATT_MAPI_PROPS = 0x9003  # the message's MAPI properties
_ATT_RECIPIENTS = 0x9004  # the recipient table: rows of MAPI properties
ATT_ATTACHMENT = 0x9005  # an attachment's MAPI properties

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

# tnefparse copies the rest of the stream once per attribute (quadratic on hostile input):
# past this many copied bytes, or this many attributes, properties and values, the stream is
# cut short (see "keeping tnefparse out of trouble").
_TNEF_COPY_BUDGET = 4 * 1024**3
_TNEF_MAX_STEPS = 200_000
_TNEF_MAX_EMBEDDED_DEPTH = 16


def _u16(data: bytes | memoryview, offset: int) -> int:
    return int(struct.unpack_from("<H", data, offset)[0])


def u32(data: bytes | memoryview, offset: int) -> int:
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


def tnef_framing(data: bytes) -> _Framing:
    """What of the stream tnefparse is given, and what the attribute framing shows.

    The stream is cut before garbage and before the work budget runs out; an attribute
    whose properties tnefparse could not read in bounded time is left out.
    """
    flags = Flags()
    budget = _Budget()
    view = memoryview(data)
    size = len(data)
    offset, stop = _TNEF_HEADER, size
    dropped: list[tuple[int, int]] = []
    while offset + _TNEF_MIN_ATTRIBUTE < size:
        level = data[offset]
        if level not in (_LEVEL_MESSAGE, LEVEL_ATTACHMENT):
            flags.add(FLAG_TRAILING_DATA)  # not an attribute: garbage after the stream
            stop = offset
            break
        declared = u32(data, offset + 5) + _ATTRIBUTE_OVERHEAD
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
            cut = data[offset] in (_LEVEL_MESSAGE, LEVEL_ATTACHMENT)
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
    if level == LEVEL_ATTACHMENT:
        if attr_id != ATT_ATTACHMENT:
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
    for _ in range(u32(value, 0)):
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
    count = u32(data, offset)
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
        kind = u32(data, offset + 16)
        offset += 20
        if kind == 0:
            offset += 4
        else:
            name_length = u32(data, offset)
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
        values = u32(data, offset) or 1  # tnefparse reads a zero count as single-valued
        multi = u32(data, offset) != 0
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
            count = u32(data, offset)
            offset += 4
        if prop_id == _PR_ATTACH_DATA and (values != 1 or count != 1):
            return None  # tnefparse would join the values; no real stream has several
        for _ in range(count):
            if offset + 4 > size:
                return _LIST_ABANDONED
            length = u32(data, offset)
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
    if bytes(value[:IID_LENGTH]) != IMESSAGE_IID:
        return True
    inner = bytes(value).rstrip(b"\x00")[IID_LENGTH:]
    if depth >= _TNEF_MAX_EMBEDDED_DEPTH or not inner.startswith(TNEF_SIGNATURE):
        return False  # too deep, or tnefparse raises and loses the rest of the outer stream
    view, size = memoryview(inner), len(inner)
    offset = _TNEF_HEADER
    while offset + _TNEF_MIN_ATTRIBUTE < size:  # every attribute: tnefparse reads garbage too
        length = min(size - offset, u32(inner, offset + 5) + _ATTRIBUTE_OVERHEAD)
        budget.copied += size - offset
        budget.steps += 1
        value = view[offset + 9 : offset + length - 2]
        level, attr_id = inner[offset], _u16(inner, offset + 1)
        if not _attribute_is_safe(level, attr_id, value, budget, depth + 1) or budget.spent():
            return False
        offset += length
    return True
