"""What a pipeline step is: a small named object with one job, run on one message.

The extraction steps are `PipelineStep`s; the filing steps after them pass what they find
along in a `Filing` (`intake.pipeline.filing.step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from storage.blobstore import BlobStore
from storage.database import Database
from storage.errors import ChikanemailError


@dataclass(frozen=True)
class MessageContext:
    """What a step gets: the message's identity and the stores to work with."""

    message_pk: int
    sha256: str
    attempt: int
    store: BlobStore
    database: Database
    # The worker holding the message's claim (`claimed_by`); None outside a worker
    # (`reprocess`), where the caller records how the run ended.
    claimer: str | None = None


class PipelineStep(Protocol):
    """One step of processing a received message. Steps must be idempotent: after a crash
    the whole pipeline runs again on the same message."""

    name: str

    def run(self, message: MessageContext) -> bool | None:
        """Do this step's work for the message; raise to have the message retried. True
        when the step also recorded the message processed (the last step may)."""
        ...


class StepError(ChikanemailError):
    """A step could not finish; the message is retried, then quarantined."""
