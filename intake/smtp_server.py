"""SMTP and LMTP listener on aiosmtpd, answering 250 only after the message is durable.

What aiosmtpd does not do and this module adds:
- DATA streamed to a spool file while it arrives: aiosmtpd keeps a DATA in memory as one
  bytearray a line and joins them (about 4x the message); here a connection holds a few MiB
  whatever the message size, and lines may be of any length;
- an idle timeout: aiosmtpd's `timeout` is a deadline from the last command, so a 50 MB DATA
  on a slow link would be cut off; here every received chunk restarts the timer;
- a cap on concurrent connections (421 past it);
- 451 instead of aiosmtpd's permanent 500 when anything of ours fails, so the sender retries;
- one reply per accepted recipient after LMTP DATA (RFC 2033);
- the exact size limit: aiosmtpd counts dot-stuffed wire bytes, we count the message.
- with require_starttls, NOOP refused before TLS as well (only EHLO, STARTTLS, QUIT pass).
"""

from __future__ import annotations

import asyncio
import errno
import grp
import logging
import os
import socket
import ssl
import stat
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from intake.accept import HEAD_BYTES, AcceptedMessage, IntakeService, MessageHead
from intake.addresses import RecipientPolicy
from intake.settings import SmtpSettings
from storage.blobstore import BlobWriter
from storage.messages import DeliveryEnvelope
from storage.models import MessageSource

log = logging.getLogger("chikanemail.intake.smtp")

# aiosmtpd logs every command line (addresses too) at INFO and DEBUG: keep its log quiet.
logging.getLogger("mail.log").setLevel(logging.WARNING)

T = TypeVar("T")

# The StreamReader's limit: the longest command line, and the size of the pieces DATA is
# read in (the reader buffers up to twice this before it stops reading the socket).
STREAM_LIMIT = 256 * 1024
# DATA is gathered in memory and handed to the spool file (in a thread) in writes this big.
SPOOL_WRITE_BYTES = 1024 * 1024
# Memory one connection may hold while it receives DATA, whatever the message size: the
# reader's buffer (up to twice its limit, plus a socket read), a piece and its unstuffed
# copy, the gathered write and the header block.
MEMORY_PER_CONNECTION = 3 * STREAM_LIMIT + 2 * SPOOL_WRITE_BYTES + HEAD_BYTES
# The only end of DATA (RFC 5321 4.1.1.4) is a line that is exactly "." CRLF, after a CRLF
# (or first). A dot next to a bare LF or CR is content: no sender can smuggle a second
# message into one.
END_OF_DATA = b"\r\n.\r\n"
_DOT_CRLF = b".\r\n"
# A line ending in "." CRLF shorter than this is not worth the byte-wise look at the next.
_SHORT_LINE = 8
# Reading DATA whose lines end in "." gives short pieces without waiting: let other sessions
# run after this many.
_YIELD_EVERY_PIECES = 4096

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


def _end_line_begun(tail: bytes) -> int:
    """How many bytes of END_OF_DATA the tail ends with (5: all of it)."""
    for length in range(min(len(tail), len(END_OF_DATA)), 0, -1):
        if tail.endswith(END_OF_DATA[:length]):
            return length
    return 0


class DataReader:
    """Reads the dot-stuffed bytes of one DATA off a stream, up to its end-of-data line.

    Pieces are about `piece_bytes` long whatever the lines are (shorter at the end), and
    never reach past the end of data: commands pipelined after it stay in the stream.

    Until it is sure that no end-of-data line can have begun in what it has read (DATA
    begins a line, as if after a CRLF), it reads up to each "." CRLF in turn: the end is the
    first one right after a CRLF. A byte or three more after such a line (read one by one)
    usually make it sure; from then on it reads up to CRLF "." CRLF, which dot-stuffing keeps
    out of everything but the end. Either way it needs one read per about STREAM_LIMIT
    bytes, not one a line as aiosmtpd does; only lines shorter than _SHORT_LINE that end in
    "." cost a read each.
    """

    def __init__(self, reader: asyncio.StreamReader, piece_bytes: int = STREAM_LIMIT) -> None:
        self._reader = reader
        self._piece_bytes = piece_bytes
        self._tail = b"\r\n"  # the last bytes read; DATA begins a line, as if after a CRLF
        self._sure = False
        self.ended = False

    async def read(self) -> bytes | bytearray:
        """The next piece of DATA as sent (still dot-stuffed), without the end-of-data line."""
        try:
            piece = await self._read_some()
            if self.ended or len(piece) >= self._piece_bytes:
                return piece
            gathered = bytearray(piece)
            count = 0
            while not self.ended and len(gathered) < self._piece_bytes:
                gathered += await self._read_some()
                count += 1
                if count % _YIELD_EVERY_PIECES == 0:
                    await asyncio.sleep(0)  # many short lines must not hold the loop long
            return gathered
        except asyncio.IncompleteReadError as error:
            raise ConnectionResetError("connection closed in the middle of DATA") from error

    def _read_some(self) -> Coroutine[Any, Any, bytes]:
        return self._read_to_end_line() if self._sure else self._read_to_dot_crlf()

    async def _read_to_end_line(self) -> bytes:
        try:
            piece = await self._reader.readuntil(END_OF_DATA)
        except asyncio.LimitOverrunError as overrun:
            # None within the limit. The reader keeps back the last bytes it has, those that
            # could begin one (or the one it found too far on): none begins in this piece.
            return await self._reader.read(overrun.consumed)
        self.ended = True
        return piece[: -len(_DOT_CRLF)]  # its CRLF ends the message's last line

    async def _read_to_dot_crlf(self) -> bytes:
        try:
            piece = await self._reader.readuntil(_DOT_CRLF)
        except asyncio.LimitOverrunError as overrun:
            # As above: no "." CRLF begins in this piece, so no end line can end in it.
            piece = await self._reader.read(overrun.consumed)
        else:
            before_dot = piece[-5:-3] if len(piece) >= 5 else (self._tail + piece)[-5:-3]
            if before_dot == b"\r\n":
                self.ended = True
                return piece[: -len(_DOT_CRLF)]
            if len(piece) < _SHORT_LINE:
                # Lines this short: stay with "." CRLF, which costs a read a line, no more.
                self._tail = (self._tail + piece)[-4:]
                return piece
        tail = (self._tail + piece[-4:])[-4:]
        extra = bytearray()
        begun = _end_line_begun(tail)
        while 2 <= begun < len(END_OF_DATA):  # after CRLF, CRLF "." or CRLF "." CR: one more
            byte = await self._reader.readexactly(1)
            extra += byte
            tail = tail[-4:] + byte
            begun = _end_line_begun(tail)
        whole = piece + extra
        if begun == len(END_OF_DATA):
            self.ended = True
            return whole[: -len(_DOT_CRLF)]
        self._tail = tail[-4:]
        self._sure = begun == 0
        return whole


class DotUnstuffer:
    """Removes the dot a sender put before every line starting with a dot (RFC 5321 4.5.2),
    from DATA that comes in pieces split anywhere."""

    def __init__(self) -> None:
        # The start of DATA is the start of a line: as if it came after a CRLF, not kept.
        self._held = b"\r\n"
        self._unsent_prefix = 2

    def feed(self, wire: bytes | bytearray) -> bytes:
        """The message bytes of the next piece (a CR or CRLF at its end waits for the next)."""
        data = self._held + wire
        if data.endswith(b"\r\n"):
            keep = 2
        elif data.endswith(b"\r"):
            keep = 1
        else:
            keep = 0
        self._held = data[len(data) - keep:]
        # Every CRLF on the wire ends a line: a dot right after one is the stuffed dot.
        message = data[: len(data) - keep].replace(b"\r\n.", b"\r\n")
        if self._unsent_prefix and message:
            message = message[self._unsent_prefix:]
            self._unsent_prefix = 0
        return message

    def flush(self) -> bytes:
        """The bytes held back, once the end of data has been read."""
        held, self._held = self._held, b""
        if self._unsent_prefix:  # nothing came at all
            held = held[self._unsent_prefix:]
            self._unsent_prefix = 0
        return held


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


class _Spool:
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


class _GuardedServer(SMTP):
    """aiosmtpd's SMTP with a connection cap, an idle (not total) timeout, and DATA streamed
    to disk."""

    line_length_limit = STREAM_LIMIT

    def __init__(self, handler: IntakeHandler, *, tracker: ConnectionTracker,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._intake = handler
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

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: str) -> None:
        """NOOP, refused before STARTTLS when TLS is required.

        aiosmtpd refuses every command but NOOP, EHLO, STARTTLS and QUIT before TLS (RFC 3207
        section 4 allows NOOP); issue 9 asks for nothing but EHLO, STARTTLS and QUIT. A NOOP
        does nothing, but answering it lets an unencrypted session idle on.
        """
        if self.require_starttls and not self._tls_protocol:
            await self.push("530 5.7.0 Must issue a STARTTLS command first")
            return
        await super().smtp_NOOP(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        """DATA into a spool file as it arrives; then 250 once stored, or 552, or 451.

        The checks and replies before 354 are aiosmtpd's, and so is the state afterwards.
        """
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.session is not None and self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        spool = await self._intake.open_spool(self.session)
        if spool is None:  # refused before 354: the sender keeps its data and retries
            await self.push(REPLY_TEMPORARY_FAILURE)
            return
        try:
            await self.push(REPLY_START_DATA)
            await self._receive(spool)
            self._reset_timeout()  # the DATA is in; give the store a full timeout
            reply = await self._intake.finish_data(self.session, self.envelope, spool)
        except (asyncio.CancelledError, ConnectionResetError):
            log.info("connection lost during DATA peer=%s", peer_text(self.session.peer))
            raise
        except Exception:
            # A fault of ours mid-DATA: the rest of the message must never be read as
            # commands, so end the session (the sender retries) before aiosmtpd's 451.
            log.error("DATA failed; closing the connection peer=%s", peer_text(self.session.peer))
            if self.transport is not None:
                self.transport.close()
            raise
        finally:
            spool.discard()  # a spool the store took is the store's
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd: not annotated
        await self.push(reply)

    async def _receive(self, spool: _Spool) -> None:
        """Read the DATA up to its end-of-data line into the spool, dot-unstuffed."""
        data = DataReader(self._reader)
        unstuffer = DotUnstuffer()
        while not data.ended:
            await spool.add(unstuffer.feed(await data.read()))
        await spool.add(unstuffer.flush())


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

    async def open_spool(self, session: Session) -> _Spool | None:
        """A spool file for the coming DATA; None (answer 451) if none can be opened."""
        opening = self.start_tracked(self.service.store.writer)
        try:
            writer = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._abort_unused_writer)
            raise
        except Exception as error:
            log.error("DATA refused, answered 451: no spool file: %s: %s peer=%s",
                      type(error).__name__, error, peer_text(session.peer))
            return None
        return _Spool(writer, self.settings.max_message_bytes, self)

    async def finish_data(self, session: Session, envelope: Envelope, spool: _Spool) -> str:
        """After the end of data: store the spool off the event loop and give the reply."""
        if spool.too_big:
            log.info("message refused: %d bytes, over the limit of %d peer=%s",
                     spool.size, self.settings.max_message_bytes, peer_text(session.peer))
            return self._reply_each_recipient(envelope, REPLY_TOO_BIG)
        if spool.failure is not None:
            log.error("message not stored, answered 451: %s: %s peer=%s",
                      type(spool.failure).__name__, spool.failure, peer_text(session.peer))
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
            log.error("message not stored, answered 451: %s: %s peer=%s",
                      type(error).__name__, error, peer_text(session.peer))
            return self._reply_each_recipient(envelope, REPLY_TEMPORARY_FAILURE)
        return self._reply_each_recipient(envelope, REPLY_STORED)

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
    """Warn when every allowed connection receiving DATA at once would exhaust memory."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    worst = settings.max_connections * MEMORY_PER_CONNECTION
    if worst > physical:
        log.warning(
            "smtp.max_connections x %d MiB a connection = %d MiB exceeds this machine's "
            "%d MiB of memory; lower smtp.max_connections",
            MEMORY_PER_CONNECTION // 2**20, worst // 2**20, physical // 2**20,
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
    # On a unix socket: its path and the (device, inode) of the socket file we made.
    socket_path: str = ""
    socket_identity: tuple[int, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound (useful with port 0); on a unix socket its path
        and 0."""
        if self.socket_path:
            return self.socket_path, 0
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
            # A session closing already (QUIT) is left alone: writing to a TLS transport
            # closed twice raises AttributeError, which would end the shutdown here.
            if transport is not None and not transport.is_closing():
                # Tell the client why (RFC 5321 3.8); it will retry what it had not finished.
                transport.write((REPLY_SHUTTING_DOWN + "\r\n").encode())  # type: ignore[attr-defined]
                transport.close()
        await self.server.wait_closed()
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        """Remove our unix socket file, unless another process has replaced it meanwhile."""
        if not self.socket_path:
            return
        try:
            found = os.stat(self.socket_path)
            if (found.st_dev, found.st_ino) == self.socket_identity:
                os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


def _bind_unix_socket(settings: SmtpSettings) -> socket.socket:
    """A unix socket bound at smtp.socket with its mode and group set, not yet listening.

    A socket file left by a crashed run (nobody accepts on it) is replaced; one a live
    listener accepts on, or a file that is no socket, is an error.
    """
    path = settings.socket
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(existing.st_mode):
            raise OSError(errno.EEXIST, f"smtp.socket {path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(path)  # stale: left by a run that did not stop cleanly
            else:
                raise OSError(errno.EADDRINUSE,
                              f"smtp.socket {path}: another process is listening on it")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Before listen() every connect is refused: nobody gets in before the mode is set.
        os.chmod(path, int(settings.socket_mode, 8))
        if settings.socket_group:
            os.chown(path, -1, grp.getgrnam(settings.socket_group).gr_gid)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on smtp.socket {path}: "
                      f"{error.strerror}") from error
    return sock


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
    # aiosmtpd checks a declared SIZE in MAIL FROM before our handler does: keep its limit
    # above ours so that handle_MAIL answers, with its enhanced status code. (It no longer
    # reads DATA: smtp_DATA above does, and counts the message exactly.)
    aiosmtpd_size_limit = settings.max_message_bytes + settings.max_message_bytes // 16

    def make_protocol() -> _GuardedServer:
        return protocol_class(
            handler,
            tracker=tracker,
            data_size_limit=aiosmtpd_size_limit,
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
    if settings.socket:
        sock = _bind_unix_socket(settings)
        found = os.stat(settings.socket)
        server = await loop.create_unix_server(make_protocol, sock=sock)
        listener = SmtpListener(server, handler, tracker, settings.socket,
                                (found.st_dev, found.st_ino))
        log.info("%s listening on %s max_message_bytes=%d", "LMTP" if settings.lmtp else "SMTP",
                 settings.socket, settings.max_message_bytes)
        return listener
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
