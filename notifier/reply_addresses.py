"""The secret reply address of one mail: a fresh token for its case and recipient."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from notifier.mails import MailComposer
from storage.reply_tokens import issue_token


def secret_reply_address(session: Session, composer: MailComposer, *, case_id: int | None,
                         recipient: str, kind: str, now: datetime) -> str:
    """Issue a token for this case (None: one that acts on no case) and recipient, in the
    caller's transaction; the reply address that carries it."""
    token = issue_token(session, case_id=case_id, address=recipient, kind=kind, now=now)
    return composer.token_address(token)
