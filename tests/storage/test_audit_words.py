"""The audit log's actions and details in words (issue 19): every action the service records
has a label in both languages, and details read as a sentence, never as JSON."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storage.audit_words import ACTIONS, describe, label
from storage.i18n.catalogs import LANGUAGES

ROOT = Path(__file__).resolve().parents[2]


def recorded_actions() -> set[str]:
    """The action codes the sources pass to audit.record (literals and named constants)."""
    found: set[str] = set()
    for folder in ("intake", "notifier", "storage"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found.update(re.findall(r'audit\.record(?:_committed)?\(\s*\w+,\s*"([a-z-]+)"', text))
            found.update(re.findall(r'^[A-Z_]+_ACTION = "([a-z-]+)"', text, flags=re.M))
            found.update(re.findall(r'action="([a-z-]+)"', text))
    return found


def test_every_recorded_action_has_a_label() -> None:
    missing = recorded_actions() - set(ACTIONS)
    assert not missing, f"actions without words in storage/audit_words.py: {sorted(missing)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_labels_differ_from_their_codes(language: str) -> None:
    assert label("mail-queued", language) == {"da": "Mail sat i kø", "en": "Mail queued"}[language]
    assert label("evidence-extracted", "da") == "Beviser udtrukket"


def test_an_unknown_action_still_reads() -> None:
    assert label("something-new", "da") == "Something new"


def test_details_read_as_a_sentence_and_unknown_keys_apart() -> None:
    words = describe("mail-queued", {"kind": "receipt", "message_id": "<a@b>",
                                     "to": ["(reporter)"], "extra": [1, 2]}, "da")
    assert words.sentence == "kvittering til medarbejderen"  # the reporter by role only
    assert words.rest == (("extra", "1, 2"),)
    plural = describe("case-opened", {"steps": 5, "language": "da"}, "en")
    assert plural.sentence == "with 5 steps in its plan; language: Danish"


def test_how_a_mail_came_in_reads_as_words() -> None:
    words = describe("received", {"source": "ingest", "size": 1, "tls": False, "message": 3,
                                  "quarantine": None}, "da")
    assert words.sentence == "via filimport, ukrypteret, 1 byte"
    assert describe("seen-again", {"source": "smtp", "times_seen": 2}, "en").rest == (
        ("times_seen", "2"),)


def test_why_a_sender_was_not_trusted_reads_as_words() -> None:
    unverified = describe("sender-unverified", {"reason": "unreadable"}, "da")
    assert unverified.sentence == "afsenderadressen kunne ikke læses"
    assert unverified.rest == ()
    refused = describe("unverified-mail", {"reason": "no-token", "claimed_role": "other"}, "en")
    assert refused.sentence == "the mail did not come to a secret reply address"
    assert describe("sender-unverified", {"reason": "new-code"}, "da").sentence == "anden årsag"


def test_days_in_notes_and_events_read_as_words() -> None:
    from zoneinfo import ZoneInfo

    from storage.note_words import ABSENCE, note_text

    params = {"day": "2026-11-22", "previous": "2026-11-20",
              "deadlines": [{"step": 3, "key": "stop", "titles": {"da": "Stop chikanen"},
                             "due": "2026-12-06T07:00:00+00:00"}]}
    text = note_text(ABSENCE, params, "da", zone=ZoneInfo("Europe/Copenhagen"))
    assert "søndag 22. november 2026" in text and "fredag 20. november 2026" in text
    assert "søndag 6. december 2026 kl. 08.00" in text
    assert "2026-11-22" not in text and "+0100" not in text
    event = describe("absence-recorded", {"day": "2026-11-22"}, "en")
    assert event.sentence == "Sunday 22 November 2026"
