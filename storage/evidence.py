"""Evidence rows: save what extraction found for a message, read it back.

Saving is keyed by (message, part_path), so extracting the same raw message again updates
the same rows instead of adding new ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import audit
from storage.database import Database
from storage.defects import Defect, defect_changes, defects_json, defects_of_message
from storage.forwarded_original import ForwardedOriginal, store_original
from storage.models import Evidence, Message, utc_now


@dataclass(frozen=True)
class EvidenceRecord:
    """One extracted part, ready to save; `parent_path` links it to its enclosing part."""

    part_path: str
    parent_path: str | None
    role: str
    sha256: str
    size: int
    declared_type: str | None = None
    sniffed_type: str | None = None
    filename: str | None = None
    content_id: str | None = None
    disposition: str | None = None
    transfer_encoding: str | None = None
    charset: str | None = None
    defects: Sequence[Defect] = ()
    flags: Sequence[str] = ()
    text_sha256: str | None = None
    image: dict[str, Any] | None = None
    thumbnail_sha256: str | None = None
    dhash: str | None = None
    ocr_status: str | None = None
    ocr_sha256: str | None = None
    original: dict[str, Any] | None = None




@dataclass(frozen=True)
class MessageExtraction:
    """What extraction learned about the message as a whole."""

    defects: Sequence[Defect] = ()
    body_text_sha256: str | None = None
    received_chain: list[dict[str, Any]] = field(default_factory=list)
    sender_ip: str | None = None
    original: ForwardedOriginal | None = None


_RECORD_FIELDS = (
    "role", "sha256", "size", "declared_type", "sniffed_type", "filename", "content_id",
    "disposition", "transfer_encoding", "charset", "text_sha256", "image",
    "thumbnail_sha256", "dhash", "ocr_status", "ocr_sha256", "original",
)


def save_extraction(
    database: Database,
    message_pk: int,
    records: Sequence[EvidenceRecord],
    extraction: MessageExtraction,
    zone: tzinfo,
) -> None:
    """Store the message's evidence rows and findings in one transaction (idempotent); a
    forwarded original's date written without a zone is read in the workplace's `zone`."""
    with database.write() as session:
        message = session.get(Message, message_pk, with_for_update=True)
        if message is None:
            raise LookupError(f"message {message_pk} does not exist")
        existing = {
            row.part_path: row
            for row in session.execute(
                select(Evidence).where(Evidence.message_pk == message_pk)
            ).scalars()
        }
        # Extracted before (a crash's re-run, `reprocess`): the audit event says which defect
        # names this extraction removed or added, in the transaction that changes them.
        defects_before = defects_of_message(session, message_pk) if message.extracted_at else None
        ids: dict[str, int] = {}
        for position, record in enumerate(records):
            row = existing.pop(record.part_path, None)
            if row is None:
                row = Evidence(message_pk=message_pk, part_path=record.part_path)
                session.add(row)
            row.position = position
            row.parent_id = ids.get(record.parent_path) if record.parent_path else None
            for name in _RECORD_FIELDS:
                setattr(row, name, getattr(record, name))
            row.defects = defects_json(record.defects)
            row.flags = list(record.flags)
            session.flush()
            ids[record.part_path] = row.id
        # Parts no longer found (a changed extractor): children before their parents.
        for stale in sorted(existing.values(), key=lambda r: r.part_path.count("."),
                            reverse=True):
            session.delete(stale)
            session.flush()
        message.extracted_at = utc_now()
        message_defects = defects_json(extraction.defects)
        message.defects = message_defects
        message.body_text_sha256 = extraction.body_text_sha256
        message.received_chain = extraction.received_chain
        message.sender_ip = extraction.sender_ip
        store_original(message, extraction.original, zone)
        details: dict[str, Any] = {
            "items": len(records), "defects": len(message_defects),
            "parts": [[record.part_path, record.role, record.sha256] for record in records]}
        if defects_before is not None:
            after: dict[str | None, list[str]] = {
                None: [defect.name for defect in extraction.defects]}
            after.update({record.part_path: [defect.name for defect in record.defects]
                          for record in records})
            changes = defect_changes(defects_before, after)
            if any(changes.values()):
                details.update(changes)
        audit.record(session, "evidence-extracted", message_sha256=message.sha256,
                     case_number=audit.case_number_of(session, message.case_id),
                     details=details)


# An image extraction left for OCR after the filing (`intake.parse.ocr.STATUS_PENDING`).
OCR_PENDING = "pending"


@dataclass(frozen=True)
class OcrOutcome:
    """What OCR made of one evidence item: its status and the SHA-256 of the text read."""

    evidence_id: int
    sha256: str  # the item's bytes, as they were read
    status: str
    text_sha256: str | None


def evidence_awaiting_ocr(database: Database, message_pk: int) -> list[tuple[int, str]]:
    """The message's images not read yet: (evidence id, SHA-256 of the bytes), in order."""
    with database.read() as session:
        return [(row.id, row.sha256) for row in session.execute(
            select(Evidence.id, Evidence.sha256)
            .where(Evidence.message_pk == message_pk, Evidence.ocr_status == OCR_PENDING)
            .order_by(Evidence.position))]


def awaiting_ocr(session: Session, message_pk: int) -> bool:
    """Whether an image of the message is still to be read by OCR (in the caller's
    transaction)."""
    return session.execute(
        select(Evidence.id).where(Evidence.message_pk == message_pk,
                                  Evidence.ocr_status == OCR_PENDING).limit(1)
    ).first() is not None


def record_ocr_outcomes(session: Session, outcomes: Sequence[OcrOutcome]) -> int:
    """Record what OCR read, in the caller's transaction; an item extracted anew meanwhile
    (other bytes, or no longer pending) is left alone. How many were recorded."""
    recorded = 0
    for outcome in outcomes:
        row = session.get(Evidence, outcome.evidence_id, with_for_update=True)
        if row is None or row.sha256 != outcome.sha256 or row.ocr_status != OCR_PENDING:
            continue
        row.ocr_status = outcome.status
        row.ocr_sha256 = outcome.text_sha256
        recorded += 1
    return recorded


def evidence_for_message(database: Database, message_pk: int) -> list[Evidence]:
    """The message's evidence rows in extraction order (detached)."""
    with database.read() as session:
        rows = list(session.execute(
            select(Evidence).where(Evidence.message_pk == message_pk)
            .order_by(Evidence.position)
        ).scalars())
        session.expunge_all()
    return rows


def get_message(database: Database, message_pk: int) -> Message | None:
    """The message row by its id (detached)."""
    with database.read() as session:
        row = session.get(Message, message_pk)
        if row is not None:
            session.expunge(row)
    return row
