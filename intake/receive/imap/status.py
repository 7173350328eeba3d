"""What `chikanemail imap status` shows: each configured mailbox's connection and progress."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

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


def imap_status_table(entries: Sequence[dict[str, Any]]) -> Table:
    """The status entries as a table for people (times in local time)."""
    table = Table(title=f"{len(entries)} IMAP mailboxes")
    for column in ("name", "folder", "connected", "UIDVALIDITY", "last UID", "last success",
                   "last error", "oversized"):
        table.add_column(column)
    for entry in entries:
        error = entry["last_error"] or ""
        if error and entry["last_error_at"]:
            error = f"{_local(entry['last_error_at'])}: {error}"
        table.add_row(
            entry["name"], entry["folder"], "yes" if entry["connected"] else "no",
            str(entry["uidvalidity"] or "-"),
            "-" if entry["last_uid"] is None else str(entry["last_uid"]),
            _local(entry["last_success_at"]) if entry["last_success_at"] else "never",
            error, str(entry["oversized_left_on_server"]),
        )
    return table


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
