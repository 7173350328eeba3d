"""Open TNEF (winmail.dat) streams into their attachments, bodies and header facts.

Nothing here raises on bad input: what cannot be read is flagged, and everything read
before the damage is kept. The stream's framing is checked first
(intake.parse.containers.tnef_framing) so tnefparse is only given what it can read in bounded time.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from tnefparse import TNEF

from intake.parse.containers.contents import (
    FLAG_CHECKSUM_MISMATCH,
    FLAG_ITEM_UNREADABLE,
    FLAG_PARTLY_READ,
    FLAG_TOO_DEEP,
    FLAG_UNREADABLE,
    ROLE_ATTACHMENT,
    ROLE_BODY,
    TNEF_CONTENT_TYPE,
    ContainerContents,
    ContainerItem,
)
from intake.parse.containers.fields import (
    Flags,
    as_text,
    attempt,
    bodies_from_rtf,
    body_item,
    codec_for_codepage,
    field_text,
    first_address,
    first_text,
    header_facts,
    known_codec,
    open_or_flag,
    pick_date,
    rtf_item,
)
from intake.parse.containers.tnef_framing import (
    ATT_ATTACHMENT,
    IID_LENGTH,
    IMESSAGE_IID,
    LEVEL_ATTACHMENT,
    TNEF_SIGNATURE,
    tnef_framing,
    u32,
)

log = logging.getLogger("chikanemail.intake.containers")

_ATT_RENDER_DATA = 0x9002  # starts a new attachment

# PR_ATTACH_DATA_BIN / PR_ATTACH_DATA_OBJ as they appear in a TNEF MAPI block (type, id).
_ATTACH_DATA_TAGS = ((b"\x02\x01\x01\x37", False), (b"\x0d\x00\x01\x37", True))
_MAX_TAG_CANDIDATES = 64

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


def is_tnef(data: bytes, declared_type: str | None = None, filename: str | None = None) -> bool:
    """Whether the bytes are a TNEF stream.

    Only the signature decides: a part declared application/ms-tnef or named winmail.dat
    without it is not TNEF (real mail carries PNGs named winmail.dat).
    """
    del declared_type, filename  # accepted for symmetry with is_outlook_msg; bytes decide
    try:
        return bytes(data[:4]) == TNEF_SIGNATURE
    except Exception:
        return False


def open_tnef(data: bytes, *, depth: int = 0, max_depth: int = 10) -> ContainerContents:
    """The attachments, bodies and header facts of a TNEF stream, never raising.

    Embedded TNEF messages are opened as nested contents down to max_depth.
    """
    return open_or_flag("tnef", "TNEF stream", partial(_open_tnef, data, depth, max_depth))


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
    framing = tnef_framing(data)
    flags = Flags(*framing.flags)
    tnef, complete = _parse_tnef(framing.parser_input)
    if not complete:
        flags.add(FLAG_PARTLY_READ)
    objects = list(getattr(tnef, "objects", None) or [])
    if any(not getattr(obj, "good_checksum", True) for obj in objects):
        flags.add(FLAG_CHECKSUM_MISMATCH)

    oem_codec = known_codec(getattr(tnef, "codepage", None))
    mapi = _tnef_mapi_values(tnef, flags)
    internet_codec = codec_for_codepage(mapi.get(_PR_INTERNET_CPID))
    message = _tnef_message_values(tnef)

    items: list[ContainerItem] = []
    body = getattr(tnef, "body", None)
    html = getattr(tnef, "htmlbody", None)
    text_codec = oem_codec if isinstance(body, bytes) else internet_codec or oem_codec
    for item in (
        body_item(body, "plain", text_codec),
        body_item(html, "html", internet_codec or oem_codec),
    ):
        if item is not None:
            items.append(item)
    rtf = _tnef_rtf(tnef, flags, items)

    blocks = _attachment_blocks(objects)
    for index, attachment in enumerate(list(getattr(tnef, "attachments", None) or [])):
        block_list = blocks[index] if index < len(blocks) else []
        item = attempt(
            flags,
            partial(
                _tnef_attachment_item, attachment, block_list, oem_codec, depth, max_depth, flags
            ),
            FLAG_ITEM_UNREADABLE,
        )
        if item is not None:
            items.append(item)

    html_text = field_text(html, internet_codec or oem_codec)
    body_text = field_text(body, text_codec)
    if html_text is None and body_text is None:
        html_text, body_text = bodies_from_rtf(rtf)
    facts = header_facts(first_text(mapi.get(_PR_TRANSPORT_HEADERS)), "attached-tnef")
    sender = message.get(_ATT_FROM)
    sender_name, sender_address = sender if isinstance(sender, tuple) else (None, None)
    submit_time = mapi.get(_PR_CLIENT_SUBMIT_TIME)
    date_sent = message.get(_ATT_DATE_SENT)
    if not objects or (not complete and not (items or mapi or message)):
        return ContainerContents(kind="tnef", flags=(FLAG_UNREADABLE,))
    original = replace(
        facts,
        from_name=facts.from_name
        or first_text(mapi.get(_PR_SENT_REPRESENTING_NAME), mapi.get(_PR_SENDER_NAME), sender_name),
        from_address=facts.from_address
        or first_address(
            mapi.get(_PR_SENT_REPRESENTING_SMTP),
            mapi.get(_PR_SENT_REPRESENTING_EMAIL),
            mapi.get(_PR_SENDER_SMTP),
            mapi.get(_PR_SENDER_EMAIL),
            sender_address,
        ),
        date=pick_date(
            facts.date,
            submit_time.replace(tzinfo=UTC) if isinstance(submit_time, datetime) else None,
            date_sent if isinstance(date_sent, datetime) else None,
        ),
        subject=first_text(mapi.get(_PR_SUBJECT), message.get(_ATT_SUBJECT)) or facts.subject,
        to=facts.to or first_text(mapi.get(_PR_DISPLAY_TO)),
        message_id=facts.message_id or first_text(mapi.get(_PR_INTERNET_MESSAGE_ID)),
    )
    return ContainerContents(
        kind="tnef",
        items=tuple(items),
        body_text=body_text,
        body_html=html_text,
        original=original,
        flags=flags.as_tuple(),
    )


def _tnef_mapi_values(tnef: Any, flags: Flags) -> dict[int, object]:
    """The message-level MAPI properties tnefparse kept, by property id (first wins)."""
    values: dict[int, object] = {}
    for prop in list(getattr(tnef, "mapiprops", None) or []):
        name = getattr(prop, "name", None)
        if not isinstance(name, int) or name in values or _is_named(prop):
            continue
        value = attempt(flags, partial(_property_data, prop))
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
    codec = known_codec(getattr(tnef, "codepage", None))
    values: dict[int, object] = {}
    for obj in list(getattr(tnef, "msgprops", None) or []):
        name, data = getattr(obj, "name", None), getattr(obj, "data", None)
        if not isinstance(name, int):
            continue
        if (name, type(data)) in ((_ATT_SUBJECT, str), (_ATT_DATE_SENT, datetime)):
            values[name] = data
        elif name == _ATT_FROM and isinstance(data, tuple) and len(data) == 3:
            sender, _, address = data
            values[name] = (as_text(sender, codec), as_text(address, codec))
    return values


def _tnef_rtf(tnef: Any, flags: Flags, items: list[ContainerItem]) -> bytes | None:
    """Add the RTF body as a part (decompressed if possible); return the RTF bytes."""
    compressed = getattr(tnef, "_rtfbody", None)
    if not compressed:
        return None
    rtf = attempt(flags, lambda: tnef.rtfbody, FLAG_ITEM_UNREADABLE)
    if isinstance(rtf, bytes) and rtf:
        items.append(rtf_item(rtf))
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
            and getattr(obj, "level", None) == LEVEL_ATTACHMENT
            and getattr(obj, "name", None) == ATT_ATTACHMENT
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
    flags: Flags,
) -> ContainerItem | None:
    """One TNEF attachment with its exact bytes, opened further if it is an embedded message."""
    library_data = attachment.data if isinstance(attachment.data, bytes) else b""
    declared = _declared_attach_data(blocks, library_data)
    data, iid = library_data, None
    if declared is not None:
        value, is_object = declared
        data, iid = (value[IID_LENGTH:], value[:IID_LENGTH]) if is_object else (value, None)
    mapi = {
        getattr(prop, "name", None): prop
        for prop in list(getattr(attachment, "mapi_attrs", None) or [])
        if not _is_named(prop)
    }
    content_type = first_text(_mapi_data(mapi.get(_PR_ATTACH_MIME_TAG)))
    nested = None
    if iid == IMESSAGE_IID or (iid is None and hasattr(attachment, "embed")):
        content_type = TNEF_CONTENT_TYPE
        if depth >= max_depth:
            flags.add(FLAG_TOO_DEEP)
        else:
            nested = open_tnef(data, depth=depth + 1, max_depth=max_depth)
    filename = first_text(
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
        name = as_text(getattr(attachment, "_name", None), codec)
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
    if position + 12 > len(block) or u32(block, position + 4) != 1:
        return None
    length = u32(block, position + 8)
    start = position + 12
    if start + length > len(block) or length < len(library_data):
        return None
    head = library_data[:32]  # cheap test before copying a value that may be megabytes long
    if not (block.startswith(head, start) or block.startswith(head, start + IID_LENGTH)):
        return None
    value = block[start : start + length]
    stripped = value.rstrip(b"\x00")
    if stripped == library_data:
        return value
    if stripped.startswith(IMESSAGE_IID) and stripped[IID_LENGTH:] == library_data:
        return value
    return None
