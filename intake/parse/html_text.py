"""Readable plain text from an HTML mail body, for finding things in it and for showing it.

Nothing is fetched and nothing is run: scripts, styles and the head are dropped, links keep
their text (and their target in brackets, as Outlook writes them in its own text version).

The markup is read by a small scanner here rather than by `html.parser`: on Python 3.11 the
stdlib parser rescans to the end of the input for every unclosed start tag, so 100 KB of
`<a <a <a` takes minutes. The scanner follows the HTML tokenizer's rules for what is a tag,
comment or raw text, never moves backwards (work is linear in the input), and leaves entity
decoding to the stdlib's `html.unescape`.
"""

from __future__ import annotations

import html
import logging
import re
from urllib.parse import unquote

log = logging.getLogger("chikanemail.intake.html_text")

# Elements whose content is never text for a reader.
_SKIPPED = frozenset({"script", "style", "head", "title", "template", "xml"})
# Elements whose content the scanner drops unread, as a browser treats it as raw text.
_RAW_TEXT = frozenset({"script", "style"})
# Elements that end the head even when it was never closed (malformed mail is common).
_BODY_START = frozenset({"body", "div", "p", "table", "br", "span", "a", "font", "center"})
# Blocks set off by a blank line. A <p> is one line, as in Outlook's and Gmail's own text
# versions (their paragraphs have no margin); an empty <p> is an empty line.
_PARAGRAPHS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"})
_LINES = frozenset({
    "address", "article", "aside", "caption", "center", "dd", "details", "dialog", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "legend", "li",
    "main", "nav", "ol", "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
})
_CELLS = frozenset({"td", "th"})
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
})
_LINK_SCHEMES = ("http:", "https:", "mailto:", "ftp:", "tel:")
_MAX_HREF_CHARS = 2000
_MAX_ALT_CHARS = 200

# Whitespace as a reader sees it; the no-break space is a plain space here.
_SPACES = re.compile(r"[ \t\n\r\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_SPACE_RUN = re.compile(r" {2,}")
_TAG_LIKE = re.compile(r"<[^<>]*>")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")

# The HTML tokenizer's pieces. Tag and attribute names stop at ASCII whitespace, "/" or ">".
_TAG_NAME = re.compile(r"[A-Za-z][^ \t\n\r\f/>]*")
_ATTR_NAME = re.compile(r"[^ \t\n\r\f/>][^ \t\n\r\f/>=]*")
_UNQUOTED_VALUE = re.compile(r"[^ \t\n\r\f>]*")
_SKIP_SPACE = re.compile(r"[ \t\n\r\f]*")
_SKIP_SPACE_SLASH = re.compile(r"[ \t\n\r\f/]*")
_COMMENT_END = re.compile(r"--!?>")
_RAW_TEXT_END = {
    name: re.compile(rf"</{name}(?=[ \t\n\r\f/>])[^>]*>?", re.IGNORECASE) for name in _RAW_TEXT
}


def html_to_text(html_body: str, *, show_links: bool = True) -> str:
    """Plain text lines for an HTML body; never raises, whatever the markup.

    Block elements and <br> become line breaks (headings, quotes and <pre> are set off by a
    blank line, an empty <p> is an empty line), entities are decoded, runs of spaces
    collapse, and a link whose target differs from its text is followed by the target in
    square brackets unless show_links is False.
    """
    collector = _TextCollector(show_links)
    try:
        _scan(html_body, collector)
        return collector.text()
    except Exception as error:  # a bug here must not stop intake; the raw body is kept anyway
        # The type only: an exception's message may quote the mail.
        log.warning("HTML body not converted (%s); tags stripped instead", type(error).__name__)
        return _crude_text(html_body)


def _crude_text(source: str) -> str:
    """Text without anything tag-like and with entities decoded: the fallback."""
    text = html.unescape(_TAG_LIKE.sub(" ", source))
    lines = (_SPACE_RUN.sub(" ", _SPACES.sub(" ", line)).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _scan(source: str, out: _TextCollector) -> None:
    """Walk the markup once, telling the collector about text, start tags and end tags."""
    length = len(source)
    pos = 0
    while pos < length:
        lt = source.find("<", pos)
        if lt < 0:
            out.data(source[pos:])
            return
        if lt > pos:
            out.data(source[pos:lt])
        following = source[lt + 1:lt + 2]
        if following.isascii() and following.isalpha():
            tag = _start_tag(source, lt)
            if tag is None:
                out.data(source[lt:])  # a tag that never ends: show the rest as it is
                return
            name, attrs, pos = tag
            out.start(name, attrs)
            if name in _RAW_TEXT:
                end = _RAW_TEXT_END[name].search(source, pos)
                if end is None:
                    return  # unclosed script or style: a browser shows nothing after it
                pos = end.end()
                out.end(name)
        elif following == "/":
            gt = source.find(">", lt + 2)
            if gt < 0:
                out.data(source[lt:])
                return
            name_match = _TAG_NAME.match(source, lt + 2, gt)
            if name_match:
                out.end(name_match.group().lower())
            pos = gt + 1
        elif following in ("!", "?"):
            if source.startswith(("<!-->", "<!--->"), lt):
                pos = source.find(">", lt) + 1  # empty comments, closed at once
                continue
            if source.startswith("<!--", lt):
                end = _COMMENT_END.search(source, lt + 4)
                if end is None:
                    return  # an unclosed comment hides the rest of the document
                pos = end.end()
                continue
            gt = source.find(">", lt + 2)  # doctype, <![if mso]>, <?xml:namespace>: no text
            if gt < 0:
                return
            pos = gt + 1
        else:
            out.data("<")  # "a < b", "<3": text
            pos = lt + 1


def _start_tag(source: str, lt: int) -> tuple[str, dict[str, str], int] | None:
    """Name, attributes and end position of the start tag at lt; None if it never ends."""
    name_match = _TAG_NAME.match(source, lt + 1)
    assert name_match is not None  # the caller saw a letter after "<"
    name = name_match.group().lower()
    attrs: dict[str, str] = {}
    pos = name_match.end()
    length = len(source)
    while True:
        pos = _skip(_SKIP_SPACE_SLASH, source, pos)
        if pos >= length:
            return None
        if source[pos] == ">":
            return name, attrs, pos + 1
        attr = _ATTR_NAME.match(source, pos)
        assert attr is not None  # any character but space, "/" or ">" starts a name
        pos = _skip(_SKIP_SPACE, source, attr.end())
        value = ""
        if source.startswith("=", pos):
            pos = _skip(_SKIP_SPACE, source, pos + 1)
            quote = source[pos:pos + 1]
            if quote in ('"', "'"):
                close = source.find(quote, pos + 1)
                if close < 0:
                    return None
                value, pos = source[pos + 1:close], close + 1
            else:
                unquoted = _UNQUOTED_VALUE.match(source, pos)
                assert unquoted is not None  # the pattern matches the empty string
                value, pos = unquoted.group(), unquoted.end()
        attrs.setdefault(attr.group().lower(), html.unescape(value))


def _skip(pattern: re.Pattern[str], source: str, pos: int) -> int:
    match = pattern.match(source, pos)
    return match.end() if match else pos


class _TextCollector:
    """Turns the scanner's events into lines of text."""

    def __init__(self, show_links: bool) -> None:
        self._show_links = show_links
        self._lines: list[str] = []
        self._current: list[str] = []
        self._blank_before_next = False
        self._skipping: dict[str, int] = {}
        self._pre_depth = 0
        self._paragraph_start: int | None = None
        # Open links: target, and where their text starts (line number, piece index).
        self._links: list[tuple[str | None, int, int]] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        """A start tag: skipped regions, line structure, links and images."""
        if tag in _BODY_START:
            self._skipping.pop("head", None)
            self._skipping.pop("title", None)
        if tag in _SKIPPED:
            self._skipping[tag] = self._skipping.get(tag, 0) + 1
        elif tag == "br":
            self._end_line(keep_empty=True)
        elif tag == "p":
            self._end_line()
            self._paragraph_start = len(self._lines)
        elif tag in _PARAGRAPHS:
            self._end_paragraph()
            if tag == "pre":
                self._pre_depth += 1
        elif tag in _LINES:
            self._end_line()
        elif tag in _CELLS:
            self._current.append(" ")
        elif tag == "a":
            self._links.append((attrs.get("href"), len(self._lines), len(self._current)))
        elif tag == "img":
            self._image(attrs)

    def end(self, tag: str) -> None:
        """An end tag: close skipped regions, blocks and links."""
        if tag in _SKIPPED:
            count = self._skipping.get(tag, 0)
            if count > 1:
                self._skipping[tag] = count - 1
            else:
                self._skipping.pop(tag, None)
        elif tag == "br":  # a stray </br> is a line break in every browser
            self._end_line(keep_empty=True)
        elif tag == "p":
            self._end_line(keep_empty=self._paragraph_start == len(self._lines))
            self._paragraph_start = None
        elif tag in _PARAGRAPHS:
            self._end_paragraph()
            if tag == "pre" and self._pre_depth:
                self._pre_depth -= 1
        elif tag in _LINES:
            self._end_line()
        elif tag == "a" and self._links:
            self._close_link(*self._links.pop())

    def data(self, raw: str) -> None:
        """Text between tags (entities not yet decoded), unless inside a skipped element."""
        if self._skipping:
            return
        text = _INVISIBLE.sub("", html.unescape(raw))
        if not self._pre_depth:
            self._current.append(_SPACES.sub(" ", text))
            return
        first, *rest = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._current.append(_SPACES.sub(" ", first))
        for line in rest:
            self._end_line(keep_empty=True)
            self._current.append(_SPACES.sub(" ", line))

    def text(self) -> str:
        """The collected text: lines without edge spaces, at most one blank line in a row."""
        self._end_line()
        out: list[str] = []
        for line in self._lines:
            if line or (out and out[-1]):
                out.append(line)
        while out and not out[-1]:
            out.pop()
        return "\n".join(out)

    def _end_line(self, *, keep_empty: bool = False) -> None:
        line = _SPACE_RUN.sub(" ", "".join(self._current)).strip()
        self._current = []
        if line:
            if self._blank_before_next:
                self._lines.append("")
            self._lines.append(line)
            self._blank_before_next = False
        elif keep_empty:
            self._lines.append("")

    def _end_paragraph(self) -> None:
        self._end_line()
        self._blank_before_next = bool(self._lines)

    def _image(self, attrs: dict[str, str]) -> None:
        if self._skipping:
            return
        alt = " ".join(attrs.get("alt", "").split())[:_MAX_ALT_CHARS]
        if not alt:
            return
        # Gmail draws emoji as images whose alt is the emoji itself.
        self._current.append(alt if "data-emoji" in attrs else f"[image: {alt}]")

    def _close_link(self, href: str | None, line_number: int, piece: int) -> None:
        if not self._show_links or href is None or self._skipping:
            return
        target = href.strip()
        if not target.lower().startswith(_LINK_SCHEMES):
            return  # javascript:, data:, cid:, anchors and relative links say nothing
        if line_number != len(self._lines):
            label = "?"  # the link spans lines; its text is already out
        else:
            label = " ".join("".join(self._current[piece:]).split())
        if not label or _same_target(label, target):
            return
        if len(target) > _MAX_HREF_CHARS:
            target = target[:_MAX_HREF_CHARS] + "…"
        self._current.append(f" [{target}]")


def _same_target(label: str, target: str) -> bool:
    """Whether a link's text already says where it goes."""
    label = label.strip("<>[]() ").casefold()
    target = target.casefold()
    if target.startswith("mailto:"):
        address = unquote(target[len("mailto:"):].split("?", 1)[0]).strip()
        return label in (address, f"mailto:{address}", target)
    bare = _SCHEME.sub("", target).rstrip("/")
    return label in (target, bare) or _SCHEME.sub("", label).rstrip("/") == bare
