"""A seeded mutator of real-world mails, for the corpus-mutation fault test (issue 9, R3).

Every mutation is a named function of (raw bytes, random source) that returns the damaged
bytes, or None when it does not apply to the mail (no boundary to damage, no base64 part).
`mutate(raw, seed)` picks one that applies, so a failure is reproduced from the seed alone:

    mutate(Path(source).read_bytes(), seed)

A mutation says whether the damage is one the parser can see (`detectable`): a missing
closing delimiter, a multipart without a usable boundary, an impossible base64 body, a
header repeated that may occur once, a header block broken by a line that is no header.
Others (a flipped byte in a body, a merged part) can leave a mail that is still well formed,
and nothing can be asked of its recorded defects.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

# A header block ends at the first empty line (either line ending).
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# The top-level boundary parameter (quoted or not), as in the header block.
_BOUNDARY_PARAMETER = re.compile(rb'boundary\s*=\s*("([^"\r\n]*)"|([^\s;"]+))', re.IGNORECASE)
_BASE64_HEADER = re.compile(rb"^Content-Transfer-Encoding:[ \t]*base64[ \t]*\r?$",
                            re.IGNORECASE | re.MULTILINE)
_BASE64_LINE = re.compile(rb"^[A-Za-z0-9+/]{16,}={0,2}\r?$", re.MULTILINE)
# Headers a message may carry at most once (RFC 5322 3.6, RFC 2045 and RFC 2183).
SINGLE_HEADERS = (b"Content-Type", b"Content-Transfer-Encoding", b"MIME-Version",
                  b"Content-Disposition", b"Subject", b"From", b"Date", b"Message-ID")
HUGE_LINE_BYTES = 200 * 1024


@dataclass(frozen=True)
class Mutant:
    """One mutated mail and what was done to it."""

    seed: int
    mutation: str
    raw: bytes
    detectable: bool


MutationResult = tuple[bytes, bool] | None
Mutation = Callable[[bytes, random.Random], MutationResult]


def _header_block_end(raw: bytes) -> int:
    """Where the top-level header block ends (the blank line), or len(raw) if it never does."""
    match = _HEADER_END.search(raw)
    return match.start() if match else len(raw)


def _linesep(raw: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in raw[:65536] else b"\n"


def _top_boundary(raw: bytes) -> tuple[bytes, int, int] | None:
    """The top-level multipart boundary and the span of its value in the header block."""
    head = raw[: _header_block_end(raw)]
    content_type = re.search(rb"^Content-Type:[^\n]*(\n[ \t][^\n]*)*", head,
                             re.IGNORECASE | re.MULTILINE)
    if content_type is None or b"multipart/" not in content_type.group(0).lower():
        return None
    match = _BOUNDARY_PARAMETER.search(content_type.group(0))
    if match is None:
        return None
    group = 2 if match.group(2) is not None else 3
    value = match.group(group)
    if not value:
        return None
    start = content_type.start() + match.start(group)
    return value, start, start + len(value)


def _close_delimiter(raw: bytes, boundary: bytes) -> re.Match[bytes] | None:
    """The last closing delimiter line of the boundary, if the body has one."""
    pattern = re.compile(rb"^--" + re.escape(boundary) + rb"--[ \t]*\r?$", re.MULTILINE)
    matches = list(pattern.finditer(raw, _header_block_end(raw)))
    return matches[-1] if matches else None


# -- the mutations -------------------------------------------------------------


def flip_bytes(raw: bytes, rng: random.Random) -> MutationResult:
    """Flip one to eight bytes anywhere (in headers, boundaries or bodies)."""
    if not raw:
        return None
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= rng.randint(1, 255)
    return bytes(data), False


def truncate(raw: bytes, rng: random.Random) -> MutationResult:
    """Cut the mail at a random point; detectable if the cut loses the closing delimiter."""
    if len(raw) < 2:
        return None
    cut = rng.randrange(1, len(raw))
    boundary = _top_boundary(raw)
    detectable = False
    if boundary is not None:
        close = _close_delimiter(raw, boundary[0])
        opening = re.search(rb"^--" + re.escape(boundary[0]), raw[_header_block_end(raw):],
                            re.MULTILINE)
        if close is not None and opening is not None:
            first = _header_block_end(raw) + opening.end()
            detectable = first < cut <= close.start()
    return raw[:cut], detectable


def delete_close_delimiter(raw: bytes, rng: random.Random) -> MutationResult:
    """Remove the top-level closing delimiter line (a mail cut short by a relay)."""
    boundary = _top_boundary(raw)
    close = _close_delimiter(raw, boundary[0]) if boundary else None
    if close is None:
        return None
    return raw[: close.start()] + raw[close.end():], True


def damage_delimiter_line(raw: bytes, rng: random.Random) -> MutationResult:
    """Change one character of one delimiter line of the top-level boundary.

    A damaged part delimiter silently merges two parts (nothing to see); a damaged closing
    delimiter leaves the multipart unclosed, which the parser records.
    """
    boundary = _top_boundary(raw)
    if boundary is None:
        return None
    pattern = re.compile(rb"^--" + re.escape(boundary[0]) + rb"(--)?", re.MULTILINE)
    lines = list(pattern.finditer(raw, _header_block_end(raw)))
    if not lines:
        return None
    chosen = rng.choice(lines)
    position = chosen.start() + 2 + rng.randrange(len(boundary[0]))
    replacement = b"#" if raw[position:position + 1] != b"#" else b"%"
    damaged = raw[:position] + replacement + raw[position + 1:]
    closing = chosen.group(1) is not None and len(
        re.findall(rb"^--" + re.escape(boundary[0]) + rb"--", damaged, re.MULTILINE)) == 0
    return damaged, closing


def change_boundary_parameter(raw: bytes, rng: random.Random) -> MutationResult:
    """Give the top-level multipart a boundary that no delimiter line uses."""
    boundary = _top_boundary(raw)
    if boundary is None:
        return None
    _value, start, end = boundary
    new = b"mutated-" + b"%08x" % rng.getrandbits(32)
    if re.search(rb"^--" + re.escape(new), raw, re.MULTILINE):
        return None
    return raw[:start] + new + raw[end:], True


def delete_boundary_parameter(raw: bytes, rng: random.Random) -> MutationResult:
    """Drop the boundary parameter: a multipart that cannot be split."""
    boundary = _top_boundary(raw)
    if boundary is None:
        return None
    _value, start, end = boundary
    head_end = _header_block_end(raw)
    # Back up over `boundary=` and an opening quote; the closing quote follows `end`.
    parameter_start = raw.rfind(b"=", 0, start)
    name_start = raw.lower().rfind(b"boundary", 0, parameter_start)
    tail = end + 1 if raw[end:end + 1] == b'"' else end
    if name_start < 0 or tail > head_end:
        return None
    return raw[:name_start] + b"x-dropped=1" + raw[tail:], True


def duplicate_header(raw: bytes, rng: random.Random) -> MutationResult:
    """Repeat a header that may occur only once, with its own or a conflicting value."""
    head_end = _header_block_end(raw)
    head = raw[:head_end]
    present = [
        match for name in SINGLE_HEADERS
        for match in re.finditer(rb"^" + name + rb":[^\n]*\n?(?:[ \t][^\n]*\n?)*", head,
                                 re.IGNORECASE | re.MULTILINE)
    ]
    if not present:
        return None
    original = rng.choice(present)
    line = original.group(0)
    if not line.endswith(b"\n"):
        line += _linesep(raw)
    name = line.split(b":", 1)[0]
    conflicting = {
        b"content-type": b"text/plain; charset=us-ascii",
        b"content-transfer-encoding": b"quoted-printable",
        b"mime-version": b"2.0",
        b"subject": b"a second subject",
        b"from": b"Other Person <other@example.invalid>",
    }
    if rng.random() < 0.5 and name.lower() in conflicting:
        line = name + b": " + conflicting[name.lower()] + _linesep(raw)
    # Insert at the start of a header line (or at the end of the header block).
    starts = [0] + [m.end() for m in re.finditer(rb"\n(?=[^ \t\r\n])", head)]
    insert_at = rng.choice(starts)
    if insert_at > len(head):
        insert_at = len(head)
    if insert_at == len(head) and not head.endswith(b"\n"):
        line = _linesep(raw) + line.rstrip(b"\r\n")
    return raw[:insert_at] + line + raw[insert_at:], True


def break_header_block(raw: bytes, rng: random.Random) -> MutationResult:
    """Put a line that is not a header into the header block (after its first line)."""
    head = raw[: _header_block_end(raw)]
    starts = [m.end() for m in re.finditer(rb"\n(?=[^ \t\r\n])", head)]
    if not starts:
        return None
    insert_at = rng.choice(starts)
    return raw[:insert_at] + b"this line is no header" + _linesep(raw) + raw[insert_at:], True


def break_base64(raw: bytes, rng: random.Random) -> MutationResult:
    """Damage one line of a base64 body: characters outside the alphabet, or a cut line."""
    candidates = []
    for header in _BASE64_HEADER.finditer(raw):
        body = _HEADER_END.search(raw, header.end() - 1)
        if body is None:
            continue
        line = _BASE64_LINE.search(raw, body.end())
        if line is not None and line.start() == body.end():
            candidates.append(line)
    if not candidates:
        return None
    line = rng.choice(candidates)
    text = line.group(0).rstrip(b"\r")
    if rng.random() < 0.5:
        position = rng.randrange(len(text))
        damaged = text[:position] + b"!*" + text[position:]
        detectable = True
    else:
        # A body cut to a length no base64 text can have (1 mod 4) and no padding.
        damaged = text.rstrip(b"=")
        damaged = damaged[: len(damaged) - (len(damaged) % 4) + 1] if len(damaged) > 4 else damaged
        detectable = False  # later lines may restore a valid total length
    return raw[:line.start()] + damaged + raw[line.start() + len(text):], detectable


def huge_line(raw: bytes, rng: random.Random) -> MutationResult:
    """Insert a 200 KB line without a line break, in the header block or a body."""
    filler = bytes(rng.choice(b"abcdefghij ") for _ in range(64)) * (HUGE_LINE_BYTES // 64)
    head_end = _header_block_end(raw)
    if rng.random() < 0.5 and head_end > 0:
        return raw[:head_end] + _linesep(raw) + b"X-Huge: " + filler + raw[head_end:], False
    position = rng.randrange(head_end, len(raw) + 1)
    return raw[:position] + filler + raw[position:], False


MUTATIONS: dict[str, Mutation] = {
    function.__name__: function
    for function in (
        flip_bytes, truncate, delete_close_delimiter, damage_delimiter_line,
        change_boundary_parameter, delete_boundary_parameter, duplicate_header,
        break_header_block, break_base64, huge_line,
    )
}


def mutate(raw: bytes, seed: int) -> Mutant:
    """One mutation of the mail, chosen and applied by a random source seeded with `seed`."""
    rng = random.Random(seed)
    names = list(MUTATIONS)
    rng.shuffle(names)
    for name in names:
        result = MUTATIONS[name](raw, rng)
        if result is not None and result[0] != raw:
            return Mutant(seed, name, result[0], result[1])
    # Nothing applied (an empty file): an appended byte is still a different mail.
    return Mutant(seed, "append_byte", raw + b"\x00", False)
