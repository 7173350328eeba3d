"""SMTP and LMTP listener on aiosmtpd, answering 250 only after the message is durable.

What aiosmtpd does not do and this module adds:
- an idle timeout: aiosmtpd's `timeout` is a deadline from the last command, so a 50 MB DATA
  on a slow link would be cut off; here every received chunk restarts the timer;
- a cap on concurrent connections (421 past it);
- 451 instead of aiosmtpd's permanent 500 when anything of ours fails, so the sender retries;
- one reply per accepted recipient after LMTP DATA (RFC 2033);
- the exact size limit: aiosmtpd counts dot-stuffed wire bytes, we count the message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from intake.accept import IntakeService
from intake.addresses import RecipientPolicy
from intake.settings import SmtpSettings
from storage.messages import DeliveryEnvelope
from storage.models import MessageSource

log = logging.getLogger("chikanemail.intake.smtp")

# aiosmtpd logs every DATA line at DEBUG: message bodies must never reach a log.
logging.getLogger("mail.log").setLevel(logging.WARNING)

# RFC 5321 allows 1000 octets a line; real mail (and evidence) breaks that. A longer line
# would get aiosmtpd's permanent 500, losing the evidence, so allow up to 1 MiB a line.
LINE_LENGTH_LIMIT = 1024 * 1024
# aiosmtpd keeps a DATA as one bytearray a line and then joins them: about 4x the message.
MEMORY_PER_MESSAGE_BYTE = 4
# aiosmtpd's own limit counts dot-stuffing and is only a backstop above the exact check.
_WIRE_SLACK_DIVISOR = 16

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


class ConnectionTracker:
    """Counts open connections against the cap and remembers them for shutdown."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: set[_GuardedServer] = set()

    def admit(self, protocol: _GuardedServer) -> bool:
        """Admit a new connection unless the cap is reached."""
        if len(self.open) >= self.limit:
            return False
        self.open.add(protocol)
        return True

    def release(self, protocol: _GuardedServer) -> None:
        """Forget a closed connection."""
        self.open.discard(protocol)


class _GuardedServer(SMTP):
    """aiosmtpd's SMTP with a connection cap and an idle (not total) timeout."""

    line_length_limit = LINE_LENGTH_LIMIT

    def __init__(self, handler: Any, *, tracker: ConnectionTracker, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._tracker = tracker
        self._refused = False
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted:  # a first connection, not the STARTTLS upgrade of one
            if not self._tracker.admit(self):
                self._refused = True
                log.warning("connection refused: %d connections open",
                            len(self._tracker.open))
                transport.write((REPLY_TOO_MANY_CONNECTIONS + "\r\n").encode())  # type: ignore[attr-defined]
                transport.close()
                return
            self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._tracker.release(self)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        result: bool | None = super().eof_received()
        return result

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        # Bytes are flowing: the sender is alive, however long its DATA takes.
        self._reset_timeout()
        super().data_received(data)


class _GuardedLMTP(_GuardedServer, LMTP):
    """aiosmtpd's LMTP with the same guards."""


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

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the exact bytes and commit the row off the event loop, then answer."""
        server._reset_timeout()  # the DATA is in; give the store a full timeout
        raw = envelope.original_content or b""
        if len(raw) > self.settings.max_message_bytes:
            log.info("message refused: %d bytes, over the limit of %d peer=%s",
                     len(raw), self.settings.max_message_bytes, peer_text(session.peer))
            return self._reply_each_recipient(envelope, REPLY_TOO_BIG)
        delivery = DeliveryEnvelope(
            source=self.source,
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=peer_text(session.peer),
            helo=session.host_name,
            tls=session.ssl is not None,
        )
        # The store runs to its end even if the client goes away meanwhile; shutdown waits
        # for it. Without a 250 the client retries, and the retry is recognised by its hash.
        work = asyncio.ensure_future(
            asyncio.to_thread(self.service.accept_message, raw, delivery)
        )
        self.in_flight.add(work)
        work.add_done_callback(self.in_flight.discard)
        del raw
        try:
            await asyncio.shield(work)
        except Exception as error:
            log.error("message not stored, answered 451: %s: %s peer=%s",
                      type(error).__name__, error, peer_text(session.peer))
            return self._reply_each_recipient(envelope, REPLY_TEMPORARY_FAILURE)
        return self._reply_each_recipient(envelope, REPLY_STORED)

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected error becomes a temporary failure, never aiosmtpd's permanent 500."""
        log.error("SMTP session error, answered 451: %s", type(error).__name__)
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


def _warn_if_memory_may_run_out(settings: SmtpSettings) -> None:
    """Warn when every allowed connection sending a maximal mail at once would exhaust memory."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    worst = settings.max_connections * MEMORY_PER_MESSAGE_BYTE * settings.max_message_bytes
    if worst > physical:
        log.warning(
            "smtp.max_connections x 4 x smtp.max_message_bytes = %d MiB exceeds this machine's "
            "%d MiB of memory; lower one of them if many large mails may arrive at once",
            worst // 2**20, physical // 2**20,
        )


def make_tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """The server TLS context from the configured certificate and key, if any."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


@dataclass
class SmtpListener:
    """A running SMTP/LMTP listener."""

    server: asyncio.AbstractServer
    handler: IntakeHandler
    tracker: ConnectionTracker

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound (useful with port 0)."""
        sockname = self.server.sockets[0].getsockname()  # type: ignore[attr-defined]
        return str(sockname[0]), int(sockname[1])

    async def close(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting, let started stores finish, then close the remaining sessions."""
        self.server.close()
        self.handler.stopping = True
        finished = await self.handler.wait_for_in_flight(grace_seconds)
        if not finished:
            log.warning("shutdown: some messages were still being stored; senders will retry")
        for protocol in list(self.tracker.open):
            transport = protocol.transport
            if transport is not None:
                # Tell the client why (RFC 5321 3.8); it will retry what it had not finished.
                transport.write((REPLY_SHUTTING_DOWN + "\r\n").encode())  # type: ignore[attr-defined]
                transport.close()
        await self.server.wait_closed()


async def start_smtp_listener(
    settings: SmtpSettings,
    service: IntakeService,
    recipients: RecipientPolicy,
    *,
    reject_foreign_senders: bool,
) -> SmtpListener:
    """Bind the listener described by the [smtp] settings and start serving."""
    handler = IntakeHandler(
        service, recipients, settings, reject_foreign_senders=reject_foreign_senders
    )
    tracker = ConnectionTracker(settings.max_connections)
    tls_context = make_tls_context(settings)
    # An empty server_hostname means this machine's name, looked up once, without DNS;
    # aiosmtpd would otherwise call getfqdn() (a blocking DNS query) for every connection.
    hostname = settings.server_hostname or socket.gethostname()
    protocol_class = _GuardedLMTP if settings.lmtp else _GuardedServer
    wire_limit = settings.max_message_bytes + settings.max_message_bytes // _WIRE_SLACK_DIVISOR

    def make_protocol() -> _GuardedServer:
        return protocol_class(
            handler,
            tracker=tracker,
            data_size_limit=wire_limit,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="Chikanemail evidence intake",
            tls_context=tls_context,
            require_starttls=settings.require_starttls,
            timeout=settings.timeout_seconds,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )

    _warn_if_memory_may_run_out(settings)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            make_protocol, host=settings.host, port=settings.port, reuse_address=True
        )
    except OSError as error:
        raise OSError(error.errno, f"cannot listen on smtp.host {settings.host!r} smtp.port "
                      f"{settings.port}: {error.strerror}") from error
    listener = SmtpListener(server, handler, tracker)
    host, port = listener.address
    log.info("%s listening on %s:%d max_message_bytes=%d",
             "LMTP" if settings.lmtp else "SMTP", host, port, settings.max_message_bytes)
    return listener
