"""Names of files in an export bundle: an extracted item's name made safe on every system,
so a hostile attachment name (`../../etc/passwd`, NUL, a right-to-left override) can never
place a file outside `evidence/` or pass for something it is not."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from storage.models import Evidence

# The safe part of an evidence file name, in UTF-8 bytes (after `<sha256>-`: 185 in all,
# well under the 255 of common file systems).
MAX_NAME_BYTES = 120
_MAX_SUFFIX_BYTES = 16
# Control characters, line separators and the bidirectional overrides that make
# `harmless\u202egpj.exe` look like a picture; all dropped from names.
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Path separators and what Windows refuses in a name; each becomes `_`.
_RESERVED = re.compile(r'[/\\:*?"<>|]')
_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "message/rfc822": ".eml",
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "image/heic": ".heic", "image/tiff": ".tif", "image/bmp": ".bmp",
    "application/pdf": ".pdf", "application/zip": ".zip",
    "application/ms-tnef": ".dat", "application/x-ole-storage": ".msg",
}


def safe_filename(name: str | None, role: str, sniffed_type: str | None) -> str:
    """A file name that is safe everywhere: the basename only, without separators, control
    or direction characters, leading dots or Windows-reserved characters, at most
    MAX_NAME_BYTES of UTF-8; the role and the sniffed type's extension when nothing is left."""
    cleaned = ""
    if name:
        text = unicodedata.normalize("NFC", name)
        text = re.split(r"[/\\]", text)[-1]  # the basename, whatever the sender's system
        text = _RESERVED.sub("_", _INVISIBLE.sub("", text))
        cleaned = " ".join(text.split()).lstrip(". ").rstrip(". ")
    if not cleaned:
        role_name = re.sub(r"[^a-z0-9-]", "", role.lower()) or "part"
        cleaned = role_name + extension_for(sniffed_type)
    return _cap_length(cleaned)


def extension_for(media_type: str | None) -> str:
    """The usual file extension of a MIME type (`.bin` when unknown)."""
    if not media_type:
        return ".bin"
    media_type = media_type.split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type) or ".bin"


def _cap_length(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix.encode("utf-8")) + 1 > _MAX_SUFFIX_BYTES:
        stem, suffix = name, ""
    ending = f".{suffix}" if suffix else ""
    budget = MAX_NAME_BYTES - len(ending.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(". ")
    return (cut or "part") + ending


def evidence_path(row: Evidence) -> str:
    """Where an extracted item goes in the bundle: `evidence/<sha256>-<safe name>`."""
    return f"evidence/{row.sha256}-{safe_filename(row.filename, row.role, row.sniffed_type)}"
