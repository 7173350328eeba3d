"""One connection to an [[imap]] mailbox: TLS, timeouts, and signing in.

imapclient ships no type information; `ImapClient` below describes the part of it this
service uses, so the rest of the code is checked. The connection is always a context
manager, which logs out (or at least closes the socket) however the block ends.
"""

from __future__ import annotations

import importlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, cast

from imapclient import IMAPClient, tls  # type: ignore[import-untyped]
from imapclient.exceptions import (  # type: ignore[import-untyped]
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from intake.service.settings import ImapMailbox
from storage.errors import ChikanemailError

log = logging.getLogger("chikanemail.intake.imap")

# Error texts kept in the status row and the log are cut to this length.
_MAX_DESCRIPTION = 300


class ImapClient(Protocol):
    """The part of `imapclient.IMAPClient` this service uses."""

    def __enter__(self) -> ImapClient: ...
    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...
    def starttls(self, ssl_context: ssl.SSLContext | None = None) -> bytes: ...
    def login(self, username: str, password: str) -> bytes: ...
    def oauth2_login(self, user: str, access_token: str) -> bytes: ...
    def capabilities(self) -> tuple[bytes, ...]: ...
    def has_capability(self, capability: str) -> bool: ...
    def namespace(self) -> Any: ...
    def list_folders(self, directory: str = "", pattern: str = "*") -> list[
        tuple[tuple[bytes, ...], bytes | None, str]]: ...
    def folder_exists(self, folder: str) -> bool: ...
    def folder_status(self, folder: str, what: Sequence[str] | None = None) -> dict[
        bytes, Any]: ...
    def create_folder(self, folder: str) -> bytes: ...
    def subscribe_folder(self, folder: str) -> Any: ...
    def select_folder(self, folder: str, readonly: bool = False) -> dict[bytes, Any]: ...
    def search(self, criteria: Any = "ALL", charset: str | None = None) -> list[int]: ...
    def fetch(self, messages: Any, data: Sequence[str]) -> dict[int, dict[bytes, Any]]: ...
    def move(self, messages: Sequence[int], folder: str) -> bytes: ...
    def copy(self, messages: Sequence[int], folder: str) -> bytes: ...
    def add_flags(self, messages: Sequence[int], flags: Sequence[bytes],
                  silent: bool = False) -> Any: ...
    def uid_expunge(self, messages: Sequence[int]) -> Any: ...
    def noop(self) -> tuple[bytes, list[Any]]: ...
    def idle(self) -> None: ...
    def idle_check(self, timeout: float | None = None) -> list[tuple[Any, ...]]: ...
    def idle_done(self) -> tuple[bytes, list[Any]]: ...
    def socket(self) -> socket.socket: ...
    def logout(self) -> bytes: ...
    def shutdown(self) -> None: ...


class TokenSource(Protocol):
    """Access tokens for XOAUTH2 (implemented by `intake.receive.imap.oauth.OAuthTokenSource`)."""

    def access_token(self) -> str:
        """A valid access token; raises when none can be had."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it)."""
        ...


class ImapAuthError(ChikanemailError):
    """The server (or the token endpoint) refused our credentials."""


class ServerSaidBye(ChikanemailError):
    """The server ended the session (shutdown, or an expired access token)."""


class _TimeoutTLS(tls.IMAP4_TLS):  # type: ignore[misc]
    """imapclient 3.1 drops the connect timeout of implicit-TLS connections (issue #646,
    fixed upstream in PR #664): use it, so connecting, the handshake and the greeting
    cannot hang."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return cast(socket.socket, super()._create_socket(
            timeout if timeout is not None else self._timeout))


class _Client(IMAPClient):  # type: ignore[misc]
    """IMAPClient whose implicit-TLS connections honour the connect timeout, and which does
    not format imaplib's trace for a log that drops it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # imapclient turns imaplib's trace up to level 5 and sends it to its
        # "imapclient.imaplib" logger, which `quiet_library_logging` keeps at WARNING. imaplib
        # formats each line first, the repr of every literal included: for a fetched 200 KB
        # message a string of about 800 KB, made and dropped, about half the CPU time of a
        # fetch. Level 0 formats nothing (imaplib still keeps its short command history).
        self._imap.debug = 0

    def _create_IMAP4(self) -> Any:  # imapclient's name for it
        if self.ssl and not self.stream:
            return _TimeoutTLS(self.host, self.port, self.ssl_context, self._timeout.connect)
        return super()._create_IMAP4()


def quiet_library_logging() -> None:
    """Keep imapclient's debug lines (they carry passwords and message text) out of the log."""
    logging.getLogger("imapclient").setLevel(logging.WARNING)


def tls_context(mailbox: ImapMailbox) -> ssl.SSLContext:
    """Verify the server's certificate and name against `ca_file` or the system's CAs."""
    return ssl.create_default_context(cafile=mailbox.ca_file or None)


def connect(mailbox: ImapMailbox) -> ImapClient:
    """Open the connection, TLS from the first byte or after STARTTLS; not yet signed in.

    Use the result as a context manager. Connect and read timeouts are the mailbox's
    `timeout_seconds`. STARTTLS the server does not offer is an error, never plain text.
    """
    quiet_library_logging()
    context = tls_context(mailbox)
    if mailbox.security == "ssl":
        return cast(ImapClient, _Client(mailbox.host, port=mailbox.port, ssl=True,
                                        ssl_context=context,
                                        timeout=mailbox.timeout_seconds))
    client = cast(ImapClient, _Client(mailbox.host, port=mailbox.port, ssl=False,
                                      timeout=mailbox.timeout_seconds))
    try:
        client.starttls(context)
    except BaseException:
        client.shutdown()
        raise
    return client


def read_secret(path: str, key: str) -> str:
    """A secret kept in a file (surrounding white space dropped); ImapAuthError if unusable."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ImapAuthError(f"cannot read {key} {path}: "
                            f"{error.strerror or type(error).__name__}") from None
    if not value:
        raise ImapAuthError(f"{key} {path} is empty")
    return value


def token_source_for(mailbox: ImapMailbox) -> TokenSource | None:
    """The mailbox's OAuth2 token source (auth = "xoauth2"), or None for password sign-in."""
    if mailbox.auth != "xoauth2":
        return None
    # Imported only when needed: password mailboxes never load the OAuth2 libraries.
    oauth = importlib.import_module("intake.receive.imap.oauth")
    return cast(TokenSource, oauth.OAuthTokenSource(mailbox))


def login(client: ImapClient, mailbox: ImapMailbox, tokens: TokenSource | None) -> None:
    """Sign in with the password from `password_file`, or with an XOAUTH2 access token.

    Raises ImapAuthError when the credentials are refused; a refused token is invalidated
    first, so the next attempt asks the token endpoint for a new one.
    """
    if mailbox.auth == "xoauth2":
        if tokens is None:
            raise ImapAuthError("auth = \"xoauth2\" needs a token source")
        try:
            token = tokens.access_token()
        except Exception as error:
            raise ImapAuthError(f"no access token: {error}") from error
        try:
            client.oauth2_login(mailbox.username, token)
        except LoginError as error:
            _raise_if_connection_lost(error)
            tokens.invalidate()
            raise ImapAuthError(f"XOAUTH2 sign-in of {mailbox.username} refused: "
                                f"{_server_text(error)}") from None
        return
    password = read_secret(mailbox.password_file, "password_file")
    try:
        client.login(mailbox.username, password)
    except LoginError as error:
        _raise_if_connection_lost(error)
        raise ImapAuthError(f"login of {mailbox.username} refused: "
                            f"{_server_text(error)}") from None


def _raise_if_connection_lost(error: LoginError) -> None:
    """imapclient reports a connection lost during sign-in as a LoginError too: that is
    not a refusal of our credentials, so raise what really happened."""
    cause = error.__context__
    if isinstance(cause, IMAPClientAbortError | OSError):
        raise cause


@contextmanager
def signed_in(mailbox: ImapMailbox, tokens: TokenSource | None,
              on_connect: Callable[[ImapClient | None], None] | None = None,
              ) -> Iterator[ImapClient]:
    """A signed-in connection for the length of the block; logged out afterwards.

    `on_connect` hears of the connection before signing in, and of its end (None).
    """
    try:
        with connect(mailbox) as client:
            if on_connect is not None:
                on_connect(client)
            login(client, mailbox, tokens)
            yield client
    finally:
        if on_connect is not None:
            on_connect(None)


def is_token_expiry(error: BaseException) -> bool:
    """Whether the server ended the session because the access token ran out (Microsoft)."""
    return "AccessTokenExpired" in str(error)


def describe_error(error: BaseException, mailbox: ImapMailbox) -> str:
    """One line saying what went wrong, for the log, the status row and the CLI."""
    where = f"{mailbox.host}:{mailbox.port}"
    if isinstance(error, ImapAuthError):
        text = str(error)
    elif isinstance(error, ServerSaidBye):
        text = f"{where} ended the session: {error}"
    elif isinstance(error, ssl.SSLCertVerificationError):
        text = f"TLS certificate of {where} not trusted: {error.verify_message}"
    elif isinstance(error, ssl.SSLError):
        text = f"TLS with {where} failed: {error.reason or error}"
    elif isinstance(error, TimeoutError | socket.timeout):
        text = f"{where} did not answer within {mailbox.timeout_seconds:g} s"
    elif isinstance(error, ConnectionRefusedError):
        text = f"{where} refused the connection"
    elif isinstance(error, socket.gaierror):
        text = f"cannot resolve {mailbox.host}: {error.strerror}"
    elif isinstance(error, OSError):
        text = f"connection to {where} failed: {error.strerror or type(error).__name__}"
    elif isinstance(error, IMAPClientAbortError):
        text = f"connection to {where} lost: {_server_text(error)}"
    elif isinstance(error, IMAPClientError):
        text = f"{where} said: {_server_text(error)}"
    else:
        text = f"{type(error).__name__}: {error}"
    return text[:_MAX_DESCRIPTION]


def _server_text(error: BaseException) -> str:
    """The server's words from an imaplib/imapclient error, on one line."""
    text = " ".join(str(error).split())
    # imaplib puts the server's bytes into some errors as they are: b'[...] text'
    if len(text) >= 3 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
        text = text[2:-1]
    return text[:_MAX_DESCRIPTION]
