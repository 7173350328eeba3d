"""SMTP and LMTP listener on aiosmtpd: the guarded session protocol and the socket it
serves on, answering 250 only after the message is durable.

What aiosmtpd does not do and the intake adds:
- DATA streamed to a spool file while it arrives: aiosmtpd keeps a DATA in memory as one
  bytearray a line and joins them (about 4x the message); here a connection holds a few MiB
  whatever the message size, and lines may be of any length;
- an idle timeout: aiosmtpd's `timeout` is a deadline from the last command, so a 50 MB DATA
  on a slow link would be cut off; here every received chunk restarts the timer;
- a cap on concurrent connections (421 past it), and a smaller one per client, so that one
  address flooding the listener cannot lock the others out;
- a minimum DATA rate and a whole-DATA deadline: since every chunk restarts the idle timer,
  a sender trickling a byte a second (slowloris) would otherwise hold its slot for ever;
- a session deadline: a session must hand in a mail within `session_deadline_seconds` of
  its start or of its last mail, so commands trickled a byte at a time, or a NOOP before
  each idle timeout, cannot hold a slot for ever either;
- 451 instead of aiosmtpd's permanent 500 when anything of ours fails, so the sender retries;
- one reply per accepted recipient after LMTP DATA (RFC 2033);
- the exact size limit: aiosmtpd counts dot-stuffed wire bytes, we count the message.
- with require_starttls, NOOP refused before TLS as well (only EHLO, STARTTLS, QUIT pass).

The idle timeout, the NOOP refusal and the DATA command are here; the connection caps and
the DATA pace they apply are in intake.receive.smtp.flood_guard, the DATA stream is read by
intake.receive.smtp.data, and the handler with its spool, store and replies is
intake.receive.smtp.handler.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, syntax

from intake.receive.accept import HEAD_BYTES, IntakeService
from intake.receive.addresses import RecipientPolicy
from intake.receive.smtp.data import STREAM_LIMIT, DataReader, DotUnstuffer
from intake.receive.smtp.flood_guard import ConnectionTracker, DataPace, DataWindow, client_of
from intake.receive.smtp.handler import (
    REPLY_SHUTTING_DOWN,
    REPLY_START_DATA,
    REPLY_TEMPORARY_FAILURE,
    SPOOL_WRITE_BYTES,
    IntakeHandler,
    Spool,
    peer_text,
)
from intake.service.settings import SmtpSettings

log = logging.getLogger("chikanemail.intake.smtp")

# aiosmtpd logs every command line (addresses too) at INFO and DEBUG: keep its log quiet.
logging.getLogger("mail.log").setLevel(logging.WARNING)

# Memory one connection may hold while it receives DATA, whatever the message size: the
# reader's buffer (up to twice its limit, plus a socket read), a piece and its unstuffed
# copy, the gathered write and the header block.
MEMORY_PER_CONNECTION = 3 * STREAM_LIMIT + 2 * SPOOL_WRITE_BYTES + HEAD_BYTES

REPLY_DATA_TOO_SLOW = "421 4.4.2 DATA too slow; closing the connection"
REPLY_DATA_TOO_LONG = "421 4.4.2 DATA took too long; closing the connection"
REPLY_SESSION_TOO_LONG = "421 4.4.2 No mail handed in for too long; closing the connection"

# Connections the kernel holds for us before we accept them (asyncio's default is 100). With a
# full queue Linux drops a new client's SYN, and the client tries again only after a second:
# during a flood from one address, everyone else would wait. The kernel caps it at somaxconn.
LISTEN_BACKLOG = 1024













def _refuse(transport: asyncio.BaseTransport, reply: str) -> None:
    transport.write((reply + "\r\n").encode())  # type: ignore[attr-defined]
    transport.close()


class _Door(asyncio.Protocol):
    """Meets each accepted connection: refuses it at once when its client (or the listener)
    is full, or hands it to a new session.

    A flood makes thousands of connections a second; a refusal here costs no aiosmtpd
    session (building one takes about 0.2 ms), so the loop stays free for everyone else.
    """

    def __init__(self, tracker: ConnectionTracker[_GuardedServer], exempt: bool,
                 make_session: Callable[[], _GuardedServer]) -> None:
        self._tracker = tracker
        self._exempt = exempt
        self._make_session = make_session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = None if self._exempt else client_of(transport.get_extra_info("peername"))
        refusal = self._tracker.refusal(client)
        if refusal is not None:
            _refuse(transport, refusal)
            return
        session = self._make_session()
        transport.set_protocol(session)
        session.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """What a refused client sends after all is dropped."""


class _GuardedServer(SMTP):
    """aiosmtpd's SMTP with a connection cap, an idle (not total) timeout, and DATA streamed
    to disk."""

    line_length_limit = STREAM_LIMIT

    def __init__(self, handler: IntakeHandler, *, tracker: ConnectionTracker[_GuardedServer],
                 pace: DataPace | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._intake = handler
        self._tracker = tracker
        self._pace = pace  # None: an exempt listener, every chunk restarts the idle timer
        self._window: DataWindow | None = None  # while a paced DATA arrives
        self._deadline: asyncio.TimerHandle | None = None
        self._session_deadline: asyncio.TimerHandle | None = None
        self._in_data = False  # from the 354 until the reply to the DATA is sent
        self._client: str | None = None
        self._refused = False
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted:  # a first connection, not the STARTTLS upgrade of one
            if self._pace is not None:  # exempt listeners have no per-client limit
                self._client = client_of(transport.get_extra_info("peername"))
            refusal = self._tracker.admit(self, self._client)
            if refusal is not None:
                self._refused = True
                _refuse(transport, refusal)
                return
            self._admitted = True
            self._restart_session_deadline()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._tracker.release(self, self._client)
        self._end_data_pace()
        if self._session_deadline is not None:
            self._session_deadline.cancel()
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        result: bool | None = super().eof_received()
        return result

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._window is not None:
            # A paced DATA: the timer judges the bytes of each window, not each chunk.
            self._window.received += len(data)
        else:
            # Bytes are flowing: the sender is alive, however long its DATA takes.
            self._reset_timeout()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        window = self._window
        if window is None:
            super()._timeout_cb()  # type: ignore[no-untyped-call]
            return
        # A transport not reading is our doing (the spool is behind): not the sender's fault.
        paused = self.transport is not None and not self.transport.is_reading()  # type: ignore[attr-defined]
        if window.received >= window.required or paused:
            window.received = 0  # fast enough: judge the next window
            self._reset_timeout()
            return
        self._cut_slow_data(REPLY_DATA_TOO_SLOW, "DATA cut: slower than "
                            "smtp.min_data_bytes_per_second")

    def _start_data_pace(self) -> None:
        """From the 354 on, judge the DATA's rate and start its deadline."""
        if self._pace is None:
            return
        self._window = DataWindow(int(self._pace.min_bytes_per_second
                                       * self._timeout_duration))
        self._reset_timeout()
        if self._pace.deadline_seconds:
            self._deadline = self.loop.call_later(
                self._pace.deadline_seconds, self._cut_slow_data, REPLY_DATA_TOO_LONG,
                "DATA cut: longer than smtp.data_deadline_seconds")

    def _restart_session_deadline(self) -> None:
        """Give the session `session_deadline_seconds` from now to hand in a mail."""
        if self._session_deadline is not None:
            self._session_deadline.cancel()
            self._session_deadline = None
        if self._pace is not None and self._pace.session_deadline_seconds:
            self._session_deadline = asyncio.get_running_loop().call_later(
                self._pace.session_deadline_seconds, self._session_deadline_passed)

    def _session_deadline_passed(self) -> None:
        """No mail handed in within the session deadline: end the session (421), unless a
        DATA is under way, which has its own rate and deadline."""
        self._session_deadline = None
        if self._in_data:
            return  # the end of the DATA starts the deadline again
        self._cut_slow_data(REPLY_SESSION_TOO_LONG, "session cut: no mail within "
                            "smtp.session_deadline_seconds")

    def _end_data_pace(self) -> None:
        self._window = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _cut_slow_data(self, reply: str, why: str) -> None:
        """End a session whose DATA is too slow; the sender may retry (421)."""
        self._end_data_pace()
        self._tracker.flood_log.refused(self._client or "(local)", why)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write((reply + "\r\n").encode())  # type: ignore[attr-defined]
            transport.close()

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
        self._in_data = True
        try:
            await self.push(REPLY_START_DATA)
            self._start_data_pace()
            await self._receive(spool)
            self._end_data_pace()
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
            self._in_data = False
            self._end_data_pace()
            spool.discard()  # a spool the store took is the store's
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd: not annotated
        self._restart_session_deadline()  # a mail handed in, whatever the answer
        await self.push(reply)

    async def _receive(self, spool: Spool) -> None:
        """Read the DATA up to its end-of-data line into the spool, dot-unstuffed."""
        data = DataReader(self._reader)
        unstuffer = DotUnstuffer()
        while not data.ended:
            await spool.add(unstuffer.feed(await data.read()))
        await spool.add(unstuffer.flush())


class _GuardedLMTP(_GuardedServer, LMTP):
    """aiosmtpd's LMTP with the same guards."""


def _warn_if_one_client_may_take_all(settings: SmtpSettings, exempt: bool) -> None:
    """Warn when the per-client limit cannot answer before the global one is reached."""
    if exempt or not settings.max_connections_per_client:
        return
    if settings.max_connections_per_client >= settings.max_connections:
        log.warning("smtp.max_connections_per_client (%d) is not lower than "
                    "smtp.max_connections (%d): one client can take every connection; "
                    "lower smtp.max_connections_per_client",
                    settings.max_connections_per_client, settings.max_connections)


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
    tracker: ConnectionTracker[_GuardedServer]
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
    # LMTP is spoken by the local MTA, and a unix socket is reached from this host only:
    # neither is throttled, so Postfix is never refused for being the only client there is.
    exempt = settings.lmtp or bool(settings.socket)
    tracker = ConnectionTracker[_GuardedServer](settings.max_connections,
                                0 if exempt else settings.max_connections_per_client)
    pace = None if exempt else DataPace(settings.min_data_bytes_per_second,
                                        settings.data_deadline_seconds,
                                        settings.session_deadline_seconds)
    tls_context = make_tls_context(settings)
    # An empty server_hostname means this machine's name, looked up once, without DNS;
    # aiosmtpd would otherwise call getfqdn() (a blocking DNS query) for every connection.
    hostname = settings.server_hostname or socket.gethostname()
    protocol_class = _GuardedLMTP if settings.lmtp else _GuardedServer
    # aiosmtpd checks a declared SIZE in MAIL FROM before our handler does: keep its limit
    # above ours so that handle_MAIL answers, with its enhanced status code. (It no longer
    # reads DATA: smtp_DATA above does, and counts the message exactly.)
    aiosmtpd_size_limit = settings.max_message_bytes + settings.max_message_bytes // 16

    def make_session() -> _GuardedServer:
        return protocol_class(
            handler,
            tracker=tracker,
            pace=pace,
            data_size_limit=aiosmtpd_size_limit,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="Chikanemail evidence intake",
            tls_context=tls_context,
            require_starttls=settings.require_starttls,
            timeout=settings.timeout_seconds,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )

    def make_protocol() -> _Door:
        return _Door(tracker, exempt, make_session)

    _warn_if_memory_may_run_out(settings)
    _warn_if_one_client_may_take_all(settings, exempt)
    loop = asyncio.get_running_loop()
    if settings.socket:
        sock = _bind_unix_socket(settings)
        found = os.stat(settings.socket)
        server = await loop.create_unix_server(make_protocol, sock=sock,
                                               backlog=LISTEN_BACKLOG)
        listener = SmtpListener(server, handler, tracker, settings.socket,
                                (found.st_dev, found.st_ino))
        log.info("%s listening on %s max_message_bytes=%d", "LMTP" if settings.lmtp else "SMTP",
                 settings.socket, settings.max_message_bytes)
        return listener
    try:
        server = await loop.create_server(
            make_protocol, host=settings.host, port=settings.port, reuse_address=True,
            backlog=LISTEN_BACKLOG,
        )
    except OSError as error:
        raise OSError(error.errno, f"cannot listen on smtp.host {settings.host!r} smtp.port "
                      f"{settings.port}: {error.strerror}") from error
    listener = SmtpListener(server, handler, tracker)
    host, port = listener.address
    log.info("%s listening on %s:%d max_message_bytes=%d",
             "LMTP" if settings.lmtp else "SMTP", host, port, settings.max_message_bytes)
    return listener
