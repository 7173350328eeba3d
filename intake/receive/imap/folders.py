"""Folders on the IMAP server: their names there, creating one, and moving stored mail.

Folder names in the config use "/" between levels ("Chikanemail/Behandlet"); on the server
they use its own delimiter and, where the server keeps personal folders under a prefix
(Courier and Cyrus: "INBOX."), that prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from imapclient import DELETED  # type: ignore[import-untyped]
from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]

from intake.receive.imap.connection import ImapClient

log = logging.getLogger("chikanemail.intake.imap")

CONFIG_DELIMITER = "/"


@dataclass(frozen=True)
class FolderNaming:
    """How the server names personal folders: a prefix and the hierarchy delimiter."""

    prefix: str
    delimiter: str

    def server_name(self, configured: str) -> str:
        """The server's name for a folder written with "/" between levels in the config."""
        if configured.upper() == "INBOX":
            return "INBOX"
        name = configured
        if self.delimiter and self.delimiter != CONFIG_DELIMITER:
            name = name.replace(CONFIG_DELIMITER, self.delimiter)
        if self.prefix and not name.startswith(self.prefix):
            name = self.prefix + name
        return name


def folder_naming(client: ImapClient) -> FolderNaming:
    """Ask the server for its personal namespace (or, lacking NAMESPACE, INBOX's delimiter)."""
    if client.has_capability("NAMESPACE"):
        personal = client.namespace().personal
        if personal:
            prefix, delimiter = personal[0]
            return FolderNaming(str(prefix), str(delimiter or ""))
    listed = client.list_folders("", "INBOX")
    delimiter = listed[0][1] if listed else None
    return FolderNaming("", delimiter.decode() if isinstance(delimiter, bytes) else "")


def ensure_folder(client: ImapClient, name: str) -> None:
    """Create the folder (and the levels above it) unless it exists, and subscribe to it."""
    if client.folder_exists(name):
        return
    try:
        client.create_folder(name)
    except IMAPClientError:
        if not client.folder_exists(name):  # created meanwhile by another daemon: fine
            raise
        return
    log.info("created folder %r", name)
    try:
        client.subscribe_folder(name)  # so mail programs show it
    except IMAPClientError as error:
        log.info("could not subscribe to folder %r: %s", name, error)


def select_uidvalidity(client: ImapClient, folder: str) -> int:
    """Select the folder (read-write) and return its UIDVALIDITY."""
    response = client.select_folder(folder)
    uidvalidity = response.get(b"UIDVALIDITY")
    if not isinstance(uidvalidity, int) or uidvalidity <= 0:
        raise IMAPClientError(f"the server gave folder {folder!r} no UIDVALIDITY")
    return uidvalidity


def move_method(client: ImapClient) -> str:
    """How stored mail leaves the folder on this server: "move", "uidplus" or "copy-only"."""
    if client.has_capability("MOVE"):
        return "move"
    if client.has_capability("UIDPLUS"):
        return "uidplus"
    return "copy-only"


def move_messages(client: ImapClient, uids: Sequence[int], folder: str, method: str) -> None:
    """Move these messages (and only these) of the selected folder to another folder.

    MOVE where the server has it; else COPY, flag \\Deleted and UID EXPUNGE exactly these
    UIDs (UIDPLUS). A plain EXPUNGE, which would also remove mail someone else flagged, is
    never sent: without UIDPLUS the originals stay flagged \\Deleted for the mail owner.
    """
    if not uids:
        return
    if method == "move":
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [DELETED], silent=True)
    if method == "uidplus":
        client.uid_expunge(uids)
