"""System notes: stored as a code with parameters, read in the reader's language, their
English words hashed into the audit chain as before (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from storage.blobstore import sha256_hex
from storage.cases import add_note, add_system_note, assign_case, open_case
from storage.database import Database
from storage.models import AuditEvent, CaseNote
from storage.note_words import ACKNOWLEDGED, CLOSED, render_note, step_param

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_coded_note_reads_in_either_language_and_hashes_its_english(
        database: Database) -> None:
    with database.write() as session:
        case = open_case(session, reporter="ansat@kommune.example", reporter_name=None,
                         manager="leder@kommune.example", deputy=None, language="da",
                         routing_source="default", routing_reason="default manager", now=NOW)
        step = step_param(2, "documentation", {"da": "Dokumentation", "en": "Documentation"})
        closed = add_system_note(session, case, CLOSED, {"reason": None, "open_steps": [step]},
                                 author="leder@kommune.example", now=NOW, action="closed")
        add_system_note(session, case, ACKNOWLEDGED, {}, author="leder@kommune.example",
                        now=NOW, action="acknowledged")
        assign_case(session, case, manager="ny@kommune.example", deputy=None,
                    actor="admin", now=NOW)
        own = add_note(session, case, author="leder@kommune.example", text="Talt med Bo.",
                       now=NOW)
        closed_text = closed.text
    with database.read() as session:  # audit events are written at commit
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "closed")
                                ).scalar_one()
        assert event.details["text_sha256"] == sha256_hex(closed_text.encode("utf-8"))
        notes = {note.id: note for note in session.execute(select(CaseNote)).scalars()}
        session.expunge_all()
    assert closed_text == "Closed: closed by reply. Steps not done: 2 (Documentation)."
    assert render_note(notes[closed.id], "da") == (
        "Lukket: lukket ved svar. Trin, der ikke er udført: 2 (Dokumentation).")
    texts = [render_note(note, "da") for note in notes.values()]
    assert "Sagen er kvitteret." in texts
    assert "Overdraget til ny@kommune.example (før: leder@kommune.example)." in texts
    assert render_note(notes[own.id], "en") == "Talt med Bo."


def test_a_note_from_before_codes_keeps_its_text() -> None:
    old = CaseNote(case_id=1, author="x", text="Acknowledged the case.", created_at=NOW)
    assert render_note(old, "da") == "Acknowledged the case."
