"""Who sent the original of a forwarded mail, and when: from an attached message or from the
header block a mail program writes above an inline forward.

Employees forward harassing mail to the intake address; the forward's own From is the
employee, so the case needs the original sender. An attached original (message/rfc822) has
real headers. An inline forward has only the text block the employee's mail program wrote,
in its own format and language; `find_inline_forward` recognises the common ones and says
which rule matched, so a reader can judge how far to trust it. Rules are "attached-message"
and "<format>-<language>": format gmail, thunderbird, apple, original-message (Outlook's
"-----Original Message-----" and its translations) or outlook (a From/Sent block without a
separator line); language da, en, de, fr, it, sv, nl, es or no, from the separator's words or,
for outlook, from the field labels (Norwegian labels equal Danish ones and count as da).

Both finders return the one record of a forwarded original, `storage.forwarded_original`.
The original's date is read by `intake.parse.forwarded.dates`, its header values and sender by
`intake.parse.forwarded.headers`; the separator lines and field labels of each mail program and
language are in `intake.parse.forwarded.labels`.

A quoted reply ("On Mon, 3 Mar 2025 at 10:15, X <x@y> wrote:") is not a forward: its
attribution line is one line of free text in endless variants, and a reply quotes only what
the employee chose. An Outlook reply, however, carries the same header block as an Outlook
forward and cannot be told apart from it; that block is reported as "outlook-<language>".
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser

from intake.parse.forwarded.dates import parse_forward_date
from intake.parse.forwarded.headers import decode_words, header_mailbox, header_text, parse_mailbox
from intake.parse.forwarded.labels import LANGUAGE_ORDER, MAX_VALUE_CHARS, field_label, marker_rule
from intake.parse.header_policy import BOUNDED_POLICY
from storage.forwarded_original import ForwardedOriginal

# -- attached originals ------------------------------------------------------------------


def original_from_attached(message: EmailMessage) -> ForwardedOriginal:
    """The original's From, Date, Subject, To and Message-ID; never raises on broken headers.

    Takes a message/rfc822 part or the inner message itself (parsed with policy.default).
    A header that cannot be read is None; the date's raw text is kept even when it does not
    parse. Headers in raw 8-bit bytes are read as UTF-8, else as Windows-1252.
    """
    inner = _inner_message(message)
    if inner is None:
        return ForwardedOriginal(rule="attached-message")
    from_name, from_address = header_mailbox(inner)
    date_raw = header_text(inner, "Date", decode=False)
    return ForwardedOriginal(
        rule="attached-message",
        from_name=from_name,
        from_address=from_address,
        date=parse_forward_date(date_raw) if date_raw else None,
        date_raw=date_raw,
        subject=header_text(inner, "Subject"),
        to=header_text(inner, "To"),
        message_id=header_text(inner, "Message-ID", decode=False),
    )


def _inner_message(message: Message) -> Message | None:
    try:
        if message.get_content_type() != "message/rfc822":
            return message
        payload = message.get_payload()
        if not (isinstance(payload, list) and payload and isinstance(payload[0], Message)):
            return None
        inner: Message = payload[0]
        encoding = str(message.get("Content-Transfer-Encoding", "")).strip().lower()
        if not inner.keys() and encoding in ("base64", "quoted-printable"):
            # RFC 2046 forbids encoding a message/rfc822 part, but mail programs do it, and
            # the email package then parses the encoded text as if it were the message.
            return _parse_encoded_message(inner, encoding) or inner
        return inner
    except Exception:  # a broken part must not stop the rest of the case
        return None


def _parse_encoded_message(inner: Message, encoding: str) -> Message | None:
    text = inner.get_payload()
    if not isinstance(text, str):
        return None
    try:
        data = text.encode("utf-8", "surrogateescape")
        raw = base64.b64decode(data) if encoding == "base64" else quopri.decodestring(data)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    parsed = BytesParser(policy=BOUNDED_POLICY).parsebytes(raw)
    return parsed if parsed.keys() else None


# -- inline forwards: line formats -------------------------------------------------------

_MAX_MARKER_CHARS = 120
_MAX_BLOCK_LINES = 40
_MAX_BLANK_RUN = 3
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)+")
# Tabs and no-break spaces become spaces; soft hyphens, zero-width characters and BOMs go.
_LINE_CHARACTERS = str.maketrans(
    dict.fromkeys([0x09, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000], " ")
    | dict.fromkeys([0xAD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF], None)
)
_ODD_CHARACTER = re.compile(
    "[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\u00ad\u200b-\u200d\u2060\ufeff]"
)
_SPACE_RUN = re.compile(r" {2,}")


def find_inline_forward(text: str) -> ForwardedOriginal | None:
    """The first forwarded or quoted original's header block in a plain-text body, or None.

    Recognises Gmail, Thunderbird, Apple Mail and Outlook blocks (with or without
    "-----Original Message-----") in Danish, English and a few other languages; lines may be
    quoted with ">" and bold-marked with "*". HTML bodies go through html_to_text first.
    """
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = _clean_line(lines[index])
        index += 1
        if not line:
            continue
        marker = marker_rule(line) if len(line) <= _MAX_MARKER_CHARS else None
        if marker is not None:
            block = _read_block(lines, index)
            if block.fields.keys() & {"from", "subject", "sent", "date"}:
                return block.original(marker)
            continue
        label = field_label(line)
        if label is not None and label[0] == "from":
            block = _read_block(lines, index - 1)
            fields = block.fields
            if fields.keys() & {"sent", "date"} and fields.keys() & {"to", "subject"}:
                return block.original(f"outlook-{block.language()}")
            # The lines the block read were header lines or blanks, none a separator or a
            # "From:": going on after them keeps the scan linear however many there are.
            index = max(index, block.end)
    return None


def _clean_line(line: str) -> str:
    """A line without quote marks, odd spaces or invisible characters, trimmed."""
    if _ODD_CHARACTER.search(line):
        line = line.translate(_LINE_CHARACTERS)
    if line.lstrip().startswith(">"):
        line = _QUOTE_PREFIX.sub("", line)
    if "  " in line:
        line = _SPACE_RUN.sub(" ", line)
    return line.strip()


@dataclass
class _Block:
    """The header lines found after a separator or at an Outlook "From:" line."""

    fields: dict[str, str] = field(default_factory=dict)
    votes: dict[str, int] = field(default_factory=dict)
    end: int = 0  # index of the line that ended the block

    def language(self) -> str:
        if not self.votes:
            return "en"
        best = max(self.votes.values())
        return next(lang for lang in LANGUAGE_ORDER if self.votes.get(lang) == best)

    def original(self, rule: str) -> ForwardedOriginal:
        from_name, from_address = parse_mailbox(self.fields.get("from"))
        date_raw = self.fields.get("sent") or self.fields.get("date") or None
        return ForwardedOriginal(
            rule=rule,
            from_name=from_name,
            from_address=from_address,
            date=parse_forward_date(date_raw, rule.rpartition("-")[2]) if date_raw else None,
            date_raw=date_raw,
            subject=decode_words(self.fields.get("subject", "")) or None,
            to=decode_words(self.fields.get("to", "")) or None,
            message_id=self.fields.get("message_id") or None,
        )


def _read_block(lines: list[str], start: int) -> _Block:
    """The header fields on the lines from start on, up to the first line that is not one.

    Blank lines between header lines are allowed (HTML turned into text has them); a field
    seen twice ends the block, as that is the next forwarded message's block.
    """
    block = _Block()
    blank_run = 0
    previous: str | None = None
    for position in range(start, min(len(lines), start + _MAX_BLOCK_LINES)):
        block.end = position
        line = _clean_line(lines[position])
        if not line:
            blank_run += 1
            previous = None
            if blank_run > _MAX_BLANK_RUN:
                break
            continue
        blank_run = 0
        label = field_label(line)
        if label is None:
            if previous is not None and _continues(previous, block.fields[previous], line):
                block.fields[previous] = f"{block.fields[previous]} {line}"[:MAX_VALUE_CHARS]
                continue
            break
        name, value, languages = label
        if name in ("bcc", "other"):
            previous = None
            continue
        if name in block.fields:
            break
        block.fields[name] = value
        for language in languages:
            block.votes[language] = block.votes.get(language, 0) + 1
        previous = name
    return block


def _continues(field_name: str, value: str, line: str) -> bool:
    """Whether a line that is no header line is the wrapped rest of the field before it.

    Only addresses wrap in practice (Thunderbird folds long To lines); anything else after
    the block is the forwarded text.
    """
    if field_name == "from":
        return "@" in line
    return field_name in ("to", "cc") and ("@" in line or value.endswith((",", ";")))
