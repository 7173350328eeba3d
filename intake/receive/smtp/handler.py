"""The aiosmtpd handler of the intake: what each command is answered, and the spool that
makes a message durable before its 250.

What it adds to aiosmtpd:
- DATA gathered into a spool file (its writes done in a worker thread) as it arrives;
- 451 instead of aiosmtpd's permanent 500 when anything of ours fails, so the sender retries;
- one reply per accepted recipient after LMTP DATA (RFC 2033);
- the exact size limit: aiosmtpd counts dot-stuffed wire bytes, we count the message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from intake.receive.accept import AcceptedMessage, IntakeService, MessageHead
from intake.receive.addresses import RecipientPolicy
from intake.receive.smtp.answers import SmtpAnswers, refusal_reason, session_error_reason
from intake.receive.smtp.throttled_log import ThrottledLog
from intake.service.settings import SmtpSettings
from storage.blobstore import BlobWriter
from storage.messages import DeliveryEnvelope
from storage.models import MessageSource

log = logging.getLogger("chikanemail.intake.smtp")
# How often a 451 of one kind is logged (with a count of those left out).
ERROR_LOG_INTERVAL_SECONDS = 60.0

T = TypeVar("T")

# DATA is gathered in memory and handed to the spool file (in a thread) in writes this big.
SPOOL_WRITE_BYTES = 1024 * 1024

REPLY_START_DATA = "354 End data with <CR><LF>.<CR><LF>"
REPLY_STORED = "250 2.0.0 Message stored as evidence"
REPLY_TEMPORARY_FAILURE = "451 4.3.0 Temporary failure storing the message; try again later"
REPLY_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
REPLY_UNKNOWN_RECIPIENT = "550 5.1.1 Recipient address rejected: not an intake address"
REPLY_FOREIGN_SENDER = "550 5.7.1 Sender domain not allowed to use this intake"
REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections; try again later"
REPLY_SHUTTING_DOWN = "421 4.3.2 Service shutting down; try again later"


def peer_text(peer: Any) -> str | None:
    """The peer address of a session as text: `host:port`, `[v6]:port`, or a socket path."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer) if peer else None


class Spool:
    """The DATA of one transaction on its way to disk.

    Counts the message bytes, keeps the head for the header summary, and gathers the rest
    into SPOOL_WRITE_BYTES writes done in a worker thread. Past the size limit, or after a
    failed write, the spool file is thrown away and the rest of the DATA only counted.
    """

    def __init__(self, writer: BlobWriter, max_bytes: int, handler: IntakeHandler) -> None:
        self._writer: BlobWriter | None = writer
        self._handler = handler
        self._pending = bytearray()
        self.max_bytes = max_bytes
        self.size = 0
        self.head = MessageHead()
        self.failure: Exception | None = None

    @property
    def too_big(self) -> bool:
        """Whether the message is over the size limit."""
        return self.size > self.max_bytes

    async def add(self, data: bytes) -> None:
        """Take the next message bytes; writes them out once enough are gathered."""
        self.size += len(data)
        if self._writer is None:
            return
        if self.too_big:
            self.discard()
            return
        self.head.add(data)
        self._pending += data
        if len(self._pending) < SPOOL_WRITE_BYTES:
            return
        chunk, self._pending = self._pending, bytearray()
        try:
            await asyncio.to_thread(self._writer.write, chunk)
        except Exception as error:  # disk full, I/O error: drain the DATA, then answer 451
            self.failure = error
            self.discard()

    def hand_over(self) -> tuple[BlobWriter, bytearray]:
        """The spool file and the bytes not yet written, for the store to finish."""
        writer, self._writer = self._writer, None
        assert writer is not None, "a refused or failed spool is never stored"
        rest, self._pending = self._pending, bytearray()
        return writer, rest

    def discard(self) -> None:
        """Throw the spool file away (unless it was handed over) and free the memory."""
        writer, self._writer = self._writer, None
        self._pending = bytearray()
        if writer is not None:
            # In a thread: abort waits for a write still in progress there.
            self._handler.start_tracked(writer.abort)


class IntakeHandler:
    """aiosmtpd handler: recipient and sender checks, and the durable store before 250."""

    def __init__(
        self,
        service: IntakeService,
        recipients: RecipientPolicy,
        settings: SmtpSettings,
        *,
        reject_foreign_senders: bool,
    ) -> None:
        self.service = service
        self.recipients = recipients
        self.settings = settings
        self.reject_foreign_senders = reject_foreign_senders
        self.source = MessageSource.LMTP if settings.lmtp else MessageSource.SMTP
        self.in_flight: set[asyncio.Future[Any]] = set()
        self.stopping = False
        # The daemon sets this: 451s and stores counted for `chikanemail health`.
        self.answers: SmtpAnswers | None = None
        # A 451 of one kind is logged once a minute: every retry of every sender fails the
        # same way while the disk is full or the database is down.
        self._errors = ThrottledLog(log, logging.ERROR, ERROR_LOG_INTERVAL_SECONDS)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise our exact size limit and never offer AUTH (we have no users)."""
        session.host_name = hostname
        adjusted = []
        for line in responses:
            if line[4:].upper().startswith("SIZE "):
                line = f"{line[:4]}SIZE {self.settings.max_message_bytes}"
            if line[4:].upper().startswith("AUTH"):
                continue
            adjusted.append(line)
        return adjusted

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        """Refuse a declared SIZE over the limit and (when configured) foreign senders."""
        if self.stopping:
            return REPLY_SHUTTING_DOWN
        for option in mail_options:
            name, _, value = option.partition("=")
            if name.upper() == "SIZE" and value.isdigit() and (
                int(value) > self.settings.max_message_bytes
            ):
                return REPLY_TOO_BIG
        if self.reject_foreign_senders and not self.service.senders.admits(address):
            log.info("sender refused: domain not allowed peer=%s", peer_text(session.peer))
            return REPLY_FOREIGN_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept only the configured intake addresses."""
        if not self.recipients.accepts(address):
            log.info("recipient refused: not an intake address peer=%s", peer_text(session.peer))
            return REPLY_UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def open_spool(self, session: Session) -> Spool | None:
        """A spool file for the coming DATA; None (answer 451) if none can be opened."""
        opening = self.start_tracked(self.service.store.writer)
        try:
            writer = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._abort_unused_writer)
            raise
        except Exception as error:
            self._errors.say(f"no spool {type(error).__name__}",
                             "DATA refused, answered 451: no spool file: %s: %s peer=%s",
                             type(error).__name__, error, peer_text(session.peer))
            self._count_451(error)
            return None
        return Spool(writer, self.settings.max_message_bytes, self)

    async def finish_data(self, session: Session, envelope: Envelope, spool: Spool) -> str:
        """After the end of data: store the spool off the event loop and give the reply."""
        if spool.too_big:
            log.info("message refused: %d bytes, over the limit of %d peer=%s",
                     spool.size, self.settings.max_message_bytes, peer_text(session.peer))
            return self._reply_each_recipient(envelope, REPLY_TOO_BIG)
        if spool.failure is not None:
            self._errors.say(f"not stored {type(spool.failure).__name__}",
                             "message not stored, answered 451: %s: %s peer=%s",
                             type(spool.failure).__name__, spool.failure,
                             peer_text(session.peer))
            self._count_451(spool.failure)
            return self._reply_each_recipient(envelope, REPLY_TEMPORARY_FAILURE)
        delivery = DeliveryEnvelope(
            source=self.source,
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=peer_text(session.peer),
            helo=session.host_name,
            tls=session.ssl is not None,
        )
        writer, rest = spool.hand_over()
        # The store runs to its end even if the client goes away meanwhile; shutdown waits
        # for it. Without a 250 the client retries, and the retry is recognised by its hash.
        work = self.start_tracked(self._store_spooled, writer, rest, bytes(spool.head), delivery)
        del rest
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(self._log_unanswered_failure)
            raise
        except Exception as error:
            self._errors.say(f"not stored {type(error).__name__}",
                             "message not stored, answered 451: %s: %s peer=%s",
                             type(error).__name__, error, peer_text(session.peer))
            self._count_451(error)
            return self._reply_each_recipient(envelope, REPLY_TEMPORARY_FAILURE)
        if self.answers is not None and self.answers.stored():
            self.start_tracked(self.answers.publish)
        return self._reply_each_recipient(envelope, REPLY_STORED)

    def _count_451(self, error: BaseException) -> None:
        """Count a 451 by its reason and publish the counts (in a thread) for `health`."""
        if self.answers is not None:
            self.answers.refused(refusal_reason(error))
            self.start_tracked(self.answers.publish)

    def _store_spooled(self, writer: BlobWriter, rest: bytearray, head: bytes,
                       delivery: DeliveryEnvelope) -> AcceptedMessage:
        """Write the last bytes, then make the spool a blob and its row (in a thread)."""
        writer.write(rest)  # a failed write throws the spool file away itself
        return self.service.accept_spooled(writer, head, delivery)

    def start_tracked(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run blocking work in a thread; shutdown waits for it even if nobody awaits it."""
        work = asyncio.ensure_future(asyncio.to_thread(function, *args))
        self.in_flight.add(work)
        work.add_done_callback(self._forget)
        return work

    def _forget(self, work: asyncio.Future[Any]) -> None:
        self.in_flight.discard(work)
        if not work.cancelled():
            work.exception()  # seen: whoever awaited it has reported it

    def _abort_unused_writer(self, opening: asyncio.Future[BlobWriter]) -> None:
        """A spool file opened for a session that went away meanwhile: remove it."""
        if not opening.cancelled() and opening.exception() is None:
            self.start_tracked(opening.result().abort)

    @staticmethod
    def _log_unanswered_failure(work: asyncio.Future[Any]) -> None:
        """A store that failed after its client went away: nobody got a 250, say so here."""
        if not work.cancelled() and (error := work.exception()) is not None:
            log.error("message not stored (the client had gone; it will retry): %s: %s",
                      type(error).__name__, error)

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected error becomes a temporary failure, never aiosmtpd's permanent 500."""
        log.error("SMTP session error, answered 451: %s", type(error).__name__)
        if self.answers is not None and (reason := session_error_reason(error)) is not None:
            self.answers.refused(reason)
            self.start_tracked(self.answers.publish)
        return REPLY_TEMPORARY_FAILURE

    def _reply_each_recipient(self, envelope: Envelope, reply: str) -> str:
        """SMTP answers once; LMTP once per accepted recipient, in RCPT order (RFC 2033)."""
        if self.source != MessageSource.LMTP:
            return reply
        return "\r\n".join(reply for _ in envelope.rcpt_tos)

    async def wait_for_in_flight(self, timeout: float) -> bool:
        """Wait until every started store has finished; False if some still run at the deadline."""
        if not self.in_flight:
            return True
        _done, pending = await asyncio.wait(set(self.in_flight), timeout=timeout)
        return not pending


