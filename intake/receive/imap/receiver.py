"""One thread per [[imap]] mailbox: connect, catch up by UID, wait in IDLE (or poll), repeat.

Any failure closes the connection; the thread waits (1 s, doubling, at most 5 minutes),
reconnects and catches up from the last UID it recorded. A failing mailbox only affects its
own thread. A refused sign-in is logged once per streak of failures, not at every retry.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable

from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]

from intake.receive.accept import IntakeService
from intake.receive.imap.catchup import FolderIntake
from intake.receive.imap.connection import (
    ImapAuthError,
    ImapClient,
    ServerSaidBye,
    TokenSource,
    describe_error,
    is_token_expiry,
    signed_in,
    token_source_for,
)
from intake.receive.imap.folders import (
    ensure_folder,
    folder_naming,
    move_method,
    select_uidvalidity,
)
from intake.receive.imap.idle import wait_in_idle
from intake.service.settings import ImapMailbox
from storage.imap_state import FolderPosition, begin_folder, record_connected, record_error
from storage.log_context import add_log_fields

log = logging.getLogger("chikanemail.intake.imap")

INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
# RFC 2177 asks clients to re-issue IDLE within 29 minutes; NAT boxes and some servers
# drop quiet connections sooner, so renew (with a NOOP that proves the connection) often.
IDLE_RENEW_SECONDS = 300.0
# How long one idle_check blocks: also how soon a stop request is noticed while in IDLE.
IDLE_CHECK_SECONDS = 1.0
_MAX_BACKOFF_DOUBLINGS = 16
# Failures that are the server's or the network's, not a bug of ours: no traceback logged.
_EXPECTED_ERRORS = (OSError, ssl.SSLError, IMAPClientError, ImapAuthError, ServerSaidBye)


class ImapReceiver:
    """Takes mail from one mailbox folder into the store, in its own thread."""

    def __init__(
        self,
        mailbox: ImapMailbox,
        intake: IntakeService,
        max_message_bytes: int,
        *,
        tokens: TokenSource | None = None,
        initial_backoff: float = INITIAL_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        idle_renew_seconds: float = IDLE_RENEW_SECONDS,
        idle_check_seconds: float = IDLE_CHECK_SECONDS,
    ) -> None:
        if not 0 < initial_backoff <= max_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if idle_renew_seconds <= 0 or idle_check_seconds <= 0:
            raise ValueError("IDLE renewal and check intervals must be greater than 0")
        self.mailbox = mailbox
        self.intake = intake
        self.folder_intake = FolderIntake(mailbox, intake, max_message_bytes)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.idle_renew_seconds = idle_renew_seconds
        self.idle_check_seconds = idle_check_seconds
        self._tokens = tokens if tokens is not None else token_source_for(mailbox)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._auth_failing = False
        self._warned_copy_only = False
        self._client: ImapClient | None = None  # the connection in use, to cut at shutdown
        self.state = "stopped"

    @property
    def name(self) -> str:
        """The mailbox's name from the config."""
        return self.mailbox.name

    # -- running in a thread ------------------------------------------------

    def start(self) -> None:
        """Start the mailbox's thread."""
        self._stop.clear()
        self.state = "starting"
        self._thread = threading.Thread(target=self.run, name=f"chikanemail-imap-{self.name}",
                                        daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the batch in hand (returns at once)."""
        self._stop.set()

    def join(self, timeout: float, grace: float | None = None) -> bool:
        """Wait for the thread to end after `request_stop`; False if it still runs after
        `timeout`.

        After `grace` seconds (half the timeout by default) a thread still waiting on the
        server (a slow login, a long download) has its connection cut. That is safe: a
        message not yet stored stays on the server, one stored but not yet moved is fetched
        again at the next start and only counted.
        """
        thread = self._thread
        if thread is None:
            return True
        grace = timeout / 2 if grace is None else min(grace, timeout)
        thread.join(grace)
        if thread.is_alive():
            self._cut_connection()
            thread.join(max(0.0, timeout - grace))
        if thread.is_alive():
            log.warning("mailbox %s: still busy at shutdown; it catches up at the next start",
                        self.name)
            return False
        self._thread = None
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread: leave IDLE, log out; False if it did not end within `timeout`."""
        self.request_stop()
        return self.join(timeout)

    def _cut_connection(self) -> None:
        client = self._client
        if client is None:
            return
        with contextlib.suppress(OSError, ValueError):
            # The plain socket's shutdown: it wakes a read blocked in another thread, and
            # (unlike SSLSocket.shutdown) leaves the TLS state to that thread.
            socket.socket.shutdown(client.socket(), socket.SHUT_RDWR)

    def run(self) -> None:
        """Connect, take in mail and wait for more until stopped, reconnecting after errors."""
        add_log_fields(mailbox=self.mailbox.name)  # this thread serves this mailbox only
        self._safely(record_connected, False)
        while not self._stop.is_set():
            try:
                self.state = "connecting"
                self._session()
            except Exception as error:
                self._failed(error)
            if self._stop.is_set():
                break
            self.state = "backing-off"
            self._stop.wait(self._backoff())
        self._safely(record_connected, False)
        self.state = "stopped"
        log.info("mailbox %s: stopped", self.name)

    # -- one connection -----------------------------------------------------

    def _session(self) -> None:
        """One connection: sign in, catch up, then wait for mail and catch up, until stopped
        (returns) or something fails (raises)."""
        mailbox = self.mailbox
        with signed_in(mailbox, self._tokens, on_connect=self._connected) as client:
            if self._auth_failing:
                log.info("mailbox %s: signed in again", self.name)
                self._auth_failing = False
            folder, processed, move = self._prepare_folders(client)
            uidvalidity = select_uidvalidity(client, folder)
            position = begin_folder(self.intake.database, self.name, mailbox.folder,
                                    uidvalidity)
            if position.resynced:
                log.warning("mailbox %s: folder %r has a new UIDVALIDITY %d: taking in all of "
                            "it again (messages already stored are only counted)", self.name,
                            folder, uidvalidity)
            idle = mailbox.mode == "idle" and client.has_capability("IDLE")
            log.info("mailbox %s: connected to %s:%d as %s, folder %r (UIDVALIDITY %d, last "
                     "UID %d), %s", self.name, mailbox.host, mailbox.port, mailbox.username,
                     folder, position.uidvalidity, position.last_uid,
                     "waiting in IDLE" if idle else f"polling every {mailbox.poll_seconds:g} s")
            if mailbox.mode == "idle" and not idle:
                log.warning("mailbox %s: the server does not offer IDLE; polling instead",
                            self.name)
            position = self._catch_up(client, position, processed, move)
            self._failures = 0  # this connection works: the next failure starts small again
            while self._wait_for_mail(client, idle):
                client.noop()  # proves the connection and lets the server report new mail
                position = self._catch_up(client, position, processed, move)

    def _prepare_folders(self, client: ImapClient) -> tuple[str, str, str]:
        """The server's names of the folder and the processed folder (created if missing),
        and how stored mail leaves the folder."""
        naming = folder_naming(client)
        folder = naming.server_name(self.mailbox.folder)
        processed = naming.server_name(self.mailbox.processed_folder)
        ensure_folder(client, processed)
        move = move_method(client)
        if move == "copy-only" and not self._warned_copy_only:
            self._warned_copy_only = True
            log.warning("mailbox %s: the server has neither MOVE nor UIDPLUS: stored mail is "
                        "copied to %r and left flagged \\Deleted in %r (never expunged by us)",
                        self.name, processed, folder)
        return folder, processed, move

    def _wait_for_mail(self, client: ImapClient, idle: bool) -> bool:
        """Wait in IDLE (until mail, renewal time or a suspect socket) or for poll_seconds;
        False when stopping."""
        if idle:
            self.state = "idle"
            wait_in_idle(client, self._stop, renew_seconds=self.idle_renew_seconds,
                         check_seconds=self.idle_check_seconds)
        else:
            self.state = "polling"
            self._stop.wait(self.mailbox.poll_seconds)
        return not self._stop.is_set()

    def _connected(self, client: ImapClient | None) -> None:
        self._client = client
        if client is not None and self._stop.is_set():
            self._cut_connection()  # stop came while connecting

    def _catch_up(self, client: ImapClient, position: FolderPosition, processed: str,
                  move: str) -> FolderPosition:
        self.state = "catching-up"
        position, stored = self.folder_intake.catch_up(
            client, position, processed, move, keep_going=lambda: not self._stop.is_set())
        if stored:
            log.info("mailbox %s: took in %d messages (last UID %d)", self.name, stored,
                     position.last_uid)
        return position

    # -- failures -----------------------------------------------------------

    def _backoff(self) -> float:
        doublings = min(max(self._failures - 1, 0), _MAX_BACKOFF_DOUBLINGS)
        return float(min(self.max_backoff, self.initial_backoff * 2**doublings))

    def _failed(self, error: Exception) -> None:
        self._failures += 1
        description = describe_error(error, self.mailbox)
        self._safely(record_error, description)
        if self._stop.is_set():
            log.info("mailbox %s: connection ended while stopping: %s", self.name, description)
            return
        delay = self._backoff()
        if isinstance(error, ImapAuthError):
            if not self._auth_failing:
                self._auth_failing = True
                log.error("mailbox %s: sign-in failed: %s (retrying with growing pauses up "
                          "to %g s; logged again only after it worked)", self.name,
                          description, self.max_backoff)
            else:
                log.debug("mailbox %s: sign-in still failing: %s", self.name, description)
            return
        if self._tokens is not None and is_token_expiry(error):
            self._tokens.invalidate()
            log.info("mailbox %s: the server says the access token expired; reconnecting "
                     "with a new one", self.name)
            return
        if isinstance(error, _EXPECTED_ERRORS):
            log.warning("mailbox %s: %s; reconnecting in %g s", self.name, description, delay)
        else:
            log.error("mailbox %s: unexpected error; reconnecting in %g s", self.name, delay,
                      exc_info=error)

    def _safely(self, record: Callable[..., object], *args: object) -> None:
        """Write the status row; a database that is down must not stop the thread."""
        try:
            record(self.intake.database, self.name, self.mailbox.folder, *args)
        except Exception:
            log.warning("mailbox %s: could not record the connection state", self.name,
                        exc_info=True)
