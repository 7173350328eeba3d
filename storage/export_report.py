"""The human side of an evidence bundle: `report.html` and `README.txt`.

Both are rendered from the jinja2 templates in `storage/templates/` (`report.html.j2` the
report's layout, `report_labels.j2` its words, `readme.txt.j2` the README), one template for
every language, translated by the catalogs of `storage.i18n`. The report is one self-contained
page: pictures are `data:` URLs, styles are inline, and a Content-Security-Policy forbids
everything else, so it reads the same offline and fetches nothing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from storage.audit import format_utc
from storage.audit_words import describe, label, source_words
from storage.blobstore import BlobStore, BlobStoreError
from storage.code_words import (
    finder_words,
    flag_words,
    ocr_words,
    refusal_words,
    sender_check_words,
)
from storage.export_registration import registration_view
from storage.forwarded_original import original_of
from storage.i18n.catalogs import LANGUAGES as LANGUAGES  # re-exported: callers import it here
from storage.i18n.jinja import install_translations
from storage.models import (
    AuditEvent,
    Case,
    CaseNote,
    CaseRegistration,
    CaseStep,
    Evidence,
    Message,
    MessageTimestamp,
)
from storage.note_words import render_note
from storage.routing_words import routing_words
from storage.time_text import evidence_datetime
from storage.ui_settings import UiSettings

TEMPLATES = Path(__file__).parent / "templates"
TSA_CA_PATH = "timestamps/tsa-ca.pem"
# What every browser shows as it is; anything else is shown by its derived thumbnail.
BROWSER_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# A larger original is shown by its thumbnail, so the page stays openable; the file is whole.
MAX_INLINE_IMAGE_BYTES = 10 * 1024 * 1024
# Body and OCR text shown per item; the whole text is in the evidence file.
MAX_TEXT_CHARS = 50_000
_DETAILS_CHARS = 240
# Image facts that mean the original would not decode (see intake.parse.images.facts).
_UNDECODABLE_FLAGS = frozenset({
    "image-format-not-allowed", "image-truncated", "image-corrupt",
    "image-decompression-bomb", "image-too-large",
})


@dataclass(frozen=True)
class MessageRecords:
    """One message of the case with its evidence rows and its time-stamp (if any)."""

    message: Message
    evidence: Sequence[Evidence]
    timestamp: MessageTimestamp | None


@dataclass(frozen=True)
class CaseRecords:
    """Everything an export reads from the database about one case (detached rows)."""

    case: Case
    messages: Sequence[MessageRecords]
    notes: Sequence[CaseNote]
    steps: Sequence[CaseStep]
    events: Sequence[AuditEvent]
    head_seq: int
    head_hash: str
    # Every saved version of the case's registration, oldest first (issue 22).
    registrations: Sequence[CaseRegistration] = ()


@dataclass(frozen=True)
class ExportFacts:
    """Facts about the export itself that the report and README state."""

    exported_at: datetime
    exporter: str
    tool_version: str
    language: str
    has_tsa_ca: bool
    # The workplace's zone ([ui] timezone): every local time in the README and the report.
    zone: tzinfo = field(default_factory=lambda: UiSettings().zone)


def utc_time(moment: datetime) -> str:
    """The moment as UTC ISO 8601 with microseconds and a Z (as the audit log writes it)."""
    return format_utc(moment)


@lru_cache(maxsize=len(LANGUAGES))
def _environment(language: str) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2",),
                                     default_for_string=False, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    install_translations(environment, language)
    return environment


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"no export templates for language {language!r} (da, en)")


def render_readme(records: CaseRecords, facts: ExportFacts,
                  timestamps: Sequence[tuple[str, str]]) -> str:
    """README.txt: what each file is and how to check it; Danish is followed by English.

    `timestamps` lists (message SHA-256, bundle path of its .tsr) pairs.
    """
    _check_language(facts.language)
    languages = ["da", "en"] if facts.language == "da" else [facts.language]
    values = {
        "number": records.case.number,
        "exported_at_utc": utc_time(facts.exported_at),
        "exporter": facts.exporter,
        "tool_version": facts.tool_version,
        "head_seq": records.head_seq,
        "head_hash": records.head_hash,
        "timestamps": list(timestamps),
        "has_tsa_ca": facts.has_tsa_ca,
        "ca_path": TSA_CA_PATH if facts.has_tsa_ca else None,
    }
    parts = [_environment(language).get_template("readme.txt.j2").render(
        {**values, "exported_at_local": evidence_datetime(facts.exported_at, language,
                                                          facts.zone)})
             for language in languages]
    return ("\n" + "=" * 72 + "\n\n").join(parts)


def render_report(records: CaseRecords, facts: ExportFacts, *, bundle_root: Path,
                  evidence_paths: Mapping[int, str], derived: BlobStore) -> str:
    """report.html: the case, its originals, pictures, OCR text, checklist and timeline.

    `evidence_paths` maps each evidence row's id to its file in the bundle (already written
    and checked), where the pictures shown as they are are read from.
    """
    _check_language(facts.language)
    environment = _environment(facts.language)
    labels = environment.get_template("report_labels.j2").module
    values = {
        "t": labels,
        "language": facts.language,
        "case": _case_view(records.case, facts.language, facts.zone),
        "exported_at": evidence_datetime(facts.exported_at, facts.language, facts.zone),
        "exported_at_utc": utc_time(facts.exported_at),
        "exporter": facts.exporter,
        "tool_version": facts.tool_version,
        "head_seq": records.head_seq,
        "head_hash": records.head_hash,
        "originals": _originals_view(records.messages, facts.language, facts.zone),
        "messages": [_message_view(item, bundle_root, evidence_paths, derived, labels,
                                   facts.language, facts.zone)
                     for item in records.messages],
        "steps": [_step_view(step, facts.language, facts.zone) for step in records.steps],
        "notes": [{"time": evidence_datetime(note.created_at, facts.language, facts.zone),
                   "author": note.author,
                   "text": render_note(note, facts.language, facts.zone)}
                  for note in records.notes],
        "timeline": _timeline(records, labels, facts.language, facts.zone),
        "registration": registration_view(records.case, records.registrations,
                                          facts.language, facts.zone),
    }
    return environment.get_template("report.html.j2").render(values)


def render_registration(records: CaseRecords, facts: ExportFacts) -> str:
    """registration.html: a printable page with every version of the case's registration,
    newest first, each field labelled and in words, and the EASY record."""
    _check_language(facts.language)
    environment = _environment(facts.language)
    values = {
        "language": facts.language,
        "registration": registration_view(records.case, records.registrations,
                                          facts.language, facts.zone),
        "exported_at": evidence_datetime(facts.exported_at, facts.language, facts.zone),
        "exporter": facts.exporter,
    }
    return environment.get_template("registration.html.j2").render(values)


def _optional_time(moment: datetime | None, language: str, zone: tzinfo) -> str | None:
    return evidence_datetime(moment, language, zone) if moment is not None else None


def _case_view(case: Case, language: str, zone: tzinfo) -> dict[str, Any]:
    return {
        "number": case.number,
        "status": case.status,
        "reporter": case.reporter,
        "reporter_name": case.reporter_name,
        "manager": case.manager,
        "deputy": case.deputy,
        "routing": routing_words(case.routing_source, case.routing_params, case.routing_reason,
                                 language),
        "opened_at": evidence_datetime(case.opened_at, language, zone),
        "closed_at": _optional_time(case.closed_at, language, zone),
        "close_reason": case.close_reason,
        "relation": case.relation,
        "medium": case.medium,
        "first_absence_day": (case.first_absence_day.isoformat()
                              if case.first_absence_day else None),
        "witnesses": list(case.witnesses or []),
        "acknowledged_at": _optional_time(case.acknowledged_at, language, zone),
        "acknowledged_by": case.acknowledged_by,
        "legal_hold": case.legal_hold,
        "hold_reason": case.hold_reason,
        "sender_unverified": bool(case.sender_unverified),
    }


def _shown_date(value: object, language: str, zone: tzinfo) -> str | None:
    """A forwarded original's date in local time; one without a zone as it was written."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return (evidence_datetime(value, language, zone) if value.tzinfo
                else value.isoformat(sep=" "))
    return None


def _original_view(source: str, values: Mapping[str, Any], language: str,
                   zone: tzinfo) -> dict[str, Any]:
    return {
        "source": source,
        "rule": values.get("rule"),
        "rule_words": finder_words(values.get("rule"), language),
        "from_name": values.get("from_name"),
        "from_address": values.get("from_address"),
        "date": _shown_date(values.get("date"), language, zone),
        "date_zone_assumed": bool(values.get("date_zone_assumed")),
        "date_raw": values.get("date_raw"),
        "subject": values.get("subject"),
        "to": values.get("to"),
        "message_id": values.get("message_id"),
    }


def _originals_view(messages: Sequence[MessageRecords], language: str,
                    zone: tzinfo) -> list[dict[str, Any]]:
    """Who sent each forwarded original, when and with what subject, as extracted."""
    originals = []
    for item in messages:
        message = item.message
        original = original_of(message)
        if original is not None:
            originals.append(_original_view(message.sha256, asdict(original), language, zone))
        for row in item.evidence:
            if row.original:
                originals.append(_original_view(f"{message.sha256} {row.part_path}",
                                                row.original, language, zone))
    return originals


def envelope_of(message: Message) -> dict[str, Any]:
    """How the message arrived (transport facts of its first delivery), as JSON values."""
    return {
        "source": message.source,
        "mail_from": message.mail_from,
        "rcpt_tos": list(message.rcpt_tos or []),
        "peer": message.peer,
        "helo": message.helo,
        "tls": message.tls,
        "times_seen": message.times_seen,
    }


def _message_view(item: MessageRecords, bundle_root: Path, evidence_paths: Mapping[int, str],
                  derived: BlobStore, labels: Any, language: str,
                  zone: tzinfo) -> dict[str, Any]:
    message = item.message
    return {
        "sha256": message.sha256,
        "size": message.size,
        "kind": message.kind,
        "received_at": evidence_datetime(message.received_at, language, zone),
        "from_address": message.from_address,
        "subject": message.subject,
        "unverified": bool(message.unverified),
        "sender_check_text": sender_check_words(message.sender_check, language),
        "to_reply_address": message.reply_token_id is not None,
        **envelope_of(message),
        "source_words": source_words(message.source, language),
        "timestamp": (_optional_time(item.timestamp.gen_time, language, zone)
                      if item.timestamp is not None else None),
        "evidence": [_evidence_view(row, bundle_root, evidence_paths.get(row.id), derived,
                                    language)
                     for row in item.evidence],
    }


def _evidence_view(row: Evidence, bundle_root: Path, path: str | None,
                   derived: BlobStore, language: str) -> dict[str, Any]:
    is_picture = row.image is not None or (row.sniffed_type or "").startswith("image/")
    text = None
    if row.role == "body" and row.text_sha256:
        text = _derived_text(derived, row.text_sha256)
    return {
        "part_path": row.part_path,
        "role": row.role,
        "filename": row.filename,
        "type": row.sniffed_type or row.declared_type,
        "size": row.size,
        "sha256": row.sha256,
        "path": path,
        "flags": [{"code": flag, "words": flag_words(flag, language)}
                  for flag in row.flags or []],
        "picture": _picture(row, bundle_root, path, derived) if is_picture else None,
        "ocr_status": row.ocr_status,
        "ocr_words": ocr_words(row.ocr_status, language) if row.ocr_status else None,
        "ocr_text": _derived_text(derived, row.ocr_sha256),
        "text": text,
    }


def _picture(row: Evidence, bundle_root: Path, path: str | None,
             derived: BlobStore) -> dict[str, Any]:
    """How a picture is shown: the original itself, its derived thumbnail, or not at all."""
    flags = set(row.flags or [])
    if (path is not None and row.sniffed_type in BROWSER_IMAGE_TYPES
            and row.size <= MAX_INLINE_IMAGE_BYTES and not flags & _UNDECODABLE_FLAGS):
        data = (bundle_root / path).read_bytes()
        return {"shown": "original", "data_url": _data_url(row.sniffed_type, data),
                "thumbnail_sha256": None}
    thumbnail = _derived_bytes(derived, row.thumbnail_sha256)
    if thumbnail is not None:
        return {"shown": "thumbnail", "data_url": _data_url("image/jpeg", thumbnail),
                "thumbnail_sha256": row.thumbnail_sha256}
    return {"shown": "none", "data_url": None, "thumbnail_sha256": None}


def _data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _derived_bytes(derived: BlobStore, sha256: str | None) -> bytes | None:
    """A derived blob's bytes, only if they still match their name."""
    if not sha256:
        return None
    try:
        data = derived.read_bytes(sha256)
    except BlobStoreError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def _derived_text(derived: BlobStore, sha256: str | None) -> str | None:
    data = _derived_bytes(derived, sha256)
    if data is None:
        return None
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "\n…"


def _step_view(step: CaseStep, language: str, zone: tzinfo) -> dict[str, Any]:
    return {
        "position": step.position,
        "key": step.key,
        "title": step.title_en if language == "en" else step.title_da,
        "owner": step.owner,
        "due_at": _optional_time(step.due_at, language, zone),
        "done_at": _optional_time(step.done_at, language, zone),
        "done_by": step.done_by,
    }


def _event_reading(event: AuditEvent, labels: Any,
                   language: str) -> tuple[str | None, dict[str, Any]]:
    """A sentence for the events a reader must not miss (an unverified sender, a refused
    command), and the details with their sender check and refusal codes put into words."""
    details = dict(event.details)
    if "sender_check" in details:
        details["sender_check"] = sender_check_words(details["sender_check"], language)
    note = None
    if event.action == "command-refused":
        reason = details.get("reason")
        details["reason"] = refusal_words(reason, language)
        commands = ", ".join(str(command) for command in details.get("commands") or [])
        note = (f"{labels.command_refused}{f' ({commands})' if commands else ''}: "
                f"{details['reason']}")
    elif event.action == "sender-unverified":
        note = str(labels.case_sender_unverified)
    elif event.action == "filed" and details.get("unverified"):
        note = f"{labels.unverified}: {labels.unverified_explained}"
    return note, details


def _shortened(text: str) -> str:
    return text if len(text) <= _DETAILS_CHARS else text[: _DETAILS_CHARS - 1] + "…"


def _timeline(records: CaseRecords, labels: Any, language: str,
              zone: tzinfo) -> list[dict[str, Any]]:
    """Messages, notes and audit events in the order they happened."""
    entries: list[tuple[datetime, int, dict[str, Any]]] = []
    for item in records.messages:
        message = item.message
        entries.append((message.received_at, 0, {
            "kind": "message", "time": evidence_datetime(message.received_at, language, zone,
                                                         compact=True),
            "who": message.from_address or message.mail_from,
            "what": labels.kinds.get(message.kind, message.kind) if message.kind else None,
            "text": message.subject, "sha256": message.sha256, "code": None, "rest": "",
            "note": (f"{labels.unverified}: {labels.unverified_explained}"
                     if message.unverified else None)}))
    for note in records.notes:
        entries.append((note.created_at, 1, {
            "kind": "note",
            "time": evidence_datetime(note.created_at, language, zone, compact=True),
            "who": note.author,
            "what": None, "text": render_note(note, language, zone), "sha256": None, "note": None,
            "code": None, "rest": ""}))
    for event in records.events:
        reading, shown = _event_reading(event, labels, language)
        words = describe(event.action, shown, language)
        entries.append((event.occurred_at, 2, {
            "kind": "audit", "time": evidence_datetime(event.occurred_at, language, zone,
                                                       compact=True),
            "who": event.actor, "what": label(event.action, language), "code": event.action,
            "text": _shortened(words.sentence) or None,
            "rest": _shortened("; ".join(f"{key}: {value}" for key, value in words.rest)),
            "sha256": event.message_sha256, "seq": event.seq, "note": reading}))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [entry for _, _, entry in entries]
