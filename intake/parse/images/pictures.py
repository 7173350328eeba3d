"""Pictures made from an image: the first frame upright as RGB on white (also for OCR), the
JPEG thumbnail and the difference hash (dHash)."""

from __future__ import annotations

import io
import logging
import math

from PIL import Image, ImageFile

from intake.parse.images.decode_guard import (
    DEFAULT_MAX_PIXELS,
    ImageRejected,
    bomb_guard,
    check_size,
    load_image,
    open_image,
)
from intake.parse.images.exif import effective_orientation
from intake.parse.images.facts import FLAG_THUMBNAIL_FAILED, Findings

log = logging.getLogger("chikanemail.intake.images")

THUMBNAIL_SIDE = 512
THUMBNAIL_QUALITY = 85

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


def decode_upright(
    data: bytes, *, fit_pixels: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image | None:
    """The first frame as RGB on white, upright, scaled down to at most `fit_pixels` pixels.

    None when the bytes are not an intact, allowed image within `max_pixels`.
    """
    try:
        with bomb_guard():
            image = open_image(data)
            with image:
                check_size(image, max_pixels)
                width, height = image.size
                box = _box_for_pixels(width, height, fit_pixels)
                load_image(image, draft_box=box)
                return _upright_rgb(image, box)
    except ImageRejected as rejected:
        log.info("image not decoded: %s", rejected.flag)
    except Exception as error:  # bad input must never raise
        log.warning("image decoding stopped by an unexpected %s", type(error).__name__)
    return None


def record_pictures(findings: Findings, image: ImageFile.ImageFile) -> None:
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
    orientation = effective_orientation(image)
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
