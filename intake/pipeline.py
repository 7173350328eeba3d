"""The processing pipeline: the ordered list of steps the worker runs on each message.

A step is a small named object with one job. Steps must be idempotent: after a crash the
whole pipeline runs again on the same message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from storage.blobstore import BlobStore
from storage.database import Database

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class MessageContext:
    """What a step gets: the message's identity and the stores to work with."""

    message_pk: int
    sha256: str
    attempt: int
    store: BlobStore
    database: Database


class PipelineStep(Protocol):
    """One step of processing a received message."""

    name: str

    def run(self, message: MessageContext) -> None:
        """Do this step's work for the message; raise to have the message retried."""
        ...


class StepError(Exception):
    """A step could not finish; the message is retried, then quarantined."""


class CheckRawMessage:
    """Re-read the stored raw message and check it still hashes to its name."""

    name = "check_raw_message"

    def run(self, message: MessageContext) -> None:
        """Raise StepError if the raw blob is missing or its bytes changed."""
        digest = hashlib.sha256()
        try:
            with message.store.open(message.sha256) as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        except OSError as error:
            raise StepError(f"raw message blob unreadable: {error}") from error
        if digest.hexdigest() != message.sha256:
            raise StepError(f"raw message blob does not match its name {message.sha256}")


def default_pipeline() -> list[PipelineStep]:
    """The steps every received message goes through, in order."""
    return [
        CheckRawMessage(),
    ]
