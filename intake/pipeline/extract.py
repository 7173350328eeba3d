"""The extraction step: every part of a message becomes its own evidence item.

Runs in the worker (never on the event loop). The raw blob is the source of truth: running
extraction again (after a crash, or `chikanemail reprocess`) yields the same rows.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import warnings
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Self

import mailparser

from intake.parse.forwarded.original import find_inline_forward, original_from_attached
from intake.parse.images.analysis import analyze_image
from intake.parse.images.formats import looks_like_image
from intake.parse.ocr import STATUS_PENDING, OcrEngine
from intake.parse.parts import ExtractedPart, MessageFacts, PartWalker, parse_message
from intake.parse.sniff import sniff_type
from intake.pipeline.parts import PipelineParts
from intake.pipeline.step import MessageContext
from intake.service.settings import ExtractSettings
from storage.blobstore import BlobStore
from storage.defects import MAIL_PARSER, STDLIB, Defect
from storage.evidence import EvidenceRecord, MessageExtraction, save_extraction
from storage.forwarded_original import ForwardedOriginal
from storage.models import EvidenceRole
from storage.ui_settings import UiSettings

log = logging.getLogger("chikanemail.intake.extract")
logging.getLogger("mailparser").setLevel(logging.ERROR)  # it logs header values

_IP_IN_BRACKETS = re.compile(r"[\[(]((?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]+)[\])]")
PART_LIMIT_DEFECT = "PartLimitReached"
# Above this, mail-parser reads the header block only (see _mailparser_facts).
MAILPARSER_WHOLE_MAX_BYTES = 8 * 1024 * 1024
_HEADER_BLOCK_END = re.compile(rb"\r?\n\r?\n")
# What mail-parser can know from a header block alone: its own checks of header values. Its
# MIME parse of a header block infers a body that is not there (every multipart mail got
# StartBoundaryNotFoundDefect and MultipartInvariantViolationDefect); the header block's
# structural defects are the stdlib's to report, from its parse of the whole mail.
MAILPARSER_HEADER_CHECKS = frozenset({
    "AddressHeaderDefect", "DateHeaderDefect", "MimeHeaderDefect", "ReceivedHeaderDefect",
})
_UNREADABLE_IMAGE_FLAGS = frozenset({
    "image-format-not-allowed", "image-truncated", "image-corrupt",
    "image-decompression-bomb", "image-too-large",
})


@dataclass(frozen=True)
class Extraction:
    """Everything extracted from one raw message, ready to save."""

    records: list[EvidenceRecord]
    message: MessageExtraction


class EvidenceExtractor:
    """Turns raw message bytes into stored blobs and evidence records."""

    def __init__(self, store: BlobStore, derived: BlobStore, settings: ExtractSettings,
                 ocr: OcrEngine | None, *, defer_ocr: bool = False) -> None:
        self.store = store
        self.derived = derived
        self.settings = settings
        self.ocr = ocr
        # Leave the images to read as `pending`, for ReadScreenshots after the filing.
        self.defer_ocr = defer_ocr

    def extract(self, raw: bytes) -> Extraction:
        """Store every part's bytes (and derived text/thumbnails) and describe them."""
        records, attached, facts = self._walk(raw)
        # The parsed tree is gone now: mail-parser's own parse does not add to its memory.
        body_text = facts.body_text or facts.body_html_text
        body_sha256 = self.derived.put(body_text.encode("utf-8")) if body_text else None
        original = attached or self._inline_original(facts.body_text, facts.body_html_text)
        received, sender_ip, legacy_defects = _mailparser_facts(raw)
        return Extraction(records, MessageExtraction(
            defects=sorted(set(facts.defects) | legacy_defects), body_text_sha256=body_sha256,
            received_chain=received,
            sender_ip=sender_ip, original=original,
        ))

    def _walk(self, raw: bytes) -> tuple[list[EvidenceRecord], ForwardedOriginal | None,
                                           MessageFacts]:
        """Store and describe every part; the first attached original at the top level."""
        walker = PartWalker(raw, max_depth=self.settings.max_depth)
        records: list[EvidenceRecord] = []
        attached: ForwardedOriginal | None = None
        for part in walker.parts(parse_message(raw)):
            if len(records) >= self.settings.max_parts:
                # Each part costs a blob, a row and its share of one transaction: a mail of
                # tiny parts must not hold the worker for minutes. The raw blob has them all.
                walker.stop_early(PART_LIMIT_DEFECT)
                break
            record, original = self._record(part)
            records.append(record)
            if attached is None and original is not None and part.depth == 0:
                attached = original
            part.data = b""  # the bytes are stored; let them go before the next part
        return records, attached, walker.facts

    def _record(self, part: ExtractedPart) -> tuple[EvidenceRecord, ForwardedOriginal | None]:
        sha256 = self.store.put(part.data)
        flags = list(part.flags)
        text_sha256 = self.derived.put(part.text.encode("utf-8")) if part.text else None
        image: dict[str, Any] | None = None
        thumbnail_sha256 = dhash = ocr_status = ocr_sha256 = None
        if looks_like_image(part.data, part.declared_type, part.filename):
            facts = analyze_image(part.data, max_pixels=self.settings.max_image_pixels)
            image = facts.to_json()
            flags.extend(facts.flags)
            dhash = facts.dhash
            if facts.thumbnail_jpeg:
                thumbnail_sha256 = self.derived.put(facts.thumbnail_jpeg)
            if self.ocr is None or _UNREADABLE_IMAGE_FLAGS.intersection(facts.flags):
                ocr_status = "skipped"
            elif self.defer_ocr:
                ocr_status = STATUS_PENDING
            else:
                result = self.ocr.recognize(part.data)
                ocr_status = result.status
                if result.text:
                    ocr_sha256 = self.derived.put(result.text.encode("utf-8"))
        original = _original_of(part)
        record = EvidenceRecord(
            part_path=part.path, parent_path=part.parent_path, role=part.role,
            sha256=sha256, size=len(part.data), declared_type=part.declared_type,
            sniffed_type=sniff_type(part.data), filename=part.filename,
            content_id=part.content_id, disposition=part.disposition,
            transfer_encoding=part.transfer_encoding, charset=part.charset,
            defects=sorted({Defect(name, STDLIB) for name in part.defects}), flags=flags,
            text_sha256=text_sha256,
            image=image, thumbnail_sha256=thumbnail_sha256, dhash=dhash,
            ocr_status=ocr_status, ocr_sha256=ocr_sha256,
            original=original.to_json() if original else None,
        )
        return record, original

    def _inline_original(self, plain: str | None,
                         html_text: str | None) -> ForwardedOriginal | None:
        for text in (plain, html_text):
            if text:
                found = find_inline_forward(text)
                if found is not None:
                    return found
        return None


def _original_of(part: ExtractedPart) -> ForwardedOriginal | None:
    """Who sent an attached original (a nested message or an Outlook .msg), if it says."""
    original: ForwardedOriginal | None = None
    if part.role == EvidenceRole.NESTED_MESSAGE and part.nested is not None:
        original = original_from_attached(part.nested)
    elif part.container is not None and part.container.kind == "outlook-msg":
        original = part.container.original
    if original is None or not (original.from_address or original.from_name
                                or original.subject or original.date_raw):
        return None
    return original


def _mailparser_facts(raw: bytes) -> tuple[list[dict[str, Any]], str | None, set[Defect]]:
    """By mail-parser: the Received chain (oldest hop first), the first hop's sending IP, and
    the defect categories of the legacy (compat32) parse, which sees some the modern one does
    not. A mail over MAILPARSER_WHOLE_MAX_BYTES is shown only its header block: mail-parser
    holds about five times the mail while parsing it (a 50 MB mail took the worker to 570
    MiB), and the body's defects are found by the stdlib walk all the same. Of that partial
    view only the defects of MAILPARSER_HEADER_CHECKS count, and none when no header block
    ends within the mail (the view then stops inside a header)."""
    known: frozenset[str] | None = None  # None: every category (the whole mail was read)
    if len(raw) > MAILPARSER_WHOLE_MAX_BYTES:
        end = _HEADER_BLOCK_END.search(raw)
        raw = raw[:end.end()] if end else raw[:MAILPARSER_WHOLE_MAX_BYTES]
        known = MAILPARSER_HEADER_CHECKS if end else frozenset()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = mailparser.parse_from_bytes(raw)
            hops = [dict(hop) for hop in (parsed.received or [])]
            categories = {str(name) for name in (parsed.defects_categories or ())}
    except Exception:  # mail-parser is a helper here; the stdlib tree is the evidence
        log.warning("mail-parser could not read the message")
        return [], None, set()
    defects = {Defect(name, MAIL_PARSER) for name in categories
               if known is None or name in known}
    hops.sort(key=lambda hop: int(hop.get("hop", 0) or 0))
    for hop in hops:
        for candidate in _IP_IN_BRACKETS.findall(str(hop.get("from", ""))):
            try:
                return hops, str(ipaddress.ip_address(candidate)), defects
            except ValueError:
                continue
    return hops, None, defects


class ExtractEvidence:
    """Pipeline step: extract every part of the message and save the evidence rows."""

    name = "extract_evidence"

    def __init__(self, derived: BlobStore, settings: ExtractSettings,
                 ocr: OcrEngine | None, zone: tzinfo | None = None, *,
                 defer_ocr: bool = False) -> None:
        self.derived = derived
        self.settings = settings
        self.ocr = ocr
        # The worker reads screenshots after the filing (ReadScreenshots), so that a new
        # case's manager is told without waiting for OCR; `reprocess` reads them here.
        self.defer_ocr = defer_ocr
        # The workplace's zone ([ui] timezone), in which a forward's zone-less date is read.
        self.zone: tzinfo = zone if zone is not None else UiSettings().zone

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: its derived store, [extract] settings, OCR (now or
        after the filing) and the workplace's zone."""
        return cls(parts.derived, parts.extract, parts.ocr, parts.calendar.zone,
                   defer_ocr=parts.defer_ocr)

    def run(self, message: MessageContext) -> None:
        """Extract from the raw blob and save the rows in one transaction."""
        raw = message.store.read_bytes(message.sha256)
        extractor = EvidenceExtractor(message.store, self.derived, self.settings, self.ocr,
                                      defer_ocr=self.defer_ocr)
        # A part or derived blob found already stored is referenced by nothing of this
        # message until the rows are saved: retention must not delete it in between (it
        # waits for these shared locks).
        with message.store.shared_lock(), self.derived.shared_lock():
            extraction = extractor.extract(raw)
            save_extraction(message.database, message.message_pk, extraction.records,
                            extraction.message, self.zone)
        log.info("evidence extracted sha256=%s parts=%d original=%s", message.sha256,
                 len(extraction.records),
                 extraction.message.original.rule if extraction.message.original else "none")
