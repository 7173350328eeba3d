"""Camera facts from EXIF: make, model and software, when the picture was taken (and at
which UTC offset), whether it carries GPS, and the orientation it is meant to be shown in."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from PIL import ExifTags, ImageFile

from intake.parse.images.facts import FLAG_EXIF_TEXT_SHORTENED, FLAG_EXIF_UNREADABLE, Findings

log = logging.getLogger("chikanemail.intake.images")

_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_SOFTWARE = 0x0131
_TAG_ORIENTATION = 0x0112
# EXIF orientations that turn the picture by a quarter: width and height swap.
_SIDEWAYS = frozenset({5, 6, 7, 8})

_MAX_TEXT = 256  # EXIF text values are facts for a list view, not documents
_EXIF_DATETIME = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def record_exif(findings: Findings, image: ImageFile.ImageFile) -> None:
    """Camera facts from EXIF, and the upright size the orientation implies."""
    findings.width, findings.height = image.size
    try:
        exif = image.getexif()
        findings.exif_make = _exif_text(findings, exif.get(_TAG_MAKE))
        findings.exif_model = _exif_text(findings, exif.get(_TAG_MODEL))
        findings.exif_software = _exif_text(findings, exif.get(_TAG_SOFTWARE))
        effective = effective_orientation(image)
        # pillow-heif rewrites the EXIF orientation to 1 (libheif has already applied the
        # HEIF container's rotation) and keeps the value it found here.
        found = image.info.get("original_orientation") or effective
        findings.orientation = found if isinstance(found, int) else None
        # Pillow's TIFF reader already reports the upright size (its load() turns the pixels).
        if effective in _SIDEWAYS and image.format != "TIFF":
            findings.width, findings.height = image.size[1], image.size[0]
        details = exif.get_ifd(ExifTags.IFD.Exif)
        findings.taken_at_raw = _exif_text(
            findings, details.get(ExifTags.Base.DateTimeOriginal), strip=False
        )
        findings.taken_at_offset = _exif_text(
            findings, details.get(ExifTags.Base.OffsetTimeOriginal)
        )
        findings.taken_at = _taken_at(findings.taken_at_raw, findings.taken_at_offset)
        findings.has_gps = bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
    except Exception as error:
        log.info("EXIF unreadable: %s", type(error).__name__)
        findings.flag(FLAG_EXIF_UNREADABLE)


def effective_orientation(image: ImageFile.ImageFile) -> int | None:
    """The EXIF orientation still to apply (pillow-heif has already applied HEIF's)."""
    try:
        value = image.getexif().get(_TAG_ORIENTATION)
    except Exception:  # unreadable EXIF is flagged by record_exif; show the pixels as stored
        return None
    return value if isinstance(value, int) else None


def _exif_text(findings: Findings, value: object, *, strip: bool = True) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = value.rstrip("\x00")
    if strip:
        text = text.strip()
    if len(text) > _MAX_TEXT:
        findings.flag(FLAG_EXIF_TEXT_SHORTENED)
        text = text[:_MAX_TEXT]
    return text or None


def _taken_at(raw: str | None, offset: str | None) -> datetime | None:
    """The EXIF time; aware when the offset is known and valid, naive otherwise."""
    if raw is None:
        return None
    match = _EXIF_DATETIME.fullmatch(raw.strip())
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:  # e.g. the "0000:00:00 00:00:00" some cameras write
        return None
    zone = _offset_zone(offset)
    return moment.replace(tzinfo=zone) if zone is not None else moment


def _offset_zone(offset: str | None) -> timezone | None:
    match = _EXIF_OFFSET.fullmatch(offset) if offset else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    try:
        return timezone(-delta if sign == "-" else delta)
    except ValueError:  # beyond +-24 hours
        return None
