"""The outbox sender: claims due mails, hands each to the transport, records the outcome.

Delivery is at least once. A sender that dies between the relay's 250 and the row saying
"sent" leaves a claim; the next start on this host (or the lease, on another host) sends the
mail again, byte for byte, with the same Message-ID. A sender that lives but cannot record
an outcome (the database went away) records the mail the relay took as sent, and hands its
other claims back, as soon as the database answers again, rather than leave them to the
lease (and send that mail twice).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from notifier.outbox import mark_failed, schedule_retry
from notifier.polling_thread import PollingThread
from notifier.settings import NotifySettings
from notifier.transport import PermanentSendError, TemporarySendError, Transport
from storage.claims import ClaimerIdentity
from storage.database import Database
from storage.log_context import log_fields
from storage.models import utc_now
from storage.outbox_rows import (
    ClaimedMail,
    claim_outbox,
    mark_outbox_sent,
    release_abandoned_outbox,
    release_outbox_claims,
)

log = logging.getLogger("chikanemail.notifier.sender")

DEFAULT_BATCH_SIZE = 10


class OutboxSender:
    """Sends due outgoing mail, in its own thread or batch by batch."""

    def __init__(
        self,
        database: Database,
        transport: Transport,
        settings: NotifySettings,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lease: timedelta | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.database = database
        self.transport = transport
        self.settings = settings
        self.batch_size = batch_size
        # Long enough for a slow relay; a claim of a sender that hangs beyond it is taken over.
        self.lease = lease or timedelta(seconds=max(60.0, settings.timeout_seconds * 10))
        self.identity = ClaimerIdentity()
        self._recovered = False
        # Mails claimed in this thread whose outcome is not recorded yet, and a mail the
        # relay took whose "sent" could not be recorded (with its note and when it left).
        self._unfinished: list[int] = []
        self._sent_unrecorded: tuple[ClaimedMail, str | None, datetime] | None = None
        self._loop = PollingThread(
            "chikanemail-sender", self._send_round, settings.poll_seconds,
            failure="sender could not claim or record mail",
            busy_at_stop="sender still busy at shutdown; its mail is sent again at next start")

    @property
    def sender_id(self) -> str:
        """The name this sender's claims carry."""
        return str(self.identity)

    def wake(self) -> None:
        """Tell the sender a new mail is queued (safe from any thread)."""
        self._loop.wake()

    def recover_abandoned(self) -> int:
        """Queue again the mails left mid-send by a dead sender of this host; how many."""
        released = release_abandoned_outbox(self.database,
                                            is_abandoned=self.identity.is_abandoned)
        self._recovered = True
        if released:
            log.info("resuming %d mails left mid-send by a stopped sender", released)
        return released

    def send_due(self) -> int:
        """Claim one batch of due mails and try each once; return how many were tried."""
        return self._send_batch()[0]

    def send_until_idle(self) -> int:
        """Send batches until nothing is due or a batch got nothing out; return how many sent."""
        total = 0
        while True:
            tried, sent = self._send_batch()
            total += sent
            if not tried or not sent:
                return total

    def _send_batch(self) -> tuple[int, int]:
        self._hand_back_unfinished()
        claimed = claim_outbox(self.database, sender_id=self.sender_id, limit=self.batch_size,
                               lease=self.lease)
        self._unfinished = [mail.id for mail in claimed]
        started = time.monotonic()
        sent = 0
        for index, mail in enumerate(claimed):
            if self._loop.stopping or time.monotonic() - started > self.lease.total_seconds() / 2:
                # Hand the rest back now rather than send on a lease about to run out.
                release_outbox_claims(self.database, self._unfinished, self.sender_id)
                self._unfinished = []
                return index, sent
            # Raises when the outcome cannot be recorded: the claims stay in _unfinished.
            sent += self._send_one(mail)
            self._unfinished = [m.id for m in claimed[index + 1:]]
        return len(claimed), sent

    def _hand_back_unfinished(self) -> None:
        """Record the mail sent and give back the other claims of a batch cut short by an
        error (the database went away while it ran), now that it may answer again; raises
        while it does not."""
        if self._sent_unrecorded is not None:
            mail, note, sent_at = self._sent_unrecorded
            mark_outbox_sent(self.database, mail.id, self.sender_id, note=note, now=sent_at)
            self._sent_unrecorded = None
            log.warning("recorded as sent after an error message_id=%s", mail.message_id)
        if not self._unfinished:
            return
        released = release_outbox_claims(self.database, self._unfinished, self.sender_id)
        self._unfinished = []
        if released:
            log.warning("handed back %d mails whose sending was cut short by an error",
                        released)

    def _send_one(self, mail: ClaimedMail) -> int:
        with log_fields(outbox=mail.id):
            return self._send(mail)

    def _send(self, mail: ClaimedMail) -> int:
        try:
            result = self.transport.send(mail.mail_from, mail.rcpt_tos, mail.raw)
        except PermanentSendError as error:
            mark_failed(self.database, mail, self.sender_id, error=str(error))
            return 0
        except TemporarySendError as error:
            schedule_retry(self.database, mail, self.sender_id, error=str(error),
                           settings=self.settings)
            return 0
        except Exception as error:
            # A bug, not the relay: keep the mail and try again later, with the trace logged.
            log.exception("transport failed unexpectedly message_id=%s", mail.message_id)
            schedule_retry(self.database, mail, self.sender_id,
                           error=f"unexpected {type(error).__name__}: {error}",
                           settings=self.settings)
            return 0
        note, sent_at = result.describe_refused(), utc_now()
        try:
            recorded = mark_outbox_sent(self.database, mail.id, self.sender_id, note=note,
                                        now=sent_at)
        except Exception:
            self._sent_unrecorded = (mail, note, sent_at)  # recorded at the next round
            raise
        if not recorded:
            log.warning("mail sent after its claim was taken over; it may be sent twice "
                        "message_id=%s", mail.message_id)
        log.info("mail sent kind=%s case=%s message_id=%s attempt=%d", mail.kind,
                 mail.case_id, mail.message_id, mail.attempts)
        return 1

    # -- running in a thread ------------------------------------------------

    def start(self) -> None:
        """Resume mails a dead sender of this host left, then start the sending thread."""
        try:
            self.recover_abandoned()
        except Exception:
            log.exception("could not resume abandoned mails at start; the thread retries")
        self._loop.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the mail being sent finish and stop the thread."""
        self._loop.stop(timeout)

    def _send_round(self) -> int:
        """One turn of the thread: resume abandoned mails if that failed before, then send."""
        if not self._recovered:
            self.recover_abandoned()
        return self.send_due()
