"""The outbox: outgoing mail queued with the case change that caused it, sent at least once.

A mail is queued in the same transaction that opens or changes its case, so both happen or
neither does. It is rendered in full before it is queued, so every try sends the same bytes
with the same Message-ID; a receiver that sees a mail twice (a sender crashed after the
relay accepted it, before the row said so) can drop the copy by its Message-ID.

Temporary failures are retried with exponential backoff until the mail's deadline; a
permanent refusal or a passed deadline ends in `failed`, logged once as an error. Claiming,
marking and listing the rows is `storage.outbox_rows`; this module adds the queuing rules,
the backoff and the log lines.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from notifier.outgoing import OutgoingMail
from notifier.settings import NotifySettings
from storage.database import Database
from storage.models import OutboxMail, OutboxState, utc_now
from storage.outbox_rows import (
    ClaimedMail,
    NewOutboxRow,
    add_outbox_row,
    mark_outbox_failed,
    mark_outbox_retry,
    outbox_rows_for_case,
)

__all__ = ["enqueue", "mark_failed", "outbox_for_case", "retry_delay", "schedule_retry"]

log = logging.getLogger("chikanemail.notifier.outbox")

# Retries are spread by up to this fraction, so mails that failed together do not all
# come back at the same moment.
_JITTER = 0.1
# 2**_MAX_DOUBLINGS seconds is far beyond any sensible cap; keeps the float finite.
_MAX_DOUBLINGS = 40


def enqueue(
    session: Session,
    mail: OutgoingMail,
    *,
    case_id: int | None,
    settings: NotifySettings,
    now: datetime | None = None,
) -> OutboxMail:
    """Queue a mail in the caller's transaction (not committed); once per Message-ID.

    If a mail with this Message-ID is already queued (or sent), that row is returned and
    nothing is added.
    """
    if not mail.rcpt_tos:
        raise ValueError(f"outgoing {mail.kind} mail {mail.message_id} has no recipients")
    if not mail.message_id:
        raise ValueError(f"outgoing {mail.kind} mail has no Message-ID")
    now = now or utc_now()
    row, added = add_outbox_row(session, NewOutboxRow(
        kind=mail.kind,
        mail_from=mail.mail_from,
        rcpt_tos=tuple(mail.rcpt_tos),
        message_id=mail.message_id,
        subject=mail.subject,
        raw=mail.raw,
        case_id=case_id,
        created_at=now,
        deadline_at=now + timedelta(hours=settings.retry_deadline_hours),
    ))
    if added:
        log.info("mail queued kind=%s case=%s message_id=%s", mail.kind, case_id,
                 mail.message_id)
    elif row.raw != mail.raw:
        log.warning("a different mail with an already queued Message-ID was dropped "
                    "kind=%s case=%s message_id=%s", mail.kind, case_id, mail.message_id)
    return row


def mark_failed(database: Database, mail: ClaimedMail, sender_id: str, *, error: str) -> bool:
    """Give up on a mail and say so in the log, once; False if the claim was lost."""
    if not mark_outbox_failed(database, mail.id, sender_id, error=error):
        return False
    log.error("mail could not be delivered and will not be retried kind=%s case=%s "
              "message_id=%s attempts=%d error=%s",
              mail.kind, mail.case_id, mail.message_id, mail.attempts, error)
    return True


def retry_delay(attempts: int, settings: NotifySettings) -> timedelta:
    """How long to wait after the `attempts`-th failed try: doubling, capped, a little jitter."""
    doublings = min(max(attempts - 1, 0), _MAX_DOUBLINGS)
    nominal = settings.first_retry_seconds * 2.0**doublings
    jitter = 1.0 + random.uniform(0.0, _JITTER)  # noqa: S311  # spreads load, not a secret
    return timedelta(seconds=min(settings.max_retry_seconds, nominal * jitter))


def schedule_retry(
    database: Database,
    mail: ClaimedMail,
    sender_id: str,
    *,
    error: str,
    settings: NotifySettings,
    now: datetime | None = None,
) -> OutboxState | None:
    """Record a temporary failure: queued again after a backoff, or failed past the deadline.

    Returns the new state, or None if the claim was lost to another sender.
    """
    now = now or utc_now()
    next_attempt_at = now + retry_delay(mail.attempts, settings)
    if next_attempt_at > mail.deadline_at:
        deadline = mail.deadline_at.isoformat(timespec="seconds")
        failed = mark_failed(database, mail, sender_id,
                             error=f"{error} (retry deadline {deadline} passed)")
        return OutboxState.FAILED if failed else None
    if not mark_outbox_retry(database, mail.id, sender_id, error=error,
                             next_attempt_at=next_attempt_at):
        return None
    log.warning("mail not sent, will retry kind=%s case=%s message_id=%s attempt=%d "
                "in %.1f s error=%s", mail.kind, mail.case_id, mail.message_id, mail.attempts,
                (next_attempt_at - now).total_seconds(), error)
    return OutboxState.PENDING


# The name intake.commands.cli.case_actions still imports; storage.outbox_rows has it.
outbox_for_case = outbox_rows_for_case
