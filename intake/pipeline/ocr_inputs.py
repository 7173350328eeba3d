"""Grey pixels kept from the extraction for the OCR after the filing, by image SHA-256.

The extraction decodes a screenshot anyway (for its thumbnail and dHash); keeping its grey
pixels spares tesseract decoding the PNG and greying it, about a tenth of its time. They
stay in this worker's memory only, up to a bound: an image whose pixels are gone (a crash,
a restart, a mail of many large pictures) is read from its blob as usual.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

# A 1280 x 2400 screenshot is 3 MiB in grey; a handful of reports' worth.
MAX_BYTES = 64 * 1024 * 1024


class OcrInputs:
    """A bounded store of prepared OCR inputs, oldest dropped first (safe between threads)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def keep(self, sha256: str, prepared: bytes) -> None:
        """Keep the prepared input of the image with this SHA-256 (too large: not kept)."""
        if len(prepared) > self.max_bytes:
            return
        with self._lock:
            old = self._kept.pop(sha256, None)
            self._size -= len(old) if old is not None else 0
            self._kept[sha256] = prepared
            self._size += len(prepared)
            while self._size > self.max_bytes:
                _, dropped = self._kept.popitem(last=False)
                self._size -= len(dropped)

    def take(self, sha256: str) -> bytes | None:
        """The prepared input kept for this image, removed from the store; None if none."""
        with self._lock:
            prepared = self._kept.pop(sha256, None)
            if prepared is not None:
                self._size -= len(prepared)
            return prepared
