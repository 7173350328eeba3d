"""The processing pipeline: the ordered list of steps the worker runs on each message."""

from __future__ import annotations

from intake.parse.ocr import OcrEngine
from intake.pipeline.cases import OpenOrThreadCase
from intake.pipeline.check_raw import CheckRawMessage
from intake.pipeline.extract import ExtractEvidence
from intake.pipeline.step import PipelineStep
from intake.service.settings import ExtractSettings
from storage.blobstore import BlobStore


def extraction_steps(derived: BlobStore, extract: ExtractSettings,
                     ocr: OcrEngine | None) -> list[PipelineStep]:
    """The steps that derive everything from the raw blob, in order: what `reprocess` runs
    again. The case step is not among them: a message is filed once, by the worker."""
    return [
        CheckRawMessage(),
        ExtractEvidence(derived, extract, ocr),
    ]


def build_pipeline(derived: BlobStore, extract: ExtractSettings, ocr: OcrEngine | None,
                   cases: OpenOrThreadCase) -> list[PipelineStep]:
    """The steps every received message goes through, in order."""
    return [*extraction_steps(derived, extract, ocr), cases]
