"""Run extraction again from the raw blob (the source of truth) for chosen messages.

What extraction derives is rebuilt: the evidence rows and the defects of the message and of
each part, which the `reprocessed` audit event lists where they changed. What was decided
about the message is not: the filing steps, which check the sender and file the message
(its kind and case), are not among the steps run here (`intake.pipeline.extraction_steps`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from intake.pipeline.run import Step, StepFailed, run_steps
from intake.pipeline.step import MessageContext
from storage.blobstore import BlobStore
from storage.database import Database
from storage.defects import defects_of_message
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
    steps: Sequence[Step],
) -> ReprocessSummary:
    """Run the steps again on each message; a failure is reported, the rest go on."""
    summary = ReprocessSummary()
    for message in messages:
        context = MessageContext(message.id, message.sha256, message.attempts, store, database)
        with database.read() as session:
            defects_before = defects_of_message(session, message.id)
        try:
            run_steps(steps, context)
        except StepFailed as failed:
            error = failed.error
            summary.failed += 1
            summary.errors.append(f"message {message.id}: {type(error).__name__}: {error}")
            log.warning("reprocess failed sha256=%s error=%s", message.sha256,
                        type(error).__name__)
            continue
        mark_reprocessed(database, message.id, defects_before=defects_before)
        summary.done += 1
    return summary
