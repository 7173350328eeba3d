"""Filing step: a mail on an existing case is recorded there, and acts if it proves its
sender (`intake.commands.reply`)."""

from __future__ import annotations

import logging
from typing import Self

from intake.commands.reply.actions import IncomingMail, ReplyHandler
from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts
from intake.receive.addresses import normalize_address
from notifier.clock import Clock
from storage.blobstore import BlobStore, BlobStoreError
from storage.models import Message

log = logging.getLogger("chikanemail.pipeline")

TEXT_MAX_CHARS = 200_000


class HandleReply:
    """Hand a message that belongs to a case to the reply handler."""

    name = "handle_reply"
    in_transaction = True

    def __init__(self, replies: ReplyHandler, derived: BlobStore, clock: Clock) -> None:
        self.replies = replies
        self.derived = derived
        self.clock = clock

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: its reply handler, derived store and clock."""
        return cls(parts.replies, parts.derived, parts.clock)

    def file(self, filing: Filing) -> None:
        """Record the message on its case, unless its kind is decided or it has no case."""
        case = filing.case
        if filing.decided or case is None:
            return
        check, row = filing.check, filing.row
        claimed = check.from_address or filing.sender.address
        mail = IncomingMail(sender=normalize_address(claimed) if claimed else None,
                            text=self._body_text(row), token=filing.token, check=check)
        outcome = self.replies.handle(filing.session, row, case, mail, self.clock.now())
        filing.queued = outcome.queued
        filing.decided = True

    def _body_text(self, row: Message) -> str:
        """The message's text as extraction derived it, cut to TEXT_MAX_CHARS; empty when it
        has none (the note then says so in the reader's language, see note_words.NO_TEXT)."""
        if not row.body_text_sha256:
            return ""
        try:
            text = self.derived.read_bytes(row.body_text_sha256).decode("utf-8", "replace")
        except BlobStoreError:
            # The raw mail is kept and `reprocess` derives the text again; acting on a
            # reply whose words cannot be read would guess at its commands.
            log.warning("derived text of a reply unreadable sha256=%s", row.sha256)
            return ""
        return text[:TEXT_MAX_CHARS]
