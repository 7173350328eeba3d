"""Analysing one image attachment: every fact about it in one `ImageFacts`, with bad,
hostile or oversized input flagged, never raised."""

from __future__ import annotations

import logging

from intake.parse.images.decode_guard import (
    DEFAULT_MAX_PIXELS,
    ImageRejected,
    bomb_guard,
    check_size,
    load_image,
    open_image,
)
from intake.parse.images.exif import record_exif
from intake.parse.images.facts import (
    FLAG_CORRUPT,
    FLAG_DECODER_WARNING,
    FLAG_NOT_ALLOWED,
    Findings,
    ImageFacts,
)
from intake.parse.images.formats import ALLOWED_FORMATS, sniff_format
from intake.parse.images.pictures import THUMBNAIL_SIDE, record_pictures

log = logging.getLogger("chikanemail.intake.images")


def analyze_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFacts:
    """Describe the image in the bytes; bad, hostile or oversized input is flagged, not raised.

    `max_pixels` can only tighten Pillow's own decompression-bomb limit, never loosen it.
    """
    findings = Findings()
    try:
        _analyze_into(findings, data, max_pixels)
    except Exception as error:  # the last line of defence: bad input must never raise
        log.warning("image analysis stopped by an unexpected %s", type(error).__name__)
        findings.flag(FLAG_CORRUPT)
    if findings.flags:
        log.info("image (%s) flagged: %s", findings.format, ", ".join(findings.flags))
    return findings.freeze()


def _analyze_into(findings: Findings, data: bytes, max_pixels: int) -> None:
    sniffed = sniff_format(data)
    if sniffed is not None and sniffed not in ALLOWED_FORMATS:
        findings.format = sniffed
        findings.flag(FLAG_NOT_ALLOWED)
        return
    with bomb_guard() as noted:
        try:
            _decode_into(findings, data, max_pixels)
        except ImageRejected as rejected:
            findings.flag(rejected.flag)
    if noted:
        findings.flag(FLAG_DECODER_WARNING)
        log.debug("decoder warnings: %s", ", ".join(sorted(set(noted))))


def _decode_into(findings: Findings, data: bytes, max_pixels: int) -> None:
    image = open_image(data)
    with image:
        findings.format = image.format
        # EXIF is read from the header, before load(): it is evidence even when the pixels are
        # not, and TIFF's load() applies and then deletes the orientation. PNG may keep EXIF
        # after the pixel data, where only load() finds it.
        exif_in_header = image.format != "PNG" or "exif" in image.info
        if exif_in_header:
            record_exif(findings, image)
        else:
            findings.width, findings.height = image.size
        check_size(image, max_pixels)
        load_image(image, draft_box=(THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
        if not exif_in_header:
            record_exif(findings, image)
        record_pictures(findings, image)
