"""Run extraction again from the raw blob (the source of truth) for chosen messages."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from intake.step import MessageContext, PipelineStep
from storage.blobstore import BlobStore
from storage.database import Database
from storage.messages import mark_reprocessed
from storage.models import Message

log = logging.getLogger("chikanemail.intake.reprocess")


@dataclass
class ReprocessSummary:
    """What a reprocess run did."""

    done: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def reprocess_messages(
    messages: Sequence[Message], store: BlobStore, database: Database,
    steps: Sequence[PipelineStep],
) -> ReprocessSummary:
    """Run every step again on each message; a failure is reported, the rest go on."""
    summary = ReprocessSummary()
    for message in messages:
        context = MessageContext(message.id, message.sha256, message.attempts, store, database)
        try:
            for step in steps:
                step.run(context)
        except Exception as error:
            summary.failed += 1
            summary.errors.append(f"message {message.id}: {type(error).__name__}: {error}")
            log.warning("reprocess failed sha256=%s error=%s", message.sha256,
                        type(error).__name__)
            continue
        mark_reprocessed(database, message.id)
        summary.done += 1
    return summary
