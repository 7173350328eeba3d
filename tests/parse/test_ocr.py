"""OCR with the real tesseract (CI installs it with Danish and English data), and its failures."""

from __future__ import annotations

import hashlib
import io
import logging
import stat
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageDraw, ImageFont

from intake.parse.ocr import OcrEngine, OcrResult

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = ("Chikane på arbejdspladsen", "Næste møde på fredag")
WORDS = ("chikane", "på", "arbejdspladsen", "næste", "møde", "fredag")
LOGGER = "chikanemail.intake.ocr"

# -- helpers (local to this file) ---------------------------------------------


def rendered_text(mode: str = "RGB") -> Image.Image:
    """The two Danish lines, 48 px, black; on white (RGB) or on nothing at all (RGBA)."""
    background = (255, 255, 255) if mode == "RGB" else (0, 0, 0, 0)
    image = Image.new(mode, (1100, 260), background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 48)
    for index, line in enumerate(LINES):
        draw.text((40, 40 + 110 * index), line, font=font, fill="black")
    return image


def encode(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def assert_reads_the_danish_lines(result: OcrResult) -> None:
    assert result.status == "ok"
    assert result.languages == "dan+eng"
    assert result.text is not None
    found = result.text.casefold().split()
    for word in WORDS:
        assert word in found, f"{word!r} not recognised"


def fake_tesseract(tmp_path: Path, body: str) -> str:
    """A stand-in tesseract that lists dan and eng, then runs the given shell lines."""
    program = tmp_path / "tesseract"
    program.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--list-langs" ]; then\n'
        '  printf \'List of available languages in "/x/" (2):\\ndan\\neng\\n\'; exit 0\n'
        "fi\n" + body
    )
    program.chmod(stat.S_IRWXU)
    return str(program)


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine("dan+eng", timeout_seconds=60)


# -- the real tesseract ---------------------------------------------------------------


def test_tesseract_with_danish_is_installed(engine: OcrEngine) -> None:
    # Fails (does not skip) without tesseract or its Danish data: CI must install them.
    assert engine.available is True


def test_danish_text_is_read_back(engine: OcrEngine) -> None:
    assert_reads_the_danish_lines(engine.recognize(encode(rendered_text(), "PNG")))


def test_a_sideways_phone_photo_is_turned_upright_first(engine: OcrEngine) -> None:
    stored = rendered_text().transpose(Image.Transpose.ROTATE_90)  # as the sensor saw it
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    assert_reads_the_danish_lines(engine.recognize(encode(stored, "JPEG", exif=exif)))


def test_text_on_a_transparent_background_is_read(engine: OcrEngine) -> None:
    assert_reads_the_danish_lines(engine.recognize(encode(rendered_text("RGBA"), "PNG")))


def test_recognised_text_is_never_logged(
    engine: OcrEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = engine.recognize(encode(rendered_text(), "PNG"))
    assert result.text is not None and "Chikane" in result.text
    assert caplog.records  # something was logged, and none of it is the text
    for word in ("Chikane", "arbejdspladsen", "møde", "fredag"):
        assert word not in caplog.text


def test_a_tiny_time_limit_is_a_timeout_status() -> None:
    hasty = OcrEngine("dan+eng", timeout_seconds=0.001)
    assert hasty.available
    result = hasty.recognize(encode(rendered_text(), "PNG"))
    assert result == OcrResult("timeout", None, "dan+eng")


def test_bytes_that_are_no_image_are_skipped(engine: OcrEngine) -> None:
    assert engine.recognize(b"not an image at all").status == "skipped"
    assert engine.recognize(b"").status == "skipped"


# -- tesseract missing, incomplete or misbehaving ----------------------------------------


def test_missing_tesseract_is_unavailable_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    engine = OcrEngine(tesseract="/nonexistent/tesseract")
    assert engine.available is False
    image = encode(rendered_text(), "PNG")
    assert engine.recognize(image) == OcrResult("unavailable", None, "dan+eng")
    assert engine.recognize(image).status == "unavailable"
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()


def test_a_missing_language_makes_ocr_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    engine = OcrEngine("dan+xqz")
    assert engine.available is False
    assert engine.recognize(encode(rendered_text(), "PNG")).status == "unavailable"
    assert len(caplog.records) == 1 and "xqz" in caplog.records[0].getMessage()


def test_tesseract_reads_a_png_on_stdin_with_one_thread(tmp_path: Path) -> None:
    program = fake_tesseract(
        tmp_path,
        "head -c 4 | tail -c 3; echo\n"
        'echo "OMP=$OMP_THREAD_LIMIT ARGS=$*"\n',
    )
    result = OcrEngine("dan+eng", tesseract=program).recognize(encode(rendered_text(), "JPEG"))
    assert result.status == "ok" and result.text is not None
    first, second = result.text.splitlines()
    assert first == "PNG"  # the JPEG was handed over as a PNG
    assert second == "OMP=1 ARGS=stdin stdout -l dan+eng"


def test_a_plain_png_is_handed_over_as_received(tmp_path: Path) -> None:
    program = fake_tesseract(tmp_path, "sha256sum | cut -c1-64\n")
    png = encode(rendered_text(), "PNG")
    result = OcrEngine("dan+eng", tesseract=program).recognize(png)
    assert result.text is not None and result.text.strip() == hashlib.sha256(png).hexdigest()


def test_a_failing_tesseract_is_a_failed_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    program = fake_tesseract(tmp_path, "cat >/dev/null; echo 'Error: private detail' >&2; exit 3\n")
    result = OcrEngine(tesseract=program).recognize(encode(rendered_text(), "PNG"))
    assert result == OcrResult("failed", None, "dan+eng")
    assert "status 3" in caplog.text and "private detail" not in caplog.text


@pytest.mark.parametrize(
    ("languages", "timeout"), [("", 1.0), ("dan eng", 1.0), ("dan;rm", 1.0), ("dan", 0.0)]
)
def test_bad_options_are_refused_at_once(languages: str, timeout: float) -> None:
    with pytest.raises(ValueError):
        OcrEngine(languages, timeout_seconds=timeout)
