"""What the evidence viewer shows of an item, made by us: a picture decoded and encoded
again with Pillow (never the original bytes, never SVG), the item's text as plain text, and
the OCR text."""

from __future__ import annotations

import hashlib
import io

from intake.parse.images.pictures import decode_upright
from storage.blobstore import BlobStore, BlobStoreError
from storage.models import Evidence

# The viewer's picture: at most about 4 megapixels (2,000 by 2,000), enough to read a
# screenshot, small enough to encode in well under a second.
VIEW_PIXELS = 4_000_000
VIEW_JPEG_QUALITY = 90
# Originals larger than this are not decoded for viewing (the download still has them).
MAX_VIEWED_BYTES = 60 * 1024 * 1024
# The text view shows at most this many characters; the download has the rest.
MAX_TEXT_CHARS = 200_000
# Media types whose bytes are text a person can read as they are (HTML as its source).
_TEXT_TYPES = ("text/", "application/xhtml+xml", "application/xml", "application/json",
               "message/", "image/svg+xml")


def rendered_picture(evidence: BlobStore, item: Evidence) -> bytes | None:
    """The item's picture as a JPEG we encoded, or None when it is no picture we decode
    (no thumbnail was made at intake, or it does not decode now)."""
    if item.thumbnail_sha256 is None or item.size > MAX_VIEWED_BYTES:
        return None
    try:
        data = evidence.read_bytes(item.sha256)
    except BlobStoreError:
        return None
    picture = decode_upright(data, fit_pixels=VIEW_PIXELS)
    if picture is None:
        return None
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=VIEW_JPEG_QUALITY)
    return buffer.getvalue()


def thumbnail(derived: BlobStore, item: Evidence) -> bytes | None:
    """The JPEG thumbnail intake made of the item, only if it still matches its name."""
    if item.thumbnail_sha256 is None:
        return None
    return _derived_bytes(derived, item.thumbnail_sha256)


def is_text(item: Evidence) -> bool:
    """Whether the item's bytes are text to be shown as text (HTML and SVG as their source,
    never rendered)."""
    media_type = (item.sniffed_type or item.declared_type or "").lower()
    return media_type.startswith(_TEXT_TYPES)


def source_text(evidence: BlobStore, item: Evidence) -> tuple[str, bool] | None:
    """The item's bytes as text in its charset (UTF-8 when it names none or an unknown
    one), and whether it was cut at MAX_TEXT_CHARS; None when it is not text or missing."""
    if not is_text(item):
        return None
    try:
        with evidence.open(item.sha256) as source:
            # Four bytes a character at most: enough bytes for the characters shown.
            data = source.read(MAX_TEXT_CHARS * 4 + 4)
    except BlobStoreError:
        return None
    try:
        text = data.decode(item.charset or "utf-8", errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
    cut = len(text) > MAX_TEXT_CHARS or item.size > len(data)
    return text[:MAX_TEXT_CHARS], cut


def derived_text(derived: BlobStore, sha256: str | None) -> str | None:
    """A derived text (the parsed body text, the OCR text), if it is stored intact."""
    data = _derived_bytes(derived, sha256) if sha256 else None
    if data is None:
        return None
    text = data.decode("utf-8", errors="replace")
    return text[:MAX_TEXT_CHARS]


def _derived_bytes(derived: BlobStore, sha256: str) -> bytes | None:
    try:
        data = derived.read_bytes(sha256)
    except BlobStoreError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None
