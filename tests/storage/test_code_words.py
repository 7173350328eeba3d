"""Flags, OCR statuses, forwarded-original finders and defects explained (issue 19)."""

from __future__ import annotations

import re
from pathlib import Path

from storage.code_words import FLAGS, defect_words, finder_words, flag_words, ocr_words

PARSE = Path(__file__).resolve().parents[2] / "intake" / "parse"


def flags_in_sources() -> set[str]:
    """The flag names the parsers set (literals appended and FLAG_ constants)."""
    found: set[str] = set()
    for path in PARSE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found.update(re.findall(r'flags\.append\("([a-z-]+)"\)', text))
        found.update(re.findall(r'^FLAG_[A-Z_]+ = "([a-z-]+)"', text, flags=re.M))
    return found


def test_every_flag_the_parsers_set_is_explained() -> None:
    found = flags_in_sources()
    assert found, "no flags found in intake/parse: the pattern is out of date"
    missing = found - set(FLAGS)
    assert not missing, f"flags without words in storage/code_words.py: {sorted(missing)}"


def test_codes_read_in_danish_and_english() -> None:
    assert flag_words("depth-limit-reached", "da").startswith("indlejret for dybt")
    assert flag_words("container:zip", "en") == "opened as zip"
    assert ocr_words("unavailable", "da") == (
        "ikke læst: tekstgenkendelse (OCR) er ikke installeret")
    assert finder_words("original-message-da", "da") == (
        "en linje med “Oprindelig meddelelse” (Outlook m.fl.), på dansk")
    assert finder_words("gmail-en", "en") == "a forwarding line as Gmail writes it, in English"
    assert defect_words("PartLimitReached", "en").startswith("too many parts")


def test_an_unknown_code_is_shown_as_it_is() -> None:
    assert flag_words("brand-new-flag", "da") == "brand-new-flag"
    assert finder_words("outlook-xx", "en") == "outlook-xx"
    assert finder_words("gmail-sv", "en") == "a forwarding line as Gmail writes it, in sv"
