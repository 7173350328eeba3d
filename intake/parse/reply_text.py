"""The part of a reply mail that its writer typed, without the quoted history and signature.

Managers act on a case by replying to its notification mail, so a reply carries our own mail
below the manager's text, in whatever shape their mail program quotes it. Everything from the
first quote header on is history:

- an attribution line, possibly wrapped onto two lines: "On <date>, <name> wrote:", Danish
  "Den <date> skrev <name>:", "<date> skrev <name> <addr>:", "<name> skrev den <date>:",
  or "<name> <addr> wrote:" / "skrev:". A date means a year or a time of day, so that prose
  such as "Den 3. marts skrev hun:" is not taken for one;
- a dashed separator with words between ("-----Original Message-----",
  "----- Videresendt meddelelse -----"), at least four dashes on each side;
- Apple Mail's "Begin forwarded message:" and its Danish forms;
- a line of underscores (Outlook's separator), and Outlook's header block: a "From:"/"Fra:"
  line (also bold-marked, "*Fra:*") followed within a few lines by a date label
  ("Sent:", "Sendt:", "Date:", "Dato:") and a "To:"/"Til:" or "Subject:"/"Emne:" label.

Lines quoted with ">" above that point are dropped too: they are someone else's words. Then
the signature goes: from a "-- " line on, from a mobile footer ("Sendt fra min iPhone",
"Get Outlook for iOS") on, and from a closing phrase ("Med venlig hilsen", "Mvh",
"Best regards", also "Mvh Hanne" on one line) on when at most eight non-blank lines follow it.
"""

from __future__ import annotations

import re
import unicodedata

# Lines longer than this are prose, never an attribution or a footer.
_MAX_HEADER_CHARS = 300
_MAX_FOOTER_CHARS = 120
# How far below a "From:" line Outlook's other labels may be (HTML turned into text puts
# blank lines between them).
_HEADER_BLOCK_LINES = 10
# A closing phrase is a signature only when this few non-blank lines follow it.
_MAX_SIGNATURE_LINES = 8

# No-break and other odd spaces become spaces; soft hyphens and zero-width characters go
# (str.translate table, shared with the command reader).
ODD_CHARACTERS = str.maketrans(
    dict.fromkeys([0x09, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000], " ")
    | dict.fromkeys([0xAD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF], None)
)
_QUOTE_PREFIX = re.compile(r"^\s*(?:>\s?)+")
_SPACE_RUN = re.compile(r" {2,}")

# A year or a time of day: what tells an attribution's date from prose.
_DATE_HINT = re.compile(r"(?<!\d)(?:\d{4}|\d{1,2}[:.]\d{2})(?!\d)")
# A line that begins with a date, perhaps after a weekday: "tir. 17. nov. 2026", "2026-11-17".
_STARTS_WITH_DATE = re.compile(r"^(?:[^\W\d_]{2,9}\.?,?\s+)?(?:den\s+)?\d")
_BRACKETED_ADDRESS = re.compile(r"[<\[](?:mailto:)?[^<>\[\]\s@]+@[^<>\[\]\s]+[>\]]")
_SKREV = re.compile(r"\sskrev(\s+den\s|\s|$)")
_DASHED_SEPARATOR = re.compile(r"-{4,}\s*(?P<words>[^-]{3,60}?)\s*-{4,}")
_UNDERSCORES = re.compile(r"_{10,}")
_FORWARD_INTROS = frozenset({
    "begin forwarded message:",
    "start på videresendt besked:",
    "start på videresendt meddelelse:",
    "videresendt besked:",
    "videresendt meddelelse:",
})
# "Fra: x", "*Fra:* x", "**From**: x", "Emne : x".
_LABEL = re.compile(r"^[*_]{0,2}\s*(?P<label>[^\W\d_]+)\s*[*_]{0,2}\s*:")
_LABELS = {
    "from": "from", "fra": "from",
    "sent": "date", "sendt": "date", "date": "date", "dato": "date",
    "to": "to", "til": "to", "subject": "subject", "emne": "subject",
    "cc": "cc", "kopi": "cc", "bcc": "cc",
}

_MOBILE_FOOTER = re.compile(
    r"""^(?:
        (?:sendt|sent|send)\s(?:fra|from)\s(?:min|mit|my)\s\S+(?:\s\S+){0,3}
      | (?:sendt|sent)\s(?:fra|from)\s(?:outlook|mail|gmail|yahoo\smail)\b.{0,40}
      | (?:hent|get|download|få)\soutlook\s(?:til|for|på)\s(?:ios|android)\b.{0,40}
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_CLOSINGS = (
    "med venlig hilsen", "med venlige hilsner", "venlig hilsen", "venlige hilsner",
    "de bedste hilsner", "bedste hilsner", "mange hilsner", "kærlig hilsen", "hilsen",
    "mvh", "vh", "kh", "best regards", "kind regards", "warm regards", "regards",
    "best wishes", "all the best",
)
_CLOSING = re.compile(rf"^(?:{'|'.join(_CLOSINGS)}|best)[.,!]*$", re.IGNORECASE)
# "Mvh Hanne", "Best regards, Hanne Hansen": a closing phrase and a capitalised name.
_CLOSING_WITH_NAME = re.compile(
    rf"^(?i:{'|'.join(_CLOSINGS)})[.,]*\s+"
    r"[A-ZÆØÅÄÖÜÉ][\w.'-]*,?(?:\s+[A-ZÆØÅÄÖÜÉ][\w.'-]*){0,3}$"
)


def new_text_of_reply(text: str) -> str:
    """The text the replier wrote themselves, from a reply's plain-text body.

    Quoted history (from the first quote header on, and lines quoted with ">") and the
    signature are removed; leading and trailing blank lines and trailing spaces go, inner
    blank lines stay. Empty input gives "". Never raises.
    """
    lines = text.splitlines()
    if not lines:
        return ""
    cleaned = [_clean_line(line) for line in lines]
    history = _first_quote_header(cleaned)
    own = [line.rstrip() for line in lines[:history] if not _is_quoted(line)]
    own = own[:_signature_start(own)]
    return "\n".join(own).strip("\n")


def _clean_line(line: str) -> str:
    """A line for recognising markers: quote marks, odd spaces and space runs gone."""
    line = unicodedata.normalize("NFC", line.translate(ODD_CHARACTERS))
    line = _QUOTE_PREFIX.sub("", line)
    return _SPACE_RUN.sub(" ", line).strip()


def _is_quoted(line: str) -> bool:
    return line.translate(ODD_CHARACTERS).lstrip().startswith(">")


# -- quote headers ----------------------------------------------------------------------


def _first_quote_header(cleaned: list[str]) -> int:
    """The index of the first line that starts the quoted history, or len(cleaned)."""
    for index, line in enumerate(cleaned):
        if not line:
            continue
        if _is_separator(line) or _is_attribution(line):
            return index
        following = cleaned[index + 1] if index + 1 < len(cleaned) else ""
        if following and not line.endswith(":") and _is_attribution(f"{line} {following}"):
            return index  # an attribution wrapped onto two lines
        if _label(line) == "from" and _header_block_follows(cleaned, index):
            return index
    return len(cleaned)


def _is_separator(line: str) -> bool:
    """Whether a line is a dashed, underscore or forward-intro separator."""
    if _UNDERSCORES.fullmatch(line):
        return True
    if line.casefold() in _FORWARD_INTROS:
        return True
    match = _DASHED_SEPARATOR.fullmatch(line)
    return match is not None and any(char.isalpha() for char in match.group("words"))


def _is_attribution(line: str) -> bool:
    """Whether a line is an "On <date>, <name> wrote:" line or one of its Danish forms."""
    if len(line) > _MAX_HEADER_CHARS or not line.endswith(":"):
        return False
    lower = line.casefold()
    body = lower[:-1].rstrip()
    if body.endswith(" wrote"):
        if lower.startswith("on ") and _DATE_HINT.search(body):
            return True
        return _BRACKETED_ADDRESS.search(body) is not None
    match = _SKREV.search(body)
    if match is None:
        return False
    head, tail = body[: match.start()], body[match.end():]
    if match.group(1).strip() == "den":  # "<name> skrev den <date>:"
        return _DATE_HINT.search(tail) is not None
    if head.startswith("den ") and _DATE_HINT.search(head):  # "Den <date> skrev <name>:"
        return True
    if _STARTS_WITH_DATE.match(head) and "@" in tail:  # "<date> skrev <name> <addr>:"
        return True
    return not tail and _BRACKETED_ADDRESS.search(head) is not None  # "<name> <addr> skrev:"


def _label(line: str) -> str | None:
    """The header field an Outlook header line names ("from", "date", ...), if it is one."""
    match = _LABEL.match(line)
    return _LABELS.get(match.group("label").casefold()) if match else None


def _header_block_follows(cleaned: list[str], start: int) -> bool:
    """Whether a date label and a To or Subject label follow the "From:" line at start."""
    seen: set[str] = set()
    for line in cleaned[start + 1 : start + 1 + _HEADER_BLOCK_LINES]:
        if not line:
            continue
        label = _label(line)
        if label is None:
            if "@" in line:
                continue  # a wrapped address list
            break
        seen.add(label)
    return "date" in seen and bool(seen & {"to", "subject"})


# -- signatures ---------------------------------------------------------------------------


def _signature_start(lines: list[str]) -> int:
    """The index of the first signature line, or len(lines): "-- ", footer, then closing."""
    end = len(lines)
    for index, line in enumerate(lines):
        if line.translate(ODD_CHARACTERS).strip() == "--":
            end = index
            break
    for index, line in enumerate(lines[:end]):
        cleaned = _clean_line(line).strip("*_ ")
        if len(cleaned) <= _MAX_FOOTER_CHARS and _MOBILE_FOOTER.match(cleaned):
            end = index
            break
    for index, line in enumerate(lines[:end]):
        cleaned = _clean_line(line).strip("*_ ")
        if len(cleaned) > _MAX_FOOTER_CHARS:
            continue
        if not (_CLOSING.match(cleaned) or _CLOSING_WITH_NAME.match(cleaned)):
            continue
        if sum(1 for after in lines[index + 1 : end] if after.strip()) <= _MAX_SIGNATURE_LINES:
            return index
    return end
