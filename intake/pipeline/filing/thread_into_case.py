"""Filing step: the case a message belongs to, by its thread, its case tag or its token."""

from __future__ import annotations

from typing import Self

from sqlalchemy.orm import Session

from intake.commands.reply.actions import ReplyHandler
from intake.parse.case_tags import case_number_in
from intake.parse.headers import header_str
from intake.pipeline.filing.step import Filing
from intake.pipeline.parts import PipelineParts
from storage.cases import case_by_number, case_threaded_by
from storage.log_context import add_log_fields
from storage.models import Case


def message_ids(*values: str | None) -> list[str]:
    """The `<…>` message ids in In-Reply-To/References style header values, in order."""
    found: list[str] = []
    for value in values:
        if not value:
            continue
        for token in value.replace(",", " ").split():
            if token.startswith("<") and token.endswith(">"):
                found.append(token)
    return found


class ThreadIntoCase:
    """Record the message's thread headers and find its case: the case of a mail it answers,
    the case its subject names (when the sender is one of that case's people or an admin),
    or the case of the reply token it came to."""

    name = "thread_into_case"
    in_transaction = True

    def __init__(self, replies: ReplyHandler) -> None:
        self.replies = replies

    @classmethod
    def from_parts(cls, parts: PipelineParts) -> Self:
        """The step for a configuration: who may name a case by its number."""
        return cls(parts.replies)

    def file(self, filing: Filing) -> None:
        """Keep the thread ids and the case (or None) in the filing."""
        session, row = filing.session, filing.row
        row.in_reply_to = header_str(filing.headers, "In-Reply-To")
        row.reference_ids = message_ids(header_str(filing.headers, "References"))
        filing.thread_ids = message_ids(row.in_reply_to) + row.reference_ids
        case = case_threaded_by(session, filing.thread_ids)
        if case is None:
            case = self._case_by_tag(session, header_str(filing.headers, "Subject"),
                                     filing.sender.address)
        token = filing.token
        if case is None and token is not None and token.case_id is not None:
            case = session.get(Case, token.case_id)
        filing.case = case
        add_log_fields(case=case.number if case else None)

    def _case_by_tag(self, session: Session, subject: str | None,
                     sender: str | None) -> Case | None:
        """The case a typed case number names, when the sender is one of its people or an
        admin; anyone else's case number opens a new case and learns nothing."""
        number = case_number_in(subject)
        if number is None or sender is None:
            return None
        case = case_by_number(session, number)
        if case is None:
            return None
        return case if self.replies.may_act_without_token(case, sender) else None
