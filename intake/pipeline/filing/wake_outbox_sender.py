"""Filing step: after the commit, the outbox sender is told mails are waiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts


class WakeOutboxSender:
    """Wake the outbox sender if the filing queued mails (they are committed by now)."""

    name = "wake_outbox_sender"
    in_transaction = False

    def __init__(self, on_outbox: Callable[[], None] | None) -> None:
        self.on_outbox = on_outbox

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: whom to tell."""
        return cls(parts.on_outbox)

    def file(self, filing: Filing) -> None:
        """Call `on_outbox` if mails were queued."""
        if filing.queued and self.on_outbox is not None:
            self.on_outbox()
