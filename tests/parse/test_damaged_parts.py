"""Damage the corpus mutations (R3, tests/faults/) found crashing extraction: each must now give
evidence with its defects, not an exception."""

from __future__ import annotations

from intake.parse.parts import PartWalker, decode_text, parse_message

HEAD = (b"From: ansat@kommune.example\r\nTo: chikanemail@kommune.example\r\n"
        b"Subject: damaged\r\nMIME-Version: 1.0\r\n")


def test_a_charset_name_with_a_nul_is_an_unknown_charset() -> None:
    text, flags = decode_text("blåbær".encode(), "iso-8859-1\x00")
    assert "charset-unknown" in flags
    assert text == "blåbær"  # then read as UTF-8


def test_a_mail_cut_inside_a_content_disposition_parameter_is_read_as_plain_text() -> None:
    # The stdlib's header parser raises IndexError on a parameter name cut before its "=".
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/plain\r\n\r\nSe bilaget.\r\n"
           b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
           b" filename*0*=UTF-8''%41%42;\r\n filename*1*")
    walker = PartWalker(raw, max_depth=10)
    parts = list(walker.parts(parse_message(raw)))
    assert [part.declared_type for part in parts] == ["text/plain", "application/pdf"]
    assert parts[1].disposition == "attachment"
    assert walker.facts.defects  # the cut multipart is recorded
