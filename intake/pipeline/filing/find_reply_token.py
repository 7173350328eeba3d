"""Filing step: the secret reply token the message came to, if any."""

from __future__ import annotations

from typing import Self

from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts
from intake.receive.addresses import RecipientPolicy
from intake.trust.reply_proof import reply_token_of


class FindReplyToken:
    """Find the reply token among the addresses the message came to and record it."""

    name = "find_reply_token"
    in_transaction = True

    def __init__(self, recipients: RecipientPolicy) -> None:
        self.recipients = recipients

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: its intake addresses."""
        return cls(parts.recipients)

    def file(self, filing: Filing) -> None:
        """Keep the token in the filing and its id on the row."""
        token = reply_token_of(filing.session, filing.row, filing.headers, self.recipients)
        filing.token = token
        filing.row.reply_token_id = token.token_id if token is not None else None
