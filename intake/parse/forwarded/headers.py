"""The text of a forwarded original's header values: an attached message's headers read
without raising, raw 8-bit bytes recovered as UTF-8 or Windows-1252, RFC 2047 encoded words
decoded, and a sender's display name and address taken from "Name <addr>" and its variants.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message

from storage.forwarded_original import has_surrogates, recover_8bit


def _raw_header(message: Message, name: str) -> str | None:
    """The header's value as stored, unfolded; may hold surrogate-escaped 8-bit bytes."""
    try:
        for key, value in message.raw_items():
            if key.lower() == name.lower():
                return " ".join(str(value).split())
    except Exception:  # raw_items on a damaged message: treat the header as absent
        return None
    return None


def header_text(message: Message, name: str, *, decode: bool = True) -> str | None:
    """The header's text, encoded words decoded (unless decode is False); None if absent."""
    raw = _raw_header(message, name)
    if raw is None:
        return None
    if has_surrogates(raw):
        text = recover_8bit(raw)
        return (decode_words(text) if decode else text) or None
    if not decode:
        return raw or None
    try:
        text = " ".join(str(message.get(name, "")).split())
    except Exception:  # the header parser failed on this value: decode it ourselves
        text = decode_words(raw)
    return text or None


def header_mailbox(message: Message) -> tuple[str | None, str | None]:
    """Display name and lower-cased address of the first From mailbox."""
    raw = _raw_header(message, "From")
    if raw is None:
        return None, None
    parsed = None if has_surrogates(raw) else _policy_mailbox(message)
    return parsed or parse_mailbox(header_text(message, "From"))


def _policy_mailbox(message: Message) -> tuple[str | None, str] | None:
    """The first From mailbox as the email package's header parser reads it, if it can."""
    try:
        addresses = getattr(message["From"], "addresses", ())
        if addresses and "@" in addresses[0].addr_spec:
            return (addresses[0].display_name or None), addresses[0].addr_spec.lower()
    except Exception:  # an unparseable address list: the caller reads the text itself
        return None
    return None


def decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded; the text unchanged if they are broken."""
    if "=?" not in text:
        return text
    try:
        return " ".join(str(make_header(decode_header(text))).split())
    except Exception:  # unknown charsets and malformed words: keep what was written
        return text


_ADDRESS = r"[^\s<>\[\]()\"',;:@]+@[^\s<>\[\]()\"',;:@]+"
_NAME_AND_ADDRESS = re.compile(
    rf"^(?P<name>.*?)\s*[<\[(]\s*(?:mailto:)?\s*(?P<address>{_ADDRESS})\s*[>\])]\s*$",
    re.IGNORECASE,
)
_ADDRESS_ONLY = re.compile(rf"^[<\[(]?\s*(?:mailto:)?(?P<address>{_ADDRESS})\s*[>\])]?$",
                           re.IGNORECASE)
_ANY_ADDRESS = re.compile(_ADDRESS)
_NAME_JUNK = " \t\"'*<>[]()“”„«»,;:"


def parse_mailbox(value: str | None) -> tuple[str | None, str | None]:
    """Display name and lower-cased address from "Name <addr>", "Name [mailto:addr]", an
    address alone, or a name alone (address None)."""
    if not value:
        return None, None
    value = decode_words(value).strip().strip("*").strip()
    match = _NAME_AND_ADDRESS.match(value) or _ADDRESS_ONLY.match(value)
    if match is not None:
        address = match.group("address").rstrip(".").lower()
        name = match.groupdict().get("name") or ""
    else:
        found = _ANY_ADDRESS.search(value)
        if found is None:
            return _clean_name(value), None
        address = found.group().rstrip(".").lower()
        name = value[:found.start()] + value[found.end():]
    name_text = _clean_name(name.replace("mailto:", ""))
    if name_text is not None and name_text.lower() == address:
        name_text = None
    return name_text, address


def _clean_name(name: str) -> str | None:
    name = " ".join(name.strip(_NAME_JUNK).split())
    return name or None
