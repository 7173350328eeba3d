"""Text in images (screenshots, photos of screens) read by the tesseract program.

Tesseract runs as a child process per image with a time limit, reading the image on stdin
(as received when it is a plain PNG, else a normalised PNG) and writing text on
stdout; no file is written. Recognised text is evidence: it is
returned, never logged.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import threading
import warnings
from dataclasses import dataclass

from PIL import Image

from intake.parse.images.pictures import decode_upright

log = logging.getLogger("chikanemail.intake.ocr")

# Screenshots and phone photos are far smaller; beyond this tesseract only gets slower.
OCR_MAX_PIXELS = 20_000_000
_PROBE_TIMEOUT_SECONDS = 30.0
_LANGUAGES = re.compile(r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*")
# What tesseract (leptonica) reads unchanged (see _readable_as_is).
_AS_IS_FORMATS = ("PNG",)
_AS_IS_MODES = frozenset({"RGB", "L"})
_EXIF_ORIENTATION = 0x0112

STATUS_OK = "ok"
STATUS_UNAVAILABLE = "unavailable"
STATUS_TIMEOUT = "timeout"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"
# Not read yet: the worker reads screenshots after the case is opened and its mails queued.
STATUS_PENDING = "pending"


@dataclass(frozen=True)
class OcrResult:
    """The outcome of reading one image: a status, and the text when the status is "ok"."""

    status: str
    text: str | None
    languages: str


class OcrEngine:
    """Reads text from images with tesseract, in the given languages (e.g. "dan+eng")."""

    def __init__(
        self,
        languages: str = "dan+eng",
        timeout_seconds: float = 60.0,
        tesseract: str | None = None,
    ) -> None:
        if not _LANGUAGES.fullmatch(languages):
            raise ValueError(f"OCR languages must be tesseract codes joined by +: {languages!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"OCR timeout must be greater than 0, not {timeout_seconds!r}")
        self.languages = languages
        self.timeout_seconds = timeout_seconds
        self.tesseract = tesseract or "tesseract"
        self._program: str | None = None
        self._available: bool | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether tesseract and every requested language are installed (checked once)."""
        with self._lock:
            if self._available is None:
                self._program = self._find_program()
                self._available = self._program is not None
            return self._available

    def recognize(self, image_bytes: bytes) -> OcrResult:
        """Read the text in the image; a missing, failing or slow tesseract is a status."""
        if not self.available or self._program is None:
            return self._result(STATUS_UNAVAILABLE)
        try:
            png = image_bytes if _readable_as_is(image_bytes) else _normalised_png(image_bytes)
        except Exception as error:  # bad input must never raise
            log.warning("OCR input preparation failed: %s", type(error).__name__)
            png = None
        if png is None:
            return self._result(STATUS_SKIPPED)
        try:
            completed = subprocess.run(
                [self._program, "stdin", "stdout", "-l", self.languages],
                input=png,
                capture_output=True,
                timeout=self.timeout_seconds,
                env=_child_environment(),
                check=False,
            )
        except subprocess.TimeoutExpired:  # run() has killed and reaped the child
            log.warning("OCR gave up after %s seconds", self.timeout_seconds)
            return self._result(STATUS_TIMEOUT)
        except OSError as error:
            log.warning("OCR could not run tesseract: %s", type(error).__name__)
            return self._result(STATUS_FAILED)
        if completed.returncode != 0:
            # stderr is not logged: it is tesseract's, and could echo what it read.
            log.warning("OCR failed: tesseract exited with status %d", completed.returncode)
            return self._result(STATUS_FAILED)
        text = completed.stdout.decode("utf-8", "replace")
        log.debug("OCR read %d characters", len(text))
        return OcrResult(STATUS_OK, text, self.languages)

    def _result(self, status: str) -> OcrResult:
        return OcrResult(status, None, self.languages)

    def _find_program(self) -> str | None:
        """The tesseract to run, or None after saying (once) why OCR is unavailable."""
        program = shutil.which(self.tesseract)
        if program is None:
            log.warning("OCR unavailable: tesseract program %r not found", self.tesseract)
            return None
        try:
            listing = subprocess.run(
                [program, "--list-langs"],
                capture_output=True,
                timeout=_PROBE_TIMEOUT_SECONDS,
                env=_child_environment(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            log.warning("OCR unavailable: %s --list-langs failed: %s",
                        program, type(error).__name__)
            return None
        installed = _listed_languages(listing.stdout + b"\n" + listing.stderr)
        missing = [code for code in self.languages.split("+") if code not in installed]
        if listing.returncode != 0 or missing:
            log.warning("OCR unavailable: tesseract %s lacks languages %s (has %s)",
                        program, "+".join(missing) or "?", "+".join(sorted(installed)))
            return None
        return program


def _listed_languages(output: bytes) -> set[str]:
    """The language codes in `tesseract --list-langs` output (one per line after a heading)."""
    codes = set()
    for line in output.decode("utf-8", "replace").splitlines():
        code = line.strip()
        if code and " " not in code and not code.endswith(":"):
            codes.add(code)
    return codes


def _readable_as_is(image_bytes: bytes) -> bool:
    """Whether tesseract reads the bytes as they are, as well as their normalised PNG: one
    upright frame of PNG, grey or RGB with no transparency, within OCR_MAX_PIXELS.
    Most screenshots are; decoding and encoding them again would cost a tenth of the OCR."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb's size is refused below, not printed
            with Image.open(io.BytesIO(image_bytes), formats=_AS_IS_FORMATS) as image:
                return (image.mode in _AS_IS_MODES and "transparency" not in image.info
                        and getattr(image, "n_frames", 1) == 1
                        and image.width * image.height <= OCR_MAX_PIXELS
                        and image.getexif().get(_EXIF_ORIENTATION, 1) == 1)
    except Exception:  # anything unusual takes the normalising path
        return False


def _normalised_png(image_bytes: bytes) -> bytes | None:
    """The image upright, grey, at most OCR_MAX_PIXELS, as a PNG; None if it is no image."""
    picture = decode_upright(image_bytes, fit_pixels=OCR_MAX_PIXELS)
    if picture is None:
        return None
    buffer = io.BytesIO()
    picture.convert("L").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _child_environment() -> dict[str, str]:
    # Tesseract's OpenMP threads make one image barely faster and many images much slower.
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}
