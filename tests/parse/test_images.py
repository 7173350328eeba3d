"""Image facts: EXIF, thumbnails and dHash; hostile, broken and refused images are flags."""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageDraw

from intake.parse.images.analysis import analyze_image
from intake.parse.images.facts import ImageFacts
from intake.parse.images.formats import ALLOWED_FORMATS, looks_like_image

REPO = Path(__file__).resolve().parents[2]
CEST = timezone(timedelta(hours=2))
RED = (255, 0, 0)
BLUE = (0, 0, 255)

# -- helpers (local to this file) ---------------------------------------------


def encode(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def red_left_blue_right(width: int = 1200, height: int = 800) -> Image.Image:
    """A landscape picture as the sensor stored it: left half red, right half blue."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    return image


def phone_exif(orientation: int = 6, offset: str | None = "+02:00") -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 15 Pro"
    exif[ExifTags.Base.Software] = "17.4.1"
    exif[ExifTags.Base.Orientation] = orientation
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.DateTimeOriginal] = "2024:05:17 14:03:22"
    if offset is not None:
        details[ExifTags.Base.OffsetTimeOriginal] = offset
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (55.0, 40.0, 34.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (12.0, 34.0, 6.0)
    return exif


def open_thumbnail(facts: ImageFacts) -> Image.Image:
    assert facts.thumbnail_jpeg is not None
    thumbnail = Image.open(io.BytesIO(facts.thumbnail_jpeg))
    thumbnail.load()
    return thumbnail


def is_red(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    red, green, blue = pixel[:3]
    return bool(red > 200 and green < 60 and blue < 60)


def is_blue(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    red, green, blue = pixel[:3]
    return bool(red < 60 and green < 60 and blue > 200)


def assert_upright_portrait(facts: ImageFacts) -> None:
    """The red-left picture with orientation 6 shows upright as a portrait, red on top."""
    thumbnail = open_thumbnail(facts)
    assert thumbnail.format == "JPEG" and thumbnail.mode == "RGB"
    width, height = thumbnail.size
    assert max(width, height) <= 512
    assert height > width
    assert is_red(thumbnail.getpixel((width // 2, 10)))
    assert is_blue(thumbnail.getpixel((width // 2, height - 10)))
    # Nothing leaks into the derived picture: no EXIF, so no GPS position.
    assert not thumbnail.getexif()
    assert "exif" not in thumbnail.info


def assert_phone_exif(facts: ImageFacts) -> None:
    assert facts.exif_make == "Apple"
    assert facts.exif_model == "iPhone 15 Pro"
    assert facts.exif_software == "17.4.1"
    assert facts.taken_at_raw == "2024:05:17 14:03:22"
    assert facts.taken_at_offset == "+02:00"
    assert facts.taken_at == datetime(2024, 5, 17, 14, 3, 22, tzinfo=CEST)
    assert facts.taken_at is not None and facts.taken_at.utcoffset() == timedelta(hours=2)
    assert facts.has_gps is True
    assert facts.orientation == 6


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def grey_png(width: int, height: int, idat: bytes) -> bytes:
    """A PNG whose header declares the size; the pixel data is whatever is given."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def all_black_png(side: int) -> bytes:
    """A real decompression bomb: valid pixel data, ~1000:1 compressed."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + side)  # filter byte 0 and black pixels
    chunks = [compressor.compress(row) for _ in range(side)]
    chunks.append(compressor.flush())
    return grey_png(side, side, b"".join(chunks))


def hamming(first: str | None, second: str | None) -> int:
    assert first is not None and second is not None
    return bin(int(first, 16) ^ int(second, 16)).count("1")


def rectangles(seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (640, 480), (rng.randrange(256),) * 3)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(600), rng.randrange(440)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + rng.randrange(40, 300), y + rng.randrange(40, 250)), fill=colour)
    return image


# -- well-formed images ---------------------------------------------------------


def test_png_without_exif() -> None:
    facts = analyze_image(encode(red_left_blue_right(300, 200), "PNG"))
    assert facts.format == "PNG"
    assert (facts.width, facts.height) == (300, 200)
    assert facts.flags == ()
    assert facts.exif_make is facts.exif_model is facts.exif_software is None
    assert facts.taken_at_raw is None and facts.taken_at is None and facts.orientation is None
    assert facts.has_gps is False
    assert facts.dhash is not None and len(facts.dhash) == 16
    assert int(facts.dhash, 16) >= 0 and facts.dhash == facts.dhash.lower()
    thumbnail = open_thumbnail(facts)
    assert thumbnail.size == (300, 200)  # never enlarged
    assert is_red(thumbnail.getpixel((10, 100))) and is_blue(thumbnail.getpixel((290, 100)))


def test_jpeg_exif_is_read_and_the_thumbnail_is_upright() -> None:
    data = encode(red_left_blue_right(), "JPEG", quality=92, exif=phone_exif())
    facts = analyze_image(data)
    assert facts.format == "JPEG"
    assert facts.flags == ()
    assert_phone_exif(facts)
    assert (facts.width, facts.height) == (800, 1200)  # upright: orientation 6 turns it
    assert_upright_portrait(facts)
    assert open_thumbnail(facts).size == (341, 512)


def test_to_json_has_every_fact_but_the_thumbnail_and_serialises() -> None:
    facts = analyze_image(encode(red_left_blue_right(), "JPEG", exif=phone_exif()))
    document = facts.to_json()
    assert "thumbnail_jpeg" not in document
    assert document["taken_at"] == "2024-05-17T14:03:22+02:00"
    assert document["flags"] == []
    assert document["orientation"] == 6 and document["has_gps"] is True
    assert json.loads(json.dumps(document)) == document
    assert set(document) == {f for f in ImageFacts.__dataclass_fields__} - {"thumbnail_jpeg"}


@pytest.mark.parametrize(
    ("offset", "raw", "expected"),
    [
        (None, "2024:05:17 14:03:22", datetime(2024, 5, 17, 14, 3, 22)),
        ("-05:30", "2024:05:17 14:03:22",
         datetime(2024, 5, 17, 14, 3, 22, tzinfo=timezone(-timedelta(hours=5, minutes=30)))),
        ("+02:00", "0000:00:00 00:00:00", None),
        ("+02:00", "    :  :     :  :  ", None),
    ],
)
def test_taken_at_is_naive_without_offset_and_absent_when_unparseable(
    offset: str | None, raw: str, expected: datetime | None
) -> None:
    exif = phone_exif(orientation=1, offset=offset)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = raw
    facts = analyze_image(encode(red_left_blue_right(64, 48), "JPEG", exif=exif))
    assert facts.taken_at_raw == raw
    assert facts.taken_at == expected
    if expected is not None:
        assert (facts.taken_at is not None and facts.taken_at.tzinfo is None) == (offset is None)


def test_heic_exif_and_orientation_with_pillow_heif() -> None:
    # pillow-heif writes EXIF orientation 6 as a HEIF rotation (irot) box as well; reading it,
    # libheif applies the rotation and pillow-heif resets the EXIF tag to 1.
    data = encode(red_left_blue_right(), "HEIF", quality=90, exif=phone_exif().tobytes())
    assert data[4:12] == b"ftypheic"
    reopened = Image.open(io.BytesIO(data))
    assert reopened.getexif()[ExifTags.Base.Orientation] == 1
    assert reopened.info["original_orientation"] == 6
    facts = analyze_image(data)
    assert facts.format == "HEIF"
    assert facts.flags == ()
    assert_phone_exif(facts)  # orientation: the 6 found in the file, not pillow-heif's 1
    assert (facts.width, facts.height) == (800, 1200)
    assert_upright_portrait(facts)  # turned once, by libheif, not a second time by us


def test_a_large_jpeg_reports_its_full_size_and_gets_a_small_thumbnail() -> None:
    data = encode(rectangles(7).resize((4000, 3000)), "JPEG", quality=80)
    facts = analyze_image(data)
    assert (facts.width, facts.height) == (4000, 3000)
    assert open_thumbnail(facts).size == (512, 384)
    assert facts.flags == ()


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("P", (120, 80), 0) for _ in range(3)]
    for index, frame in enumerate(frames):
        frame.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0] + [0] * (256 * 3 - 9))
        frame.paste(index, (0, 0, 120, 80))
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    facts = analyze_image(data)
    assert facts.format == "GIF" and facts.flags == ()
    assert is_red(open_thumbnail(facts).getpixel((60, 40)))


def test_transparent_png_thumbnail_is_on_white() -> None:
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 50, 100))
    thumbnail = open_thumbnail(analyze_image(encode(image, "PNG")))
    right = thumbnail.getpixel((90, 50))
    assert isinstance(right, tuple) and min(right) > 240
    assert is_blue(thumbnail.getpixel((10, 50)))


# -- broken, hostile and refused images -------------------------------------------


@pytest.mark.parametrize("format", ["JPEG", "PNG", "GIF", "TIFF", "BMP", "WEBP", "HEIF"])
def test_an_image_cut_in_half_is_flagged_and_never_raises(format: str) -> None:
    data = encode(rectangles(3), format)
    facts = analyze_image(data[: len(data) // 2])
    assert {"image-truncated", "image-corrupt"} & set(facts.flags)
    assert facts.thumbnail_jpeg is None and facts.dhash is None


def test_a_truncated_jpeg_is_flagged_truncated_and_keeps_its_exif() -> None:
    for size in ((640, 480), (4000, 3000)):  # the second is decoded at reduced size
        data = encode(red_left_blue_right(*size), "JPEG", exif=phone_exif())
        facts = analyze_image(data[: len(data) // 2])
        assert facts.flags == ("image-truncated",)
        assert facts.thumbnail_jpeg is None
        assert facts.format == "JPEG"
        assert_phone_exif(facts)  # the header's facts are evidence even when pixels are lost


def test_random_bytes_declared_as_png_are_flagged_corrupt() -> None:
    garbage = random.Random(1).randbytes(5000)
    assert looks_like_image(garbage, "image/png", "screenshot.png")
    facts = analyze_image(garbage)
    assert facts.flags == ("image-corrupt",)
    assert facts.format is None and facts.thumbnail_jpeg is None


def test_a_png_signature_followed_by_garbage_is_flagged_corrupt() -> None:
    facts = analyze_image(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert "image-corrupt" in facts.flags or "image-truncated" in facts.flags
    assert facts.thumbnail_jpeg is None


def test_a_huge_declared_png_is_a_bomb() -> None:
    facts = analyze_image(grey_png(40_000, 40_000, zlib.compress(bytes(1000))))
    assert facts.flags == ("image-decompression-bomb",)
    assert facts.thumbnail_jpeg is None


def test_pillows_bomb_warning_is_an_error_here_and_the_filters_are_restored() -> None:
    # 100 Mpx is between Pillow's warning and error limits; max_pixels cannot loosen them.
    filters_before = list(warnings.filters)
    limit_before = Image.MAX_IMAGE_PIXELS
    facts = analyze_image(grey_png(10_000, 10_000, b""), max_pixels=10**9)
    assert facts.flags == ("image-decompression-bomb",)
    assert warnings.filters == filters_before
    assert limit_before == Image.MAX_IMAGE_PIXELS  # Pillow's global limit is untouched


def test_broken_exif_is_a_warning_flag_and_the_rest_is_kept() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 15 Pro"
    raw = exif.tobytes()
    facts = analyze_image(encode(rectangles(4), "JPEG", exif=raw[:-4]))  # last value cut off
    assert facts.flags == ("image-decoder-warning",)
    assert facts.exif_make == "Apple"
    assert facts.thumbnail_jpeg is not None


def test_analyses_in_threads_agree_and_leave_warning_state_as_it_was() -> None:
    filters_before, show_before = list(warnings.filters), warnings.showwarning
    bomb = grey_png(10_000, 10_000, b"")
    photo = encode(red_left_blue_right(), "JPEG", exif=phone_exif())
    broken = encode(rectangles(4), "JPEG", exif=phone_exif().tobytes()[:-4])
    inputs = [bomb, photo, broken] * 8
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda data: analyze_image(data, max_pixels=10**9), inputs))
    for data, facts in zip(inputs, results, strict=True):
        expected = {
            bomb: ("image-decompression-bomb",), photo: (), broken: ("image-decoder-warning",)
        }[data]
        assert facts.flags == expected
    assert warnings.filters == filters_before and warnings.showwarning == show_before


def test_an_image_over_max_pixels_is_refused_before_decoding() -> None:
    facts = analyze_image(encode(rectangles(1), "PNG"), max_pixels=640 * 480 - 1)
    assert facts.flags == ("image-too-large",)
    assert (facts.width, facts.height) == (640, 480)
    assert facts.thumbnail_jpeg is None and facts.dhash is None


# Peak resident memory of a fresh process, from /proc (Linux): getrusage's ru_maxrss would
# start at the parent's size, since Linux carries it over fork and exec.
_MEASURE = """
import re, sys
from pathlib import Path
from intake.parse.images.analysis import analyze_image

def peak():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024

data = open(sys.argv[1], "rb").read()
before = peak()
facts = analyze_image(data, max_pixels=int(sys.argv[2]))
print(",".join(facts.flags) or "-", peak() - before)
"""


def peak_memory_growth(tmp_path: Path, data: bytes, max_pixels: int) -> tuple[str, int]:
    """Flags, and how far the peak memory of a fresh process grew while analysing."""
    path = tmp_path / "image.png"
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(max_pixels)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )
    flags, grown = done.stdout.split()
    return flags, int(grown)


def test_bombs_are_refused_with_little_memory(tmp_path: Path) -> None:
    limit = 50 * 1024 * 1024
    huge = grey_png(40_000, 40_000, zlib.compress(bytes(1000)))
    assert peak_memory_growth(tmp_path, huge, 64_000_000)[0] == "image-decompression-bomb"
    assert peak_memory_growth(tmp_path, huge, 64_000_000)[1] < limit
    bomb = all_black_png(9000)  # 81 Mpx: under Pillow's limit, over ours
    assert len(bomb) < 200_000
    flags, grown = peak_memory_growth(tmp_path, bomb, 64_000_000)
    assert (flags, grown < limit) == ("image-too-large", True)
    # The measurement can fail: allowed to decode, the same bytes take 81 MB.
    flags, grown = peak_memory_growth(tmp_path, bomb, 85_000_000)
    assert (flags, grown > limit) == ("-", True)


def test_formats_outside_the_allow_list_are_refused() -> None:
    ico = encode(red_left_blue_right(32, 32), "ICO")
    Image.open(io.BytesIO(ico)).load()  # Pillow could decode it: the allow-list refuses it
    assert looks_like_image(ico, "application/octet-stream", None)
    facts = analyze_image(ico)
    assert facts.flags == ("image-format-not-allowed",)
    assert facts.format == "ICO" and facts.thumbnail_jpeg is None


def test_a_format_without_magic_bytes_is_never_decoded() -> None:
    tga = encode(red_left_blue_right(32, 32), "TGA")
    assert Image.open(io.BytesIO(tga)).format == "TGA"
    assert "TGA" not in ALLOWED_FORMATS
    facts = analyze_image(tga)
    assert facts.flags == ("image-corrupt",)
    assert facts.format is None and facts.thumbnail_jpeg is None


def test_pdf_bytes_are_not_an_image() -> None:
    pdf = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
    assert not looks_like_image(pdf, "application/pdf", "letter.pdf")
    assert analyze_image(pdf).flags == ("image-corrupt",)


@pytest.mark.parametrize(
    ("declared", "filename", "expected"),
    [
        ("image/png", None, True),
        ("IMAGE/JPEG; name=x.jpg", None, True),
        ("application/octet-stream", "IMG_0042.HEIC", True),
        ("application/octet-stream", "notes.txt", False),
        (None, None, False),
        ("text/plain", "image.png.txt", False),
    ],
)
def test_looks_like_image_by_declared_type_or_name(
    declared: str | None, filename: str | None, expected: bool
) -> None:
    assert looks_like_image(b"just some text", declared, filename) is expected


@pytest.mark.parametrize("format", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "HEIF"])
def test_looks_like_image_by_magic_bytes(format: str) -> None:
    data = encode(red_left_blue_right(16, 16), format)
    assert looks_like_image(data, "application/octet-stream", "attachment.bin")
    assert analyze_image(data).format == format


# -- perceptual hash ------------------------------------------------------------------


def test_dhash_survives_reencoding_and_tells_pictures_apart() -> None:
    picture = rectangles(1)
    best = analyze_image(encode(picture, "JPEG", quality=95)).dhash
    worst = analyze_image(encode(picture, "JPEG", quality=30)).dhash
    smaller = analyze_image(encode(picture.resize((320, 240)), "PNG")).dhash
    other = analyze_image(encode(rectangles(2), "JPEG", quality=95)).dhash
    assert hamming(best, worst) <= 6
    assert hamming(best, smaller) <= 6
    assert hamming(best, other) >= 16
