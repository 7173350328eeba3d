"""Walk a raw message's MIME tree and yield every leaf part with its provenance.

The stdlib parse is the authority for evidence: each part keeps its place (`part_path`), its
parent (a nested message or a container), its declared metadata and its defects. Nested
messages are yielded themselves and then their own parts, as their children; TNEF and
Outlook .msg containers likewise. Parts are yielded one at a time so a consumer can store
and drop each part's bytes before the next is decoded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesFeedParser
from io import BytesIO
from typing import Any

from intake.parse.containers.contents import ContainerContents, ContainerItem
from intake.parse.containers.outlook_msg import is_outlook_msg, open_outlook_msg
from intake.parse.containers.tnef import is_tnef, open_tnef
from intake.parse.header_policy import (
    BOUNDED_POLICY,
    HEADER_TOO_LONG_DEFECT,
    MAX_PARSED_HEADER_CHARS,
)
from intake.parse.html_text import html_to_text
from storage.defects import CHIKANEMAIL, STDLIB, Defect
from storage.models import EvidenceRole

log = logging.getLogger("chikanemail.intake.parts")

DEFAULT_MAX_DEPTH = 10
# Defects the stdlib records when a base64 body cannot be decoded cleanly.
_BROKEN_ENCODING_DEFECTS = frozenset({
    "InvalidBase64PaddingDefect",
    "InvalidBase64CharactersDefect",
    "InvalidBase64LengthDefect",
})
_NESTED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
# Headers a message or part may carry at most once (RFC 5322 3.6, RFC 2045, RFC 2183).
_SINGLE_HEADERS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to",
    "references", "mime-version", "content-type", "content-transfer-encoding",
    "content-disposition",
})
DUPLICATE_HEADER_DEFECT = "DuplicateHeader"


@dataclass
class ExtractedPart:
    """One part of a message: its exact decoded bytes and what is known about them."""

    path: str
    parent_path: str | None
    role: str
    data: bytes
    declared_type: str | None = None
    filename: str | None = None
    content_id: str | None = None
    disposition: str | None = None
    transfer_encoding: str | None = None
    charset: str | None = None
    defects: list[str] = field(default_factory=list)  # as the stdlib reported them
    flags: list[str] = field(default_factory=list)
    text: str | None = None  # readable text of a body part (HTML converted), for derived blobs
    nested: EmailMessage | None = None  # the parsed message of a nested-message part
    container: ContainerContents | None = None  # an opened TNEF or .msg container
    depth: int = 0  # how many nested messages or containers enclose this part


@dataclass
class MessageFacts:
    """What the walk learned about the message as a whole."""

    defects: list[Defect] = field(default_factory=list)
    body_text: str | None = None
    body_html_text: str | None = None


# Fed to the parser a piece at a time: `BytesParser.parsebytes` turns the whole mail into one
# str inside a StringIO (4 bytes a character), about 235 MiB more for a 50 MB mail.
_PARSE_CHUNK_BYTES = 1 << 20


def parse_message(raw: bytes) -> EmailMessage:
    """Parse raw bytes with the stdlib's modern policy (lenient: defects, not exceptions)."""
    parser = BytesFeedParser(policy=BOUNDED_POLICY)
    view = memoryview(raw)
    for start in range(0, len(raw), _PARSE_CHUNK_BYTES):
        parser.feed(bytes(view[start:start + _PARSE_CHUNK_BYTES]))
    message = parser.close()
    assert isinstance(message, EmailMessage)
    return message


def serialize_message(message: Message, linesep: str) -> bytes:
    """The bytes of a parsed (unmodified) message, with its header lines as they came."""
    buffer = BytesIO()
    generator_policy = policy.default.clone(refold_source="none", linesep=linesep,
                                            max_line_length=0)
    generator = BytesGenerator(buffer, mangle_from_=False, policy=generator_policy)
    try:
        generator.flatten(message)  # type: ignore[arg-type]  # typeshed wants EmailMessage
        return buffer.getvalue()
    except (UnicodeError, LookupError, ValueError, TypeError):
        # Text the parser decoded to real Unicode (not surrogate-escaped bytes): write it
        # as UTF-8 instead; the caller flags the bytes as regenerated.
        return message.as_string(policy=generator_policy).encode("utf-8", "surrogateescape")


def _linesep_of(raw: bytes) -> str:
    return "\r\n" if b"\r\n" in raw[:65536] else "\n"


def _defect_names(part: Message) -> list[str]:
    return [type(defect).__name__ for defect in getattr(part, "defects", [])]


def _header_defects(part: Message) -> list[str]:
    """What the stdlib does not record about a header block: a header that may occur only
    once found twice (parsers disagree on which one counts: first for the stdlib, last for
    others), and a value too long to be parsed whole (see intake.parse.header_policy)."""
    defects: list[str] = []
    seen: set[str] = set()
    for name, value in part.raw_items():
        key = name.lower()
        if key in _SINGLE_HEADERS and key in seen and DUPLICATE_HEADER_DEFECT not in defects:
            defects.append(DUPLICATE_HEADER_DEFECT)
        seen.add(key)
        if len(value) > MAX_PARSED_HEADER_CHARS and HEADER_TOO_LONG_DEFECT not in defects:
            defects.append(HEADER_TOO_LONG_DEFECT)
    return defects


def _header_text(part: Message, name: str) -> str | None:
    try:
        value = part.get(name)
    except Exception:  # a header the modern policy cannot parse: keep going without it
        return None
    return " ".join(str(value).split()) or None if value is not None else None


def decoded_filename(part: Message) -> str | None:
    """The part's filename from RFC 2231 or RFC 2047, in any charset; metadata only."""
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    if "=?" in name:
        # An unknown charset in an encoded word leaves the text as it is.
        with contextlib.suppress(Exception):
            name = str(make_header(decode_header(name)))
    cleaned = "".join(ch for ch in name if ch.isprintable()).strip()
    return cleaned or None


def decode_text(data: bytes, charset: str | None) -> tuple[str, list[str]]:
    """Text of a body part in its declared charset; flags when the charset had to be guessed."""
    flags: list[str] = []
    if charset:
        try:
            return data.decode(charset, errors="replace"), flags
        except (LookupError, ValueError):  # ValueError: a NUL in the charset's name
            flags.append("charset-unknown")
    try:
        return data.decode("utf-8"), flags
    except UnicodeDecodeError:
        flags.append("charset-guessed")
        return data.decode("latin-1"), flags


class PartWalker:
    """Yields the evidence parts of one raw message, depth first, parents before children."""

    def __init__(self, raw: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.raw = raw
        self.max_depth = max_depth
        self.linesep = _linesep_of(raw)
        self.facts = MessageFacts()
        self._defects: list[Defect] = []

    def parts(self, message: EmailMessage) -> Iterator[ExtractedPart]:
        """Every part of the message, then `facts` holds the message-wide findings."""
        if is_tnef(self.raw) or is_outlook_msg(self.raw):
            # Not a MIME mail but a bare container (a saved .msg or winmail.dat, e.g. by
            # `chikanemail ingest`): the whole file is the one part.
            whole = ExtractedPart(path="1", parent_path=None, role=EvidenceRole.ATTACHMENT,
                                  data=self.raw, flags=["not-mime"])
            self._defects.append(Defect("NotMimeContainer", CHIKANEMAIL))
            yield from self._with_container_items(whole)
        else:
            self._note_defects(message)
            yield from self._walk(message, "", None, 0, top_level=True)
        self.facts.defects = sorted(set(self._defects))

    def stop_early(self, defect: str) -> None:
        """The consumer stopped before the last part: `facts` holds what was seen so far, and
        `defect` (this service's own) says why the rest is missing."""
        self.facts.defects = sorted({*self._defects, Defect(defect, CHIKANEMAIL)})

    def _note_defects(self, part: Message) -> None:
        self._defects.extend(Defect(name, STDLIB) for name in _defect_names(part))
        self._defects.extend(Defect(name, CHIKANEMAIL) for name in _header_defects(part))

    def _walk(self, part: Message, path: str, parent: str | None, depth: int,
              *, top_level: bool) -> Iterator[ExtractedPart]:
        content_type = part.get_content_type()
        if content_type in _NESTED_MESSAGE_TYPES and isinstance(part.get_payload(), list):
            yield from self._nested(part, path or "1", parent, depth, top_level=top_level)
            return
        if part.is_multipart():
            children = part.get_payload()
            assert isinstance(children, list)
            for index, child in enumerate(children, 1):
                self._note_defects(child)
                child_path = f"{path}.{index}" if path else str(index)
                yield from self._walk(child, child_path, parent, depth, top_level=top_level)
            return
        yield from self._leaf(part, path or "1", parent, depth, top_level=top_level)

    def _nested(self, part: Message, path: str, parent: str | None, depth: int,
                *, top_level: bool) -> Iterator[ExtractedPart]:
        payload = part.get_payload()
        assert isinstance(payload, list) and payload
        inner = payload[0]
        assert isinstance(inner, Message)
        data = serialize_message(inner, self.linesep)
        flags = ["nested-message"]
        if data not in self.raw:
            # The nested bytes were transfer-encoded in the outer mail, or regenerating them
            # changed them; the outer raw blob remains the exact original.
            flags.append("nested-bytes-regenerated")
        nested = ExtractedPart(
            path=path, parent_path=parent, role=EvidenceRole.NESTED_MESSAGE, data=data,
            declared_type=part.get_content_type(), filename=decoded_filename(part),
            content_id=_header_text(part, "Content-ID"),
            disposition=part.get_content_disposition(),
            transfer_encoding=_header_text(part, "Content-Transfer-Encoding"),
            defects=_defect_names(part) + _defect_names(inner), flags=flags,
            nested=inner if isinstance(inner, EmailMessage) else None, depth=depth,
        )
        self._note_defects(inner)
        if depth + 1 > self.max_depth:
            nested.flags.append("depth-limit-reached")
            yield nested
            return
        yield nested
        # A multipart's children are numbered under the nested message's own path.
        inner_path = path if _is_plain_multipart(inner) else f"{path}.1"
        yield from self._walk(inner, inner_path, path, depth + 1, top_level=False)

    def _leaf(self, part: Message, path: str, parent: str | None, depth: int,
              *, top_level: bool) -> Iterator[ExtractedPart]:
        flags: list[str] = []
        try:
            decoded = part.get_payload(decode=True)
        except Exception:  # the stdlib is lenient, but a bug must not lose the part
            decoded = None
            flags.append("decode-failed")
        defects = _defect_names(part)  # decoding adds its own defects
        self._defects.extend(Defect(name, STDLIB) for name in defects
                             if name in _BROKEN_ENCODING_DEFECTS)
        data: bytes
        if decoded is None or _BROKEN_ENCODING_DEFECTS.intersection(defects):
            data = _raw_payload_bytes(part)
            flags.append("transfer-encoding-broken")
        else:
            data = decoded if isinstance(decoded, bytes) else bytes(decoded)
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = decoded_filename(part)
        content_id = _header_text(part, "Content-ID")
        role = _role_of(content_type, disposition, filename, content_id)
        extracted = ExtractedPart(
            path=path, parent_path=parent, role=role, data=data,
            declared_type=content_type, filename=filename, content_id=content_id,
            disposition=disposition,
            transfer_encoding=_header_text(part, "Content-Transfer-Encoding"),
            charset=part.get_content_charset(), defects=defects, flags=flags, depth=depth,
        )
        if role == EvidenceRole.BODY and "transfer-encoding-broken" not in flags:
            self._read_body_text(extracted, top_level=top_level)
        yield from self._with_container_items(extracted)

    def _read_body_text(self, part: ExtractedPart, *, top_level: bool) -> None:
        text, flags = decode_text(part.data, part.charset)
        part.flags.extend(flags)
        if part.declared_type == "text/html":
            part.text = html_to_text(text)
            if top_level and self.facts.body_html_text is None:
                self.facts.body_html_text = part.text
        else:
            part.text = text
            if top_level and self.facts.body_text is None:
                self.facts.body_text = text

    def _with_container_items(self, part: ExtractedPart) -> Iterator[ExtractedPart]:
        """The part itself, then (if it is a TNEF or .msg container) the items inside it."""
        contents: ContainerContents | None = None
        if is_tnef(part.data, part.declared_type, part.filename):
            contents = open_tnef(part.data, depth=part.depth, max_depth=self.max_depth)
        elif is_outlook_msg(part.data, part.declared_type, part.filename):
            contents = open_outlook_msg(part.data, depth=part.depth,
                                        max_depth=self.max_depth)
        if contents is not None:
            part.container = contents
            part.flags.append(f"container:{contents.kind}")
            part.flags.extend(contents.flags)
        yield part
        if contents is not None:
            yield from self._container_items(contents, part.path, part.depth + 1)

    def _container_items(self, contents: ContainerContents, path: str,
                         depth: int) -> Iterator[ExtractedPart]:
        for index, item in enumerate(contents.items, 1):
            yield from self._container_item(item, f"{path}.c{index}", path, depth)

    def _container_item(self, item: ContainerItem, path: str, parent: str,
                        depth: int) -> Iterator[ExtractedPart]:
        child = ExtractedPart(
            path=path, parent_path=parent, role=EvidenceRole.CONTAINER_PART, data=item.data,
            declared_type=item.content_type, filename=item.filename, depth=depth,
            flags=[f"container-{item.role}"],
        )
        media_type, _, parameters = (item.content_type or "").partition(";")
        media_type = media_type.strip().lower()
        if item.role == "body" and media_type in ("text/plain", "text/html"):
            charset = _charset_parameter(parameters) or "utf-8"
            text, flags = decode_text(item.data, charset)
            child.flags.extend(flags)
            child.text = html_to_text(text) if media_type == "text/html" else text
        if item.nested is not None:
            child.container = item.nested
            child.flags.append(f"container:{item.nested.kind}")
            child.flags.extend(item.nested.flags)
            yield child
            if depth + 1 > self.max_depth:
                child.flags.append("depth-limit-reached")
                return
            yield from self._container_items(item.nested, path, depth + 1)
            return
        if depth + 1 <= self.max_depth:
            yield from self._with_container_items(child)
        else:
            yield child


def _charset_parameter(parameters: str) -> str | None:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def _is_plain_multipart(part: Message) -> bool:
    return part.is_multipart() and part.get_content_type() not in _NESTED_MESSAGE_TYPES


def _role_of(content_type: str, disposition: str | None, filename: str | None,
             content_id: str | None) -> str:
    if content_type in ("text/plain", "text/html") and disposition != "attachment" and (
            not filename):
        return EvidenceRole.BODY
    if disposition == "inline" or (content_id and disposition != "attachment"):
        return EvidenceRole.INLINE
    return EvidenceRole.ATTACHMENT


def _raw_payload_bytes(part: Message) -> bytes:
    """The part's body exactly as transfer-encoded in the mail.

    Read from the stored payload, not `get_payload(decode=False)`: for a body with non-ASCII
    bytes that returns text decoded with "replace" (U+FFFD for every such byte), which lost
    the bytes and then failed to encode (a flipped byte in a base64 body quarantined the mail).
    """
    payload: Any = getattr(part, "_payload", None)
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        # Parsed from bytes: non-ASCII bytes are surrogate escapes; text set by code is not.
        return payload.encode("utf-8", "surrogateescape")
    return b""
