"""Large, well-formed report mails for tests, cheap to build: photos, PDFs, a nested forward.

A report forwards the harassing original as an attached message (with a photo of its own)
and carries photos (JPEGs of noise made once with Pillow, so they do not compress) and PDFs
(a minimal PDF around a stream of random bytes, numbered so that each one is its own blob)
until it reaches the size asked for. The
MIME is written by hand with `base64.encodebytes`: the email package's generator takes
seconds for a 50 MB mail. `damage()` gives the same mail with the damage real mail shows.
"""

from __future__ import annotations

import base64
import io
import os
import re
from functools import cache

from PIL import Image

from tests.support import INTAKE_ADDRESS

MB = 1_000_000
PHOTO_SIDE = 900  # a noise JPEG of 900x900 is about 1 MB
PDF_BYTES = 2 * MB
CRLF = b"\r\n"


@cache
def photo(number: int) -> bytes:
    """A JPEG of random noise (about 1 MB; made once per number)."""
    noise = Image.frombytes("RGB", (PHOTO_SIDE, PHOTO_SIDE), os.urandom(PHOTO_SIDE ** 2 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@cache
def _random_block() -> bytes:
    return os.urandom(PDF_BYTES)


def pdf(number: int) -> bytes:
    """A minimal valid PDF of about PDF_BYTES: one stream of random bytes (the same block in
    every PDF, which `number` makes distinct)."""
    stream = str(number).encode() + _random_block()
    head = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
            b"3 0 obj\n<< /Length " + str(len(stream)).encode() + b" >>\nstream\n")
    return head + stream + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def _base64_part(content_type: str, filename: str, data: bytes) -> bytes:
    return (f"Content-Type: {content_type}; name=\"{filename}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{filename}\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + (
        base64.encodebytes(data).replace(b"\n", CRLF))


def _text_part(text: str) -> bytes:
    return (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + text.encode().replace(b"\n", CRLF))


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    delimiter = f"--{boundary}\r\n".encode()
    return (b"".join(delimiter + part + CRLF for part in parts)
            + f"--{boundary}--\r\n".encode())


def harassing_original() -> bytes:
    """The original the employee forwards: a text and a photo of its own."""
    boundary = "original-boundary-7f3a"
    return (b"From: Kasper <kasper@eksempel.example>\r\nTo: ansat@kommune.example\r\n"
            b"Subject: Du er ikke velkommen\r\nDate: Wed, 18 Nov 2026 21:47:00 +0100\r\n"
            b"Message-ID: <original-large@eksempel.example>\r\nMIME-Version: 1.0\r\n"
            + f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n".encode()
            + _multipart(boundary, [_text_part("Vi ved hvor du bor.\n"),
                                    _base64_part("image/jpeg", "gaden.jpg", photo(0))]))


def report_mail(size: int, *, tag: str = "", extra_headers: bytes = b"") -> bytes:
    """A well-formed report of at least `size` bytes: text, nested forward, photos, PDFs.

    Attachments alternate between the photos (three different ones, repeated) and PDFs of
    random bytes. `tag` varies the Message-ID, so equal sizes can make distinct mails;
    `extra_headers` (CRLF-terminated lines) go into the header block."""
    boundary = f"report-boundary-{size}-{tag}"
    nested = (b"Content-Type: message/rfc822\r\n"
              b"Content-Disposition: attachment; filename=\"original.eml\"\r\n\r\n"
              + harassing_original())
    parts = [_text_part("Jeg videresender beskeden og billederne.\n"), nested]
    total = sum(len(part) for part in parts)
    number = 0
    while total < size:
        number += 1
        if number % 2:
            part = _base64_part("image/jpeg", f"foto-{number}.jpg", photo(number % 3))
        else:
            part = _base64_part("application/pdf", f"dokument-{number}.pdf", pdf(number))
        parts.append(part)
        total += len(part)
    head = (b"From: Ansat <ansat@kommune.example>\r\n"
            + f"To: {INTAKE_ADDRESS}\r\n".encode()
            + b"Subject: VS: Du er ikke velkommen\r\n"
            b"Date: Thu, 19 Nov 2026 08:15:00 +0100\r\n"
            + f"Message-ID: <report-{size}-{tag}@kommune.example>\r\n".encode()
            + extra_headers + b"MIME-Version: 1.0\r\n"
            + f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n".encode())
    return head + _multipart(boundary, parts)


def damage(raw: bytes) -> bytes:
    """The mail cut before its close boundary, with characters base64 does not have in the
    first PDF's base64 (both defects a real broken mail shows)."""
    boundary = re.search(rb'boundary="(report-boundary-[^"]+)"', raw)
    assert boundary is not None
    close = b"--" + boundary.group(1) + b"--"
    assert raw.count(close) == 1
    cut = raw.replace(close, b"")
    start = cut.index(b"\r\n\r\n", cut.index(b'filename="dokument-2.pdf"')) + 4
    return cut[:start + 1000] + b"!*#%" + cut[start + 1004:]
