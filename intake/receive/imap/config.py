"""The [[imap]] tables of the config: what a single key's type cannot check.

Secrets come only from files that must be readable; XOAUTH2 needs the keys the OAuth2
token source (`intake.receive.imap.oauth`) needs for its grant.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from intake.service.settings import ImapMailbox

TABLE = "imap"
# A mailbox's name appears in logs, in `chikanemail imap test NAME` and in each message's peer.
_MAILBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_mailboxes(mailboxes: Sequence[ImapMailbox], fail: Callable[[str, str], None]) -> None:
    """Checks of the [[imap]] tables no type can express; `fail(key, problem)` raises.

    Keys are named `imap[N].key`, N counting the tables from 1.
    """
    names: set[str] = set()
    for number, mailbox in enumerate(mailboxes, start=1):
        def key(name: str, number: int = number) -> str:
            return f"{TABLE}[{number}].{name}"

        if not _MAILBOX_NAME.fullmatch(mailbox.name):
            fail(key("name"), f"{mailbox.name!r} is not a mailbox name (letters, digits, '.', "
                 "'_' and '-', at most 64, starting with a letter or digit)")
        if mailbox.name in names:
            fail(key("name"), f"{mailbox.name!r} is already the name of another [[imap]] table")
        names.add(mailbox.name)
        for name, value in (("host", mailbox.host), ("username", mailbox.username),
                            ("folder", mailbox.folder),
                            ("processed_folder", mailbox.processed_folder)):
            if not value.strip():
                fail(key(name), "must not be empty")
        if mailbox.processed_folder == mailbox.folder:
            fail(key("processed_folder"), "must differ from folder (stored mail is moved there)")
        if not 1 <= mailbox.port <= 65535:
            fail(key("port"), f"must be between 1 and 65535 (got {mailbox.port})")
        for name, seconds in (("poll_seconds", mailbox.poll_seconds),
                              ("timeout_seconds", mailbox.timeout_seconds)):
            if seconds <= 0:
                fail(key(name), "must be greater than 0")
        if mailbox.ca_file and not os.access(mailbox.ca_file, os.R_OK):
            fail(key("ca_file"), f"file {mailbox.ca_file} does not exist or is not readable")
        if mailbox.auth == "password":
            _check_imap_password(mailbox, key, fail)
        else:
            _check_imap_oauth(mailbox, key, fail)


def _check_imap_password(mailbox: ImapMailbox, key: Callable[[str], str],
                         fail: Callable[[str, str], None]) -> None:
    if not mailbox.password_file:
        fail(key("password_file"), 'needed with auth = "password" (the password is read from '
             "that file, never written in this config)")
    if not os.access(mailbox.password_file, os.R_OK):
        fail(key("password_file"), f"file {mailbox.password_file} does not exist or is not "
             "readable")
    for name, value in _oauth_keys(mailbox):
        if value:
            fail(key(name), 'only used with auth = "xoauth2"')


def _check_imap_oauth(mailbox: ImapMailbox, key: Callable[[str], str],
                      fail: Callable[[str, str], None]) -> None:
    if mailbox.password_file:
        fail(key("password_file"), 'not used with auth = "xoauth2" (leave it empty)')
    endpoint = urlsplit(mailbox.oauth_token_endpoint)
    if not mailbox.oauth_token_endpoint:
        fail(key("oauth_token_endpoint"), 'needed with auth = "xoauth2"')
    if not endpoint.hostname or not (endpoint.scheme == "https" or (
            endpoint.scheme == "http" and _is_loopback(endpoint.hostname))):
        fail(key("oauth_token_endpoint"), "must be an https:// URL (http:// only to this "
             f"machine) (got {mailbox.oauth_token_endpoint!r})")
    if not mailbox.oauth_client_id:
        fail(key("oauth_client_id"), 'needed with auth = "xoauth2"')
    if not mailbox.oauth_refresh_token_file:
        # Without a refresh token the app signs in as itself (client-credentials grant).
        if not mailbox.oauth_client_secret_file:
            fail(key("oauth_client_secret_file"), "needed when oauth_refresh_token_file is "
                 "empty (the client-credentials grant)")
        if not mailbox.oauth_scope:
            fail(key("oauth_scope"), "needed when oauth_refresh_token_file is empty (e.g. "
                 '"https://outlook.office365.com/.default")')
    for name in ("oauth_client_secret_file", "oauth_refresh_token_file"):
        path = getattr(mailbox, name)
        if path and not os.access(path, os.R_OK):
            fail(key(name), f"file {path} does not exist or is not readable")


def _oauth_keys(mailbox: ImapMailbox) -> tuple[tuple[str, str], ...]:
    return (("oauth_token_endpoint", mailbox.oauth_token_endpoint),
            ("oauth_client_id", mailbox.oauth_client_id),
            ("oauth_client_secret_file", mailbox.oauth_client_secret_file),
            ("oauth_scope", mailbox.oauth_scope),
            ("oauth_refresh_token_file", mailbox.oauth_refresh_token_file))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
