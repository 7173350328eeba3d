"""Responses that carry evidence: never sniffed, never run, downloads never shown inline.

Every one has `X-Content-Type-Options: nosniff` and a `Content-Security-Policy` with
`sandbox`, so even a browser that guessed wrong would run nothing from it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

# What the raw bytes of evidence (an image of ours, a download) are served under.
SANDBOX_POLICY = "sandbox"
# The evidence viewer's page: scripts, forms and plugins off (`sandbox` allows nothing but
# the download its link starts), our stylesheet, its picture only as data we put into it.
VIEWER_POLICY = ("sandbox allow-downloads; default-src 'none'; style-src 'self'; img-src data:; "
                 "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Letters Unicode does not take apart into an ASCII letter and a mark (å does: a + ring).
_SPELLED_OUT = str.maketrans({"æ": "ae", "Æ": "AE", "ø": "oe", "Ø": "OE", "ß": "ss"})


def evidence_headers(policy: str = SANDBOX_POLICY) -> dict[str, str]:
    """The headers every evidence response carries."""
    return {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": policy,
            "Cache-Control": "private, no-store"}


def with_evidence_headers(response: Response, policy: str = SANDBOX_POLICY) -> Response:
    """The response with the evidence headers set (over any the app sets by default)."""
    for name, value in evidence_headers(policy).items():
        response.headers[name] = value
    return response


def attachment_disposition(filename: str) -> str:
    """`Content-Disposition: attachment` with a safe ASCII name and the real one in UTF-8
    (RFC 6266), so no name can break the header or choose a path."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    ascii_name = unicodedata.normalize("NFKD", name.translate(_SPELLED_OUT))
    ascii_name = ascii_name.encode("ascii", "ignore").decode()
    ascii_name = _UNSAFE_NAME.sub("_", ascii_name).strip("._") or "evidence"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name or ascii_name)}"


def download(chunks: Iterator[bytes], filename: str, size: int | None = None,
             extra: Mapping[str, str] | None = None) -> StreamingResponse:
    """The bytes as a download: `application/octet-stream`, an attachment, never inline."""
    headers = {**evidence_headers(), "Content-Disposition": attachment_disposition(filename),
               **(extra or {})}
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


def picture(data: bytes) -> Response:
    """A JPEG we encoded ourselves."""
    return Response(data, media_type="image/jpeg", headers=evidence_headers())
