"""`chikanemail imap test NAME`: can this mailbox be reached and signed in to, as configured?

Changes nothing on the server: it connects, signs in, lists the folders and reads the
status of the folder mail is taken from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from intake.receive.imap.connection import describe_error, signed_in, token_source_for
from intake.receive.imap.folders import folder_naming
from intake.service.settings import ImapMailbox

_CAPABILITIES = ("IDLE", "MOVE", "UIDPLUS")


@dataclass(frozen=True)
class MailboxCheck:
    """What trying a mailbox found out; `error` is None when everything worked."""

    name: str
    error: str | None = None
    folders: tuple[str, ...] = ()
    folder: str = ""
    folder_messages: int | None = None
    processed_folder: str = ""
    processed_folder_exists: bool = False
    capabilities: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether connecting, signing in and listing folders all worked."""
        return self.error is None

    def lines(self) -> list[str]:
        """What the command prints."""
        if self.error is not None:
            return [f"mailbox {self.name}: FAILED: {self.error}"]
        lines = [f"mailbox {self.name}: connected and signed in"]
        lines.append(f"  folders ({len(self.folders)}): {', '.join(self.folders)}")
        lines.append(f"  take mail from {self.folder!r}: {self.folder_messages} messages")
        lines.append(f"  move it to {self.processed_folder!r}: "
                     + ("exists" if self.processed_folder_exists
                        else "will be created at the first connection"))
        lines.append("  server offers: " + ", ".join(
            f"{name} {'yes' if offered else 'no'}" for name, offered in self.capabilities.items()))
        return lines


def check_mailbox(mailbox: ImapMailbox) -> MailboxCheck:
    """Connect, sign in, list folders and read the intake folder's status; never raises for
    a server, network or credential problem (the result says what failed)."""
    try:
        with signed_in(mailbox, token_source_for(mailbox)) as client:
            listed = client.list_folders()
            folders = tuple(sorted(name for _flags, _delimiter, name in listed))
            naming = folder_naming(client)
            folder = naming.server_name(mailbox.folder)
            processed = naming.server_name(mailbox.processed_folder)
            if folder not in folders:
                return MailboxCheck(mailbox.name, f"no folder {folder!r} on the server "
                                    f"(it has: {', '.join(folders)})", folders=folders)
            status = client.folder_status(folder, ["MESSAGES"])
            return MailboxCheck(
                mailbox.name, folders=folders, folder=folder,
                folder_messages=int(status[b"MESSAGES"]), processed_folder=processed,
                processed_folder_exists=processed in folders,
                capabilities={name: client.has_capability(name) for name in _CAPABILITIES})
    except Exception as error:
        return MailboxCheck(mailbox.name, describe_error(error, mailbox))
