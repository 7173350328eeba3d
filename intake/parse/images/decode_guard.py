"""The decode guard: opening only the allowed formats, refusing a declared size above the
pixel limit before decoding, Pillow's decompression-bomb warning raised as an error, and
truncated or corrupt input turned into a flag (`ImageRejected`).

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
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from intake.parse.images.facts import FLAG_BOMB, FLAG_CORRUPT, FLAG_TOO_LARGE, FLAG_TRUNCATED
from intake.parse.images.formats import JPEG_FORMATS, OPEN_ORDER

pillow_heif.register_heif_opener()  # adds Pillow format "HEIF" (HEIC/HEIF photos from phones)

DEFAULT_MAX_PIXELS = 64_000_000

# Serialises our changes to the process-wide warning filters (see the module docstring).
_WARNINGS_LOCK = threading.Lock()


class ImageRejected(Exception):
    """The bytes are not an intact, allowed image of an acceptable size."""

    def __init__(self, flag: str) -> None:
        super().__init__(flag)
        self.flag = flag


@contextmanager
def bomb_guard() -> Iterator[list[str]]:
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


def open_image(data: bytes) -> ImageFile.ImageFile:
    try:
        return Image.open(io.BytesIO(data), formats=OPEN_ORDER)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(FLAG_BOMB) from error
    except UnidentifiedImageError as error:
        raise ImageRejected(FLAG_CORRUPT) from error
    except Exception as error:
        raise ImageRejected(_damage_flag(error)) from error


def check_size(image: ImageFile.ImageFile, max_pixels: int) -> None:
    """Refuse before decoding: what the header declares is what `load()` would allocate."""
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected(FLAG_CORRUPT)
    if width * height > max_pixels:
        raise ImageRejected(FLAG_TOO_LARGE)


def load_image(image: ImageFile.ImageFile, *, draft_box: tuple[int, int]) -> None:
    """Decode the first frame: the real integrity check (`verify()` skips most of the data)."""
    if image.format in JPEG_FORMATS:
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding; it still reads every byte.
        image.draft("RGB", draft_box)
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(FLAG_BOMB) from error
    except Exception as error:
        raise ImageRejected(_damage_flag(error)) from error


def _damage_flag(error: Exception) -> str:
    """Truncated when the decoder ran out of bytes, corrupt for anything else."""
    message = str(error).lower()
    if isinstance(error, EOFError) or "truncated" in message or "end of file" in message:
        return FLAG_TRUNCATED
    return FLAG_CORRUPT
