"""Pipeline step: the stored raw message must still hash to its name."""

from __future__ import annotations

import hashlib

from intake.pipeline.parts import NeedsNoParts
from intake.pipeline.step import MessageContext, StepError

_CHUNK = 1024 * 1024


class CheckRawMessage(NeedsNoParts):
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
