"""OAuth2 access tokens for IMAP XOAUTH2 (Microsoft 365, Google Workspace).

Which grant is used is decided by the [[imap]] table:

- `oauth_refresh_token_file` set: the refresh-token grant (delegated: the mailbox user signed
  in once and consented). A refresh token the provider rotates is saved back to that file.
- `oauth_refresh_token_file` empty: the client-credentials grant (app-only: Microsoft 365
  with the IMAP.AccessAsApp application permission and scope
  "https://outlook.office365.com/.default").

The client authenticates with `client_secret_post` (client id and secret in the form body),
which both Microsoft identity platform v2 and Google accept; without an
`oauth_client_secret_file` (a public client, refresh-token grant only) it sends its client id
alone. Requests time out after the mailbox's `timeout_seconds`. Tokens and secrets never
reach the log or an exception message.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import (  # type: ignore[import-untyped]
    OAuthError as AuthlibOAuthError,
)
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]

from intake.service.settings import ImapMailbox
from storage.errors import ChikanemailError

logger = logging.getLogger("chikanemail.intake.oauth")

# Refresh this long before the provider's expiry: Microsoft 365 ends an IMAP session with
# "BYE ... AccessTokenExpired" once its token runs out, so a session must start well before.
REFRESH_MARGIN_SECONDS = 300.0
# Assumed lifetime when the provider omits expires_in (both providers issue one-hour tokens).
DEFAULT_LIFETIME_SECONDS = 3600.0


class OAuthError(ChikanemailError):
    """Getting an access token failed; the message says what failed and what to do.

    `transient` is true when trying again later may help (endpoint unreachable, timed out,
    HTTP 5xx, temporarily_unavailable); false when a person must act (token or client
    rejected, a setting or secret file wrong).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def xoauth2_string(username: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response for this user and token (unencoded)."""
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01"


class OAuthTokenSource:
    """Access tokens for one mailbox, fetched from its token endpoint and cached until
    five minutes before they expire. Safe to call from several threads."""

    def __init__(self, mailbox: ImapMailbox, *, clock: Callable[[], float] = time.time,
                 session: requests.Session | None = None) -> None:
        """Check the mailbox's OAuth2 settings (OAuthError names the key at fault). `clock`
        dates expiry; `session` is the HTTP transport to the token endpoint (its TLS, proxy
        and adapter settings), by default one of authlib's OAuth2Session per request."""
        _check_settings(mailbox)
        self._mailbox = mailbox
        self._clock = clock
        # The HTTP transport (TLS, proxies, adapters); by default the OAuth2Session's own.
        self._session = session
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at: float | None = None
        # A rotated refresh token that could not be saved: used until saving succeeds.
        self._unsaved_refresh_token: str | None = None

    @property
    def grant_type(self) -> str:
        """The OAuth2 grant this mailbox uses: "refresh_token" or "client_credentials"."""
        if self._mailbox.oauth_refresh_token_file:
            return "refresh_token"
        return "client_credentials"

    @property
    def expires_at(self) -> float | None:
        """When the cached access token expires (clock seconds); None when none is cached."""
        with self._lock:
            return self._expires_at

    def access_token(self) -> str:
        """A valid access token, fetched anew when none is cached or it expires within
        five minutes. Raises OAuthError when the provider cannot be asked or says no."""
        with self._lock:
            if (self._access_token is not None and self._expires_at is not None
                    and self._clock() < self._expires_at - REFRESH_MARGIN_SECONDS):
                return self._access_token
            started = self._clock()
            token = self._fetch()
            self._access_token = _access_token_of(token, self._mailbox)
            self._expires_at = started + _lifetime_of(token)
            logger.info("mailbox %s: new access token (%s grant), valid for %.0f s",
                        self._mailbox.name, self.grant_type, self._expires_at - started)
            return self._access_token

    def invalidate(self) -> None:
        """Forget the cached access token, e.g. after the IMAP server refused it."""
        with self._lock:
            self._access_token = self._expires_at = None

    def _fetch(self) -> Mapping[str, Any]:
        mailbox = self._mailbox
        client_secret = (_read_secret(mailbox.oauth_client_secret_file, "oauth_client_secret_file")
                         if mailbox.oauth_client_secret_file else None)
        sent: str | None = None
        if self.grant_type == "refresh_token":
            sent = self._unsaved_refresh_token or _read_secret(
                mailbox.oauth_refresh_token_file, "oauth_refresh_token_file")
        with OAuth2Session(
            client_id=mailbox.oauth_client_id,
            client_secret=client_secret,
            token_endpoint_auth_method="client_secret_post" if client_secret else "none",
            scope=mailbox.oauth_scope or None,
        ) as client:
            if self._session is not None:
                client.session = self._session  # authlib posts through `client.session`
            try:
                if sent is None:
                    token = client.fetch_token(
                        mailbox.oauth_token_endpoint, grant_type="client_credentials",
                        timeout=mailbox.timeout_seconds)
                else:
                    token = client.refresh_token(
                        mailbox.oauth_token_endpoint, refresh_token=sent,
                        timeout=mailbox.timeout_seconds)
            except (AuthlibOAuthError, requests.RequestException, ValueError) as error:
                if getattr(error, "error", None) == "invalid_grant":
                    # Dead: read the file next time (a person may have put a new one there).
                    self._unsaved_refresh_token = None
                raise _failure(mailbox, self.grant_type, error) from error
        if sent is not None:
            rotated = token.get("refresh_token")
            keep = rotated if isinstance(rotated, str) and rotated else sent
            if keep != sent or self._unsaved_refresh_token is not None:
                self._save_refresh_token(keep)
        return dict(token)

    def _save_refresh_token(self, refresh_token: str) -> None:
        path = Path(self._mailbox.oauth_refresh_token_file)
        try:
            write_secret_file(path, refresh_token)
        except OSError as error:
            # The new access token is good; keep the new refresh token in memory (the old
            # one may already be void) and try to save it again at the next refresh.
            self._unsaved_refresh_token = refresh_token
            logger.error("mailbox %s: could not save the rotated refresh token to %s: %s",
                         self._mailbox.name, path, error.strerror or type(error).__name__)
            return
        self._unsaved_refresh_token = None
        logger.info("mailbox %s: saved the rotated refresh token to %s",
                    self._mailbox.name, path)


def write_secret_file(path: Path, value: str) -> None:
    """Replace the file with this secret atomically, readable by its owner only (0600)."""
    folder = path.parent
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(value + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder_descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder_descriptor)
    finally:
        os.close(folder_descriptor)


def _check_settings(mailbox: ImapMailbox) -> None:
    def fail(problem: str) -> OAuthError:
        return OAuthError(f"[[imap]] mailbox {mailbox.name}: {problem}")

    if mailbox.auth != "xoauth2":
        raise fail('auth is not "xoauth2"')
    if not mailbox.oauth_token_endpoint:
        raise fail("oauth_token_endpoint is empty")
    endpoint = urlsplit(mailbox.oauth_token_endpoint)
    if endpoint.scheme != "https" and not (endpoint.scheme == "http"
                                           and _is_loopback(endpoint.hostname)):
        raise fail("oauth_token_endpoint must be an https:// URL")
    if not mailbox.oauth_client_id:
        raise fail("oauth_client_id is empty")
    if not mailbox.oauth_refresh_token_file:
        # Client credentials: the app proves itself with its secret, for a .default scope.
        if not mailbox.oauth_client_secret_file:
            raise fail("oauth_client_secret_file is empty (the client-credentials grant, "
                       "used when oauth_refresh_token_file is empty, needs it)")
        if not mailbox.oauth_scope:
            raise fail("oauth_scope is empty (the client-credentials grant needs one, e.g. "
                       '"https://outlook.office365.com/.default")')


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_secret(path: str, key: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise OAuthError(f"cannot read {key} {path}: "
                         f"{error.strerror or type(error).__name__}") from error
    if not value:
        raise OAuthError(f"{key} {path} is empty")
    return value


def _failure(mailbox: ImapMailbox, grant_type: str, error: Exception) -> OAuthError:
    where = f"mailbox {mailbox.name}: token endpoint {mailbox.oauth_token_endpoint}"
    if isinstance(error, requests.Timeout):
        return OAuthError(f"{where} did not answer within {mailbox.timeout_seconds:g} s",
                          transient=True)
    if isinstance(error, requests.ConnectionError):
        return OAuthError(f"{where} unreachable ({type(error).__name__})", transient=True)
    if isinstance(error, requests.HTTPError) and error.response is not None:
        status = error.response.status_code
        return OAuthError(f"{where} answered HTTP {status}", transient=status >= 500)
    if not isinstance(error, AuthlibOAuthError):
        return OAuthError(f"{where} gave no usable answer ({type(error).__name__})",
                          transient=True)
    # An OAuth2 error response (RFC 6749 section 5.2): its code and first line of description.
    code = str(getattr(error, "error", "") or "unknown_error")
    description = str(getattr(error, "description", "") or "").strip().splitlines()
    said = f"{code}: {description[0]}" if description else code
    if code == "invalid_grant" and grant_type == "refresh_token":
        return OAuthError(
            f"{where}: refresh token rejected ({said}): sign in again / re-consent as "
            f"{mailbox.username} and write the new refresh token to "
            f"{mailbox.oauth_refresh_token_file}")
    if code in ("invalid_client", "unauthorized_client"):
        return OAuthError(
            f"{where}: client {mailbox.oauth_client_id} rejected ({said}): check "
            f"oauth_client_id and the secret in {mailbox.oauth_client_secret_file}")
    return OAuthError(f"{where}: {grant_type} grant refused ({said})",
                      transient=code in ("temporarily_unavailable", "server_error"))


def _access_token_of(token: Mapping[str, Any], mailbox: ImapMailbox) -> str:
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise OAuthError(f"mailbox {mailbox.name}: token endpoint "
                         f"{mailbox.oauth_token_endpoint} answered without an access_token")
    token_type = str(token.get("token_type", "Bearer"))
    if token_type.lower() != "bearer":
        raise OAuthError(f"mailbox {mailbox.name}: token endpoint "
                         f"{mailbox.oauth_token_endpoint} issued a {token_type!r} token, "
                         "not a Bearer token")
    return access_token


def _lifetime_of(token: Mapping[str, Any]) -> float:
    # Microsoft's v1 endpoint sent expires_in as a string; accept both.
    try:
        return float(token["expires_in"])
    except (KeyError, TypeError, ValueError):
        return DEFAULT_LIFETIME_SECONDS
