"""What an opened Outlook container (TNEF winmail.dat stream or .msg file) holds.

The shared result of intake.parse.containers.tnef.open_tnef and
intake.parse.containers.outlook_msg.open_outlook_msg: the items found, the header facts read
(as a `storage.forwarded_original.ForwardedOriginal`), and the flags saying what could not be
read. Nothing that opens a container raises on bad input: what cannot be read is flagged,
and everything read before the damage is kept.
Container bytes are only ever held in memory; a filename found inside a container is
metadata and never becomes a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar, overload

from storage.forwarded_original import ForwardedOriginal

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


@dataclass(frozen=True)
class ContainerItem:
    """One part found in a container: an attachment, or one form of the container's body."""

    filename: str | None  # metadata only, never used as a path
    content_type: str | None  # declared (or, for bodies and embedded messages, derived)
    data: bytes  # the attachment's bytes; for an embedded .msg a standalone .msg export
    role: str  # ROLE_ATTACHMENT or ROLE_BODY
    nested: ContainerContents | None = None  # an embedded message, opened


class _OriginalField(Generic[T]):
    """A field of `ContainerContents.original`, read on the contents under the same name.

    The contents carried these fields before `original` held them; tests and
    intake.pipeline.extract still read them there.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, contents: None, owner: type) -> _OriginalField[T]: ...

    @overload
    def __get__(self, contents: ContainerContents, owner: type) -> T: ...

    def __get__(self, contents: ContainerContents | None, owner: type) -> _OriginalField[T] | T:
        if contents is None:
            return self
        value: T = getattr(contents.original, self.name)
        return value


@dataclass(frozen=True)
class ContainerContents:
    """What a TNEF stream or Outlook message holds, and what could not be read of it.

    `original` is what the container says of the message it holds (who sent it, when, its
    subject, To and Message-ID; rule "attached-<kind>"): for an attached .msg, the forwarded
    original.
    """

    kind: str  # "tnef" or "outlook-msg"
    items: tuple[ContainerItem, ...] = ()
    body_text: str | None = None
    body_html: str | None = None
    original: ForwardedOriginal = field(default_factory=ForwardedOriginal)
    flags: tuple[str, ...] = ()

    from_name = _OriginalField[str | None]()
    from_address = _OriginalField[str | None]()
    date = _OriginalField[datetime | None]()
    date_raw = _OriginalField[str | None]()
    subject = _OriginalField[str | None]()
    to = _OriginalField[str | None]()
    message_id = _OriginalField[str | None]()
