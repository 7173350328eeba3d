"""Give failed outgoing mails another go: `chikanemail outbox retry` and the admin pages.

A mail fails for good when the relay refused it permanently or its retry deadline passed.
Once the admin has mended the cause (a mistyped address in the config, a relay that was
down for a day), retrying puts the mail back in the queue, due at once, with a fresh count
of tries and a fresh deadline. The mail's bytes and Message-ID stay as they were, so a
receiver that got it after all can drop the copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from storage import audit
from storage.database import Database
from storage.errors import ChikanemailError
from storage.models import OutboxMail, OutboxState, utc_now
from storage.outbox_rows import audited_recipients

RETRIED_ACTION = "mail-retried"


class OutboxRetryRefused(ChikanemailError):
    """A named mail cannot be retried: there is no such mail, or it has not failed."""


def retry_failed_outbox(
    database: Database,
    mail_ids: Sequence[int] | None,
    *,
    actor: str,
    retry_for: timedelta,
    now: datetime | None = None,
) -> list[int]:
    """Queue failed mails again, due at once, in one transaction; their ids, in order.

    `mail_ids=None` means every failed mail. A named mail that does not exist or has not
    failed raises `OutboxRetryRefused` and nothing changes. Each mail retried is a
    `mail-retried` audit event by `actor`; it may be tried for `retry_for` from now.
    """
    now = now or utc_now()
    with database.write() as session:
        statement = select(OutboxMail).where(OutboxMail.state == OutboxState.FAILED)
        if mail_ids is not None:
            statement = statement.where(OutboxMail.id.in_(list(mail_ids)))
        rows = list(session.execute(statement.order_by(OutboxMail.id).with_for_update())
                    .scalars())
        if mail_ids is not None:
            found = {row.id for row in rows}
            for mail_id in mail_ids:
                if mail_id not in found:
                    raise OutboxRetryRefused(f"outgoing mail {mail_id} has not failed "
                                             "(or does not exist)")
        for row in rows:
            audit.record(session, RETRIED_ACTION, actor=actor, now=now,
                         case_number=audit.case_number_of(session, row.case_id),
                         details={"kind": row.kind, "message_id": row.message_id,
                                  "to": audited_recipients(row.kind, row.rcpt_tos),
                                  "attempts": row.attempts})
            row.state = OutboxState.PENDING
            row.attempts = 0
            row.next_attempt_at = now
            row.deadline_at = now + retry_for
            row.claimed_by = None
            row.claimed_until = None
        return [row.id for row in rows]
