"""Facts about an image attachment: format, size, camera EXIF, a thumbnail and a perceptual hash.

Pure functions on bytes. Only the allow-listed formats are ever handed to a decoder, the
declared size is checked before any pixel is decoded, and damaged or hostile input becomes a
flag on the result, never an exception. Nothing here logs image content or metadata values.

Thread safety: nothing here changes Pillow's global settings (`Image.MAX_IMAGE_PIXELS`,
`ImageFile.LOAD_TRUNCATED_IMAGES`). Pillow's decompression-bomb warning is turned into an error
with `warnings.catch_warnings`, which on Python 3.11 swaps process-wide state (the filters and
`showwarning`) and restores it on exit, so overlapping uses in two threads can restore each
other's state. Our own uses take a lock and never overlap; other code's uses cannot be ordered.
If one overlaps ours, Pillow's bomb check may only warn instead of raising, but memory is still
bounded: the explicit `max_pixels` check before `load()` does not depend on warning filters.
"""

from __future__ import annotations

import io
import logging
import math
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

import pillow_heif
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

log = logging.getLogger("chikanemail.intake.images")

pillow_heif.register_heif_opener()  # adds Pillow format "HEIF" (HEIC/HEIF photos from phones)

# Pillow format names (the ids `Image.open(formats=...)` takes). The JPEG opener may hand back
# format "MPO" for a multi-picture JPEG (some phone portraits); that is still a JPEG file.
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "HEIF"})
_OPEN_ORDER = ("JPEG", "PNG", "HEIF", "GIF", "WEBP", "TIFF", "BMP")
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})

DEFAULT_MAX_PIXELS = 64_000_000
THUMBNAIL_SIDE = 512
THUMBNAIL_QUALITY = 85
_MAX_TEXT = 256  # EXIF text values are facts for a list view, not documents

FLAG_NOT_ALLOWED = "image-format-not-allowed"
FLAG_TRUNCATED = "image-truncated"
FLAG_CORRUPT = "image-corrupt"
FLAG_BOMB = "image-decompression-bomb"
FLAG_TOO_LARGE = "image-too-large"
FLAG_DECODER_WARNING = "image-decoder-warning"
FLAG_EXIF_UNREADABLE = "exif-unreadable"
FLAG_EXIF_TEXT_SHORTENED = "exif-text-shortened"
FLAG_THUMBNAIL_FAILED = "thumbnail-failed"

_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_SOFTWARE = 0x0131
_TAG_ORIENTATION = 0x0112
# EXIF orientation -> the transposition that shows the picture upright (EXIF 2.3, 4.6.4 A).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIDEWAYS = frozenset({5, 6, 7, 8})

# Serialises our changes to the process-wide warning filters (see the module docstring).
_WARNINGS_LOCK = threading.Lock()

_EXIF_DATETIME = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")

# Magic bytes -> Pillow format name, for the allowed formats and for common image formats we
# refuse (so a refusal says "not allowed" rather than "corrupt").
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"8BPS", "PSD"),
    (b"icns", "ICNS"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (b"\xffO\xffQ", "JPEG2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JXL"),
    (b"\xff\x0a", "JXL"),
)
_HEIF_BRANDS = frozenset({
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_IMAGE_SUFFIXES = frozenset({
    "jpg", "jpeg", "jpe", "jfif", "png", "gif", "webp", "bmp", "dib", "tif", "tiff", "heic",
    "heif", "hif", "avif", "ico", "psd", "jp2", "jxl", "svg", "tga", "pcx", "qoi",
})


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
class _Findings:
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


class _Rejected(Exception):
    """The bytes are not an intact, allowed image of an acceptable size."""

    def __init__(self, flag: str) -> None:
        super().__init__(flag)
        self.flag = flag


# -- public -------------------------------------------------------------------


def looks_like_image(data: bytes, declared_type: str | None, filename: str | None) -> bool:
    """Tell cheaply whether a part should be analysed as an image (by bytes, type or name)."""
    if declared_type and declared_type.split(";", 1)[0].strip().lower().startswith("image/"):
        return True
    if _sniff_format(data) is not None:
        return True
    if filename and "." in filename:
        return filename.rsplit(".", 1)[1].strip().lower() in _IMAGE_SUFFIXES
    return False


def analyze_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFacts:
    """Describe the image in the bytes; bad, hostile or oversized input is flagged, not raised.

    `max_pixels` can only tighten Pillow's own decompression-bomb limit, never loosen it.
    """
    findings = _Findings()
    try:
        _analyze_into(findings, data, max_pixels)
    except Exception as error:  # the last line of defence: bad input must never raise
        log.warning("image analysis stopped by an unexpected %s", type(error).__name__)
        findings.flag(FLAG_CORRUPT)
    if findings.flags:
        log.info("image (%s) flagged: %s", findings.format, ", ".join(findings.flags))
    return findings.freeze()


def decode_upright(
    data: bytes, *, fit_pixels: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image | None:
    """The first frame as RGB on white, upright, scaled down to at most `fit_pixels` pixels.

    None when the bytes are not an intact, allowed image within `max_pixels`.
    """
    try:
        with _bomb_guard():
            image = _open(data)
            with image:
                _check_size(image, max_pixels)
                width, height = image.size
                box = _box_for_pixels(width, height, fit_pixels)
                _load(image, draft_box=box)
                return _upright_rgb(image, box)
    except _Rejected as rejected:
        log.info("image not decoded: %s", rejected.flag)
    except Exception as error:  # bad input must never raise
        log.warning("image decoding stopped by an unexpected %s", type(error).__name__)
    return None


# -- the analysis, step by step -------------------------------------------------


def _analyze_into(findings: _Findings, data: bytes, max_pixels: int) -> None:
    sniffed = _sniff_format(data)
    if sniffed is not None and sniffed not in ALLOWED_FORMATS:
        findings.format = sniffed
        findings.flag(FLAG_NOT_ALLOWED)
        return
    with _bomb_guard() as noted:
        try:
            _decode_into(findings, data, max_pixels)
        except _Rejected as rejected:
            findings.flag(rejected.flag)
    if noted:
        findings.flag(FLAG_DECODER_WARNING)
        log.debug("decoder warnings: %s", ", ".join(sorted(set(noted))))


def _decode_into(findings: _Findings, data: bytes, max_pixels: int) -> None:
    image = _open(data)
    with image:
        findings.format = image.format
        # EXIF is read from the header, before load(): it is evidence even when the pixels are
        # not, and TIFF's load() applies and then deletes the orientation. PNG may keep EXIF
        # after the pixel data, where only load() finds it.
        exif_in_header = image.format != "PNG" or "exif" in image.info
        if exif_in_header:
            _record_exif(findings, image)
        else:
            findings.width, findings.height = image.size
        _check_size(image, max_pixels)
        _load(image, draft_box=(THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
        if not exif_in_header:
            _record_exif(findings, image)
        _record_pictures(findings, image)


@contextmanager
def _bomb_guard() -> Iterator[list[str]]:
    """Raise Pillow's bomb warning as an error; note (never print) this thread's other warnings."""
    noted: list[str] = []
    thread = threading.get_ident()
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        show = warnings.showwarning

        def note(
            message: Warning | str, category: type[Warning], filename: str, lineno: int,
            file: TextIO | None = None, line: str | None = None,
        ) -> None:
            if threading.get_ident() == thread:
                noted.append(category.__name__)
            else:  # another thread's warning during our window: shown as usual
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = note
        yield noted


def _open(data: bytes) -> ImageFile.ImageFile:
    try:
        return Image.open(io.BytesIO(data), formats=_OPEN_ORDER)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _Rejected(FLAG_BOMB) from error
    except UnidentifiedImageError as error:
        raise _Rejected(FLAG_CORRUPT) from error
    except Exception as error:
        raise _Rejected(_damage_flag(error)) from error


def _check_size(image: ImageFile.ImageFile, max_pixels: int) -> None:
    """Refuse before decoding: what the header declares is what `load()` would allocate."""
    width, height = image.size
    if width < 1 or height < 1:
        raise _Rejected(FLAG_CORRUPT)
    if width * height > max_pixels:
        raise _Rejected(FLAG_TOO_LARGE)


def _load(image: ImageFile.ImageFile, *, draft_box: tuple[int, int]) -> None:
    """Decode the first frame: the real integrity check (`verify()` skips most of the data)."""
    if image.format in _JPEG_FORMATS:
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding; it still reads every byte.
        image.draft("RGB", draft_box)
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _Rejected(FLAG_BOMB) from error
    except Exception as error:
        raise _Rejected(_damage_flag(error)) from error


def _damage_flag(error: Exception) -> str:
    """Truncated when the decoder ran out of bytes, corrupt for anything else."""
    message = str(error).lower()
    if isinstance(error, EOFError) or "truncated" in message or "end of file" in message:
        return FLAG_TRUNCATED
    return FLAG_CORRUPT


def _record_exif(findings: _Findings, image: ImageFile.ImageFile) -> None:
    """Camera facts from EXIF, and the upright size the orientation implies."""
    findings.width, findings.height = image.size
    try:
        exif = image.getexif()
        findings.exif_make = _exif_text(findings, exif.get(_TAG_MAKE))
        findings.exif_model = _exif_text(findings, exif.get(_TAG_MODEL))
        findings.exif_software = _exif_text(findings, exif.get(_TAG_SOFTWARE))
        effective = _effective_orientation(image)
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


def _record_pictures(findings: _Findings, image: ImageFile.ImageFile) -> None:
    try:
        upright = _upright_rgb(image, (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        findings.dhash = difference_hash(upright)
        buffer = io.BytesIO()
        upright.save(
            buffer, "JPEG", quality=THUMBNAIL_QUALITY, icc_profile=image.info.get("icc_profile")
        )
        findings.thumbnail_jpeg = buffer.getvalue()
    except Exception as error:
        log.info("thumbnail failed: %s", type(error).__name__)
        findings.flag(FLAG_THUMBNAIL_FAILED)


# -- pictures -------------------------------------------------------------------


def difference_hash(image: Image.Image) -> str:
    """The 64-bit difference hash (dHash) of the picture, as 16 lowercase hex digits."""
    small = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = small.tobytes()
    bits = 0
    for row in range(8):
        for column in range(8):
            left = pixels[row * 9 + column]
            right = pixels[row * 9 + column + 1]
            bits = (bits << 1) | (1 if left < right else 0)
    return f"{bits:016x}"


def _upright_rgb(image: ImageFile.ImageFile, box: tuple[int, int]) -> Image.Image:
    """The decoded frame shrunk to fit the box, transposed upright, RGB over white."""
    orientation = _effective_orientation(image)
    frame: Image.Image = image
    if frame.mode in ("1", "P", "PA"):  # these resize only by nearest neighbour
        has_alpha = frame.mode == "PA" or "transparency" in frame.info
        frame = frame.convert("RGBA" if has_alpha else "RGB")
    width, height = frame.size
    size = _fit(width, height, box)
    if size != frame.size:
        frame = frame.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    frame = _rgb_over_white(frame)
    if orientation in _UPRIGHT:
        frame = frame.transpose(_UPRIGHT[orientation])
    if frame is image:
        frame = frame.copy()  # never hand out the opened file's image: closing it empties it
    frame.info = {}  # no EXIF, GPS or comments travel into derived images
    return frame


def _effective_orientation(image: ImageFile.ImageFile) -> int | None:
    """The EXIF orientation still to apply (pillow-heif has already applied HEIF's)."""
    try:
        value = image.getexif().get(_TAG_ORIENTATION)
    except Exception:  # unreadable EXIF is flagged by _record_exif; show the pixels as stored
        return None
    return value if isinstance(value, int) else None


def _rgb_over_white(frame: Image.Image) -> Image.Image:
    if frame.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = frame.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if frame.mode == "RGB":
        return frame
    return frame.convert("RGB")


def _fit(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest size with the same aspect that fits the box; never larger than now."""
    scale = min(box[0] / width, box[1] / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _box_for_pixels(width: int, height: int, pixels: int) -> tuple[int, int]:
    scale = min(math.sqrt(pixels / (width * height)), 1.0)
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


# -- EXIF values -----------------------------------------------------------------


def _exif_text(findings: _Findings, value: object, *, strip: bool = True) -> str | None:
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


# -- formats ---------------------------------------------------------------------


def _sniff_format(data: bytes) -> str | None:
    """The Pillow format name the magic bytes announce, allowed or not; None if unknown."""
    head = data[:32]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and head[4:6] != b"\x00\x00":
        return "ICO" if head[2] == 1 else "CUR"  # (a TGA header can start the same way)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIF"
        if brand in _AVIF_BRANDS:
            return "AVIF"
    start = data[:1024].lstrip().lower()
    if start.startswith(b"<svg") or (start.startswith(b"<?xml") and b"<svg" in start):
        return "SVG"
    return None
