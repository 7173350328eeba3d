"""Open Outlook .msg files into their attachments, bodies and header facts.

Nothing here raises on bad input: what cannot be read is flagged, and everything read
before the damage is kept. Embedded messages are opened as nested contents.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

import olefile
from extract_msg import openMsg
from extract_msg.enums import ErrorBehavior
from extract_msg.msg_classes import MSGFile

from intake.parse.containers.contents import (
    FLAG_EMBEDDED_NOT_EXPORTED,
    FLAG_ITEM_UNREADABLE,
    FLAG_PARTLY_READ,
    FLAG_TOO_DEEP,
    FLAG_UNREADABLE,
    OUTLOOK_MSG_CONTENT_TYPE,
    ROLE_ATTACHMENT,
    ContainerContents,
    ContainerItem,
)
from intake.parse.containers.fields import (
    Flags,
    attempt,
    bodies_from_rtf,
    body_item,
    codec_for_codepage,
    field_text,
    first_address,
    first_text,
    header_facts,
    open_or_flag,
    pick_date,
    rtf_item,
)

log = logging.getLogger("chikanemail.intake.containers")

_CFB_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")

# extract-msg: keep going past broken attachments and bad RTF, but let OLE defects raise at
# first so a damaged file is known to be damaged (then it is opened leniently and flagged).
_MSG_ERRORS = (
    ErrorBehavior.ATTACH_SUPPRESS_ALL
    | ErrorBehavior.RTFDE
    | ErrorBehavior.STANDARDS_VIOLATION
    | ErrorBehavior.NAMED_NAME_STREAM
)
_MSG_CONTENT_TYPES = frozenset({OUTLOOK_MSG_CONTENT_TYPE, "application/x-msg"})


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


def open_outlook_msg(data: bytes, *, depth: int = 0, max_depth: int = 10) -> ContainerContents:
    """The attachments, bodies and header facts of an Outlook .msg file, never raising.

    Embedded Outlook messages are opened as nested contents down to max_depth.
    """
    return open_or_flag(
        "outlook-msg", "Outlook message", partial(_open_outlook_msg, data, depth, max_depth)
    )


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
    flags = Flags(FLAG_PARTLY_READ) if lenient else Flags()
    try:
        return _read_msg(msg, depth, max_depth, flags)
    finally:
        try:
            msg.close()
        except Exception:
            log.debug("Outlook message not closed cleanly", exc_info=True)


def _read_msg(msg: MSGFile, depth: int, max_depth: int, flags: Flags) -> ContainerContents:
    """The contents of an opened message (top-level or embedded)."""

    def string(stream: str) -> str | None:
        return attempt(flags, lambda: msg.getStringStream(stream))

    facts = header_facts(
        attempt(flags, lambda: getattr(msg, "headerText", None)), "attached-outlook-msg"
    )
    codec = codec_for_codepage(attempt(flags, lambda: msg.getPropertyVal("3FDE0003")))
    plain = string("__substg1.0_1000")
    html = attempt(flags, lambda: msg.getStream("__substg1.0_10130102"))
    rtf = attempt(flags, lambda: getattr(msg, "rtfBody", None), FLAG_ITEM_UNREADABLE)

    items = [
        item
        for item in (body_item(plain, "plain", None), body_item(html, "html", codec))
        if item is not None
    ]
    if isinstance(rtf, bytes) and rtf:
        items.append(rtf_item(rtf))
    items.extend(_msg_attachment_items(msg, depth, max_depth, flags))

    html_text = field_text(html, codec)
    text = field_text(plain, None)
    if html_text is None or text is None:
        rtf_html, rtf_text = bodies_from_rtf(rtf if isinstance(rtf, bytes) else None)
        html_text, text = html_text or rtf_html, text or rtf_text
    submit_time = attempt(flags, lambda: getattr(msg, "date", None))
    original = replace(
        facts,
        from_name=facts.from_name
        or first_text(string("__substg1.0_0042"), string("__substg1.0_0C1A")),
        from_address=facts.from_address
        or first_address(
            string("__substg1.0_5D02"),
            string("__substg1.0_0065"),
            string("__substg1.0_5D01"),
            string("__substg1.0_0C1F"),
        ),
        date=pick_date(facts.date, submit_time if isinstance(submit_time, datetime) else None),
        subject=first_text(string("__substg1.0_0037")) or facts.subject,
        to=facts.to or first_text(attempt(flags, lambda: getattr(msg, "to", None))),
        message_id=facts.message_id or first_text(string("__substg1.0_1035")),
    )
    return ContainerContents(
        kind="outlook-msg",
        items=tuple(items),
        body_text=text,
        body_html=html_text,
        original=original,
        flags=flags.as_tuple(),
    )


def _msg_attachment_items(
    msg: MSGFile, depth: int, max_depth: int, flags: Flags
) -> list[ContainerItem]:
    """Every attachment, each opened on its own so one broken attachment loses only itself."""
    folders = attempt(flags, partial(_attachment_folders, msg))
    items: list[ContainerItem] = []
    for folder in folders or []:
        attachment = attempt(
            flags, partial(msg.initAttachmentFunc, msg, folder), FLAG_ITEM_UNREADABLE
        )
        if attachment is None:
            continue
        item = attempt(
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
    attachment: Any, depth: int, max_depth: int, flags: Flags
) -> ContainerItem | None:
    name = first_text(attempt(flags, lambda: attachment.name))
    data = attachment.data
    if isinstance(data, bytes):
        mimetype = first_text(attempt(flags, lambda: attachment.mimetype))
        return ContainerItem(name, mimetype, data, ROLE_ATTACHMENT)
    if isinstance(data, MSGFile):
        return _embedded_msg_item(name, data, depth, max_depth, flags)
    # Broken, unsupported or reference-only attachments have no bytes to keep.
    flags.add(FLAG_ITEM_UNREADABLE)
    return None


def _embedded_msg_item(
    name: str | None, embedded: MSGFile, depth: int, max_depth: int, flags: Flags
) -> ContainerItem:
    """An embedded message: a standalone .msg rebuilt from its storage, and its contents."""
    exported = attempt(flags, embedded.exportBytes, FLAG_EMBEDDED_NOT_EXPORTED)
    if not exported:
        flags.add(FLAG_EMBEDDED_NOT_EXPORTED)
    nested = None
    if depth >= max_depth:
        flags.add(FLAG_TOO_DEEP)
    else:
        nested = _read_msg(embedded, depth + 1, max_depth, Flags())
    return ContainerItem(name, OUTLOOK_MSG_CONTENT_TYPE, exported or b"", ROLE_ATTACHMENT, nested)
