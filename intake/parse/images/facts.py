"""What is learnt about one image (`ImageFacts`, gathered in `Findings`) and the flags
that say what was wrong with it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

FLAG_NOT_ALLOWED = "image-format-not-allowed"
FLAG_TRUNCATED = "image-truncated"
FLAG_CORRUPT = "image-corrupt"
FLAG_BOMB = "image-decompression-bomb"
FLAG_TOO_LARGE = "image-too-large"
FLAG_DECODER_WARNING = "image-decoder-warning"
FLAG_EXIF_UNREADABLE = "exif-unreadable"
FLAG_EXIF_TEXT_SHORTENED = "exif-text-shortened"
FLAG_THUMBNAIL_FAILED = "thumbnail-failed"


@dataclass(frozen=True)
class ImageFacts:
    """What could be learnt about one image; `flags` says what was wrong with it.

    `width` and `height` are the upright size, as the picture is meant to be shown (after the
    EXIF orientation is applied; HEIF files come upright from libheif). `orientation` is the
    EXIF orientation as found in the file, also for HEIF, where pillow-heif resets it to 1.
    """

    format: str | None
    width: int | None
    height: int | None
    exif_make: str | None
    exif_model: str | None
    exif_software: str | None
    taken_at_raw: str | None
    taken_at_offset: str | None
    taken_at: datetime | None
    has_gps: bool
    orientation: int | None
    dhash: str | None
    flags: tuple[str, ...]
    thumbnail_jpeg: bytes | None

    def to_json(self) -> dict[str, Any]:
        """Every fact except the thumbnail bytes, as JSON-serialisable values."""
        result: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "thumbnail_jpeg":
                continue
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            result[item.name] = value
        return result


@dataclass
class Findings:
    """ImageFacts while they are being gathered."""

    format: str | None = None
    width: int | None = None
    height: int | None = None
    exif_make: str | None = None
    exif_model: str | None = None
    exif_software: str | None = None
    taken_at_raw: str | None = None
    taken_at_offset: str | None = None
    taken_at: datetime | None = None
    has_gps: bool = False
    orientation: int | None = None
    dhash: str | None = None
    flags: list[str] = field(default_factory=list)
    thumbnail_jpeg: bytes | None = None

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)

    def freeze(self) -> ImageFacts:
        return ImageFacts(
            format=self.format, width=self.width, height=self.height,
            exif_make=self.exif_make, exif_model=self.exif_model,
            exif_software=self.exif_software, taken_at_raw=self.taken_at_raw,
            taken_at_offset=self.taken_at_offset, taken_at=self.taken_at,
            has_gps=self.has_gps, orientation=self.orientation, dhash=self.dhash,
            flags=tuple(self.flags), thumbnail_jpeg=self.thumbnail_jpeg,
        )
