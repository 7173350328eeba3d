"""The last step: the text in a report's screenshots, read by OCR after the case is filed.

OCR takes seconds per screenshot and nothing in the filing needs its text, so the worker
extracts images with their OCR `pending`, files the message (the manager's notification is
committed and the sender woken), and only then reads them. Until then the evidence page says
the text is not read yet. The text is recorded with the message's `processed` in one
transaction. A crash in between leaves the message claimed: the next run extracts it again
(still `pending`), finds it filed, and reads the screenshots.
"""

from __future__ import annotations

import logging
from typing import Self

from intake.parse.ocr import OcrEngine
from intake.pipeline.parts import PipelineParts
from intake.pipeline.step import MessageContext
from storage.blobstore import BlobStore
from storage.evidence import OcrOutcome, evidence_awaiting_ocr, record_ocr_outcomes
from storage.messages import ClaimLost, record_processed

log = logging.getLogger("chikanemail.intake.ocr")


class ReadScreenshots:
    """Pipeline step, the last: OCR the message's images left `pending` by the extraction,
    and record the message processed with the text."""

    name = "read_screenshots"

    def __init__(self, derived: BlobStore, ocr: OcrEngine | None) -> None:
        self.derived = derived
        self.ocr = ocr

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: where the text goes, and the OCR engine."""
        return cls(parts.derived, parts.ocr)

    def run(self, message: MessageContext) -> bool:
        """Read every pending image of the message; record the outcomes together and, for
        the worker holding the claim, the message processed. True when it recorded that;
        raises ClaimLost (nothing recorded) when the claim is no longer ours."""
        waiting = evidence_awaiting_ocr(message.database, message.message_pk)
        if not waiting or self.ocr is None:
            return False
        outcomes = []
        # Text found already stored is referenced by nothing until its row says so:
        # retention must not delete it in between (it waits for this shared lock).
        with self.derived.shared_lock():
            for evidence_id, sha256 in waiting:
                result = self.ocr.recognize(message.store.read_bytes(sha256))
                text_sha256 = (self.derived.put(result.text.encode("utf-8"))
                               if result.text else None)
                outcomes.append(OcrOutcome(evidence_id, sha256, result.status, text_sha256))
            with message.database.write() as session:
                record_ocr_outcomes(session, outcomes)
                processed = message.claimer is not None
                if processed and not record_processed(session, message.message_pk,
                                                      str(message.claimer)):
                    raise ClaimLost(f"message {message.message_pk} is no longer claimed by "
                                    f"{message.claimer}")
        log.info("screenshots read sha256=%s images=%d", message.sha256, len(outcomes))
        return processed
