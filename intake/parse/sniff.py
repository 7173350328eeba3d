"""Tell what a part really is from its bytes, whatever its declared type says."""

from __future__ import annotations

import re

import filetype

_TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HTML_START = re.compile(rb"\s*(<!doctype html|<html|<head|<body|<div|<p[\s>]|<table)", re.I)
_HEADER_LINE = re.compile(rb"[!-9;-~]+:[ \t]")
_SAMPLE = 4096


def sniff_type(data: bytes) -> str | None:
    """The MIME type the bytes look like, or None when nothing fits."""
    if not data:
        return None
    if data.startswith(_TNEF_SIGNATURE):
        return "application/ms-tnef"
    if data.startswith(_OLE_SIGNATURE):
        return "application/x-ole-storage"
    kind = filetype.guess(data[:8192])
    if kind is not None:
        return str(kind.mime)
    sample = data[:_SAMPLE]
    if _HTML_START.match(sample):
        return "text/html"
    if _looks_like_text(sample):
        first_lines = sample.lstrip().splitlines()[:3]
        if len(first_lines) >= 2 and all(_HEADER_LINE.match(line) for line in first_lines[:2]):
            return "message/rfc822"
        return "text/plain"
    return "application/octet-stream"


def _looks_like_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as error:
        if error.start >= len(sample) - 4:  # a multibyte character cut by the sample's end
            return True
    controls = sum(1 for byte in sample if byte < 9 or 13 < byte < 32)
    return controls < len(sample) // 100 + 1
