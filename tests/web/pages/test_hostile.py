"""Downloads name their file safely, whatever name the evidence came with."""

from __future__ import annotations

import pytest

from intake.web.pages.hostile import attachment_disposition, download, evidence_headers


@pytest.mark.parametrize(("name", "ascii_part"), [
    ("skærmbillede.png", 'filename="skaermbillede.png"'),
    ('a"b.html', 'filename="a_b.html"'),
    ("../../etc/passwd", 'filename="passwd"'),
    ("C:\\Users\\x\\evil.exe", 'filename="evil.exe"'),
    ("bad\r\nSet-Cookie: x=1", 'filename="bad_Set-Cookie_x_1"'),
    ("", 'filename="evidence"'),
])
def test_the_name_cannot_break_the_header_or_choose_a_path(name: str, ascii_part: str) -> None:
    value = attachment_disposition(name)
    assert value.startswith(f"attachment; {ascii_part}; filename*=UTF-8''")
    assert "\r" not in value and "\n" not in value and "/" not in value.split("''", 1)[1]


def test_a_download_is_an_attachment_that_is_never_sniffed_or_run() -> None:
    response = download(iter([b"<svg onload=alert(1)>"]), "x.svg", 21)
    assert response.media_type == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["content-length"] == "21"
    assert evidence_headers("sandbox allow-downloads")["Content-Security-Policy"] == \
        "sandbox allow-downloads"
