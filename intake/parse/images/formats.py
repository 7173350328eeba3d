"""Image formats: the allow-list ever handed to Pillow, and which format the first bytes (or
the declared type or the file name) announce, allowed or not."""

from __future__ import annotations

# Pillow format names (the ids `Image.open(formats=...)` takes). The JPEG opener may hand back
# format "MPO" for a multi-picture JPEG (some phone portraits); that is still a JPEG file.
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "HEIF"})
OPEN_ORDER = ("JPEG", "PNG", "HEIF", "GIF", "WEBP", "TIFF", "BMP")
JPEG_FORMATS = frozenset({"JPEG", "MPO"})

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


def looks_like_image(data: bytes, declared_type: str | None, filename: str | None) -> bool:
    """Tell cheaply whether a part should be analysed as an image (by bytes, type or name)."""
    if declared_type and declared_type.split(";", 1)[0].strip().lower().startswith("image/"):
        return True
    if sniff_format(data) is not None:
        return True
    if filename and "." in filename:
        return filename.rsplit(".", 1)[1].strip().lower() in _IMAGE_SUFFIXES
    return False


def sniff_format(data: bytes) -> str | None:
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
