"""What `chikanemail imap status` shows: each configured mailbox's connection and progress."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from intake.service.settings import ImapMailbox
from storage.database import Database
from storage.imap_state import count_oversized, folder_status


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def imap_status(database: Database, mailboxes: Sequence[ImapMailbox]) -> list[dict[str, Any]]:
    """One JSON-ready entry per configured mailbox, in the config's order (stable keys)."""
    entries = []
    for mailbox in mailboxes:
        status = folder_status(database, mailbox.name, mailbox.folder)
        entries.append({
            "name": mailbox.name,
            "host": mailbox.host,
            "port": mailbox.port,
            "username": mailbox.username,
            "folder": mailbox.folder,
            "mode": mailbox.mode,
            "connected": status.connected if status else False,
            "uidvalidity": (status.uidvalidity or None) if status else None,  # 0: not known
            "last_uid": status.last_uid if status else None,
            "last_success_at": _time(status.last_success_at) if status else None,
            "last_error": status.last_error if status else None,
            "last_error_at": _time(status.last_error_at) if status else None,
            "updated_at": _time(status.updated_at) if status else None,
            "oversized_left_on_server": count_oversized(database, mailbox.name, mailbox.folder),
        })
    return entries
