"""How far each IMAP folder has been taken in, how its connection fares, and what was left.

One `imap_folder_state` row per (mailbox, folder): the folder's UIDVALIDITY and the last UID
stored (and moved away), plus what `chikanemail imap status` shows. A UIDVALIDITY of 0 means
"not known yet" (servers never hand out 0). One `imap_oversized` row per message left on the
server because it is larger than the service accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.database import Database
from storage.models import ImapFolderState, ImapOversized, utc_now

# Kept short in the row; the log has the whole story.
_MAX_ERROR_TEXT = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class FolderPosition:
    """Where taking in a folder resumes: its UIDVALIDITY and the last UID already done."""

    uidvalidity: int
    last_uid: int
    # True when the server's UIDVALIDITY differed from the stored one (the folder starts over).
    resynced: bool = False


@dataclass(frozen=True)
class FolderStatus:
    """One folder's row, as `chikanemail imap status` shows it."""

    mailbox: str
    folder: str
    uidvalidity: int
    last_uid: int
    connected: bool
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class OversizedMessage:
    """A message left on the server because it is over the size limit."""

    mailbox: str
    folder: str
    uidvalidity: int
    uid: int
    size: int
    seen_at: datetime


def _retrying_once(database: Database, work: Callable[[Session], T]) -> T:
    """Run `work` in a write transaction; once more if a concurrent insert got there first."""
    try:
        with database.write() as session:
            return work(session)
    except IntegrityError:
        # Another daemon sharing the database created the same row between our look-up and
        # our insert (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers). Now it exists.
        with database.write() as session:
            return work(session)


def _row(session: Session, mailbox: str, folder: str) -> ImapFolderState:
    """The folder's row, locked for update; created (UIDVALIDITY unknown) when missing."""
    row = session.execute(
        select(ImapFolderState)
        .where(ImapFolderState.mailbox == mailbox, ImapFolderState.folder == folder)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        row = ImapFolderState(mailbox=mailbox, folder=folder, uidvalidity=0, last_uid=0,
                              connected=False, updated_at=utc_now())
        session.add(row)
        session.flush()
    return row


def begin_folder(database: Database, mailbox: str, folder: str,
                 uidvalidity: int) -> FolderPosition:
    """Where to resume in a folder the server says has this UIDVALIDITY.

    A folder seen for the first time starts at UID 0 (everything in it is taken in). A
    UIDVALIDITY other than the stored one means the server renumbered the folder: the old
    UIDs mean nothing any more, so the folder starts over at 0 (messages already stored are
    recognised by their SHA-256 and only counted again).
    """
    def work(session: Session) -> FolderPosition:
        row = _row(session, mailbox, folder)
        resynced = row.uidvalidity not in (0, uidvalidity)
        if row.uidvalidity != uidvalidity:
            row.uidvalidity = uidvalidity
            row.last_uid = 0
        row.connected = True
        row.updated_at = utc_now()
        return FolderPosition(row.uidvalidity, row.last_uid, resynced)

    return _retrying_once(database, work)


def advance_folder(database: Database, mailbox: str, folder: str, position: FolderPosition,
                   *, now: datetime | None = None) -> None:
    """Record that every message up to `position.last_uid` is done, and a successful check.

    Ignored when the stored UIDVALIDITY is no longer `position.uidvalidity`; the last UID
    never goes backwards.
    """
    def work(session: Session) -> None:
        row = _row(session, mailbox, folder)
        stamp = now or utc_now()
        if row.uidvalidity == position.uidvalidity and position.last_uid > row.last_uid:
            row.last_uid = position.last_uid
        row.connected = True
        row.last_success_at = stamp
        row.updated_at = stamp

    _retrying_once(database, work)


def record_connected(database: Database, mailbox: str, folder: str, connected: bool) -> None:
    """Record whether the mailbox's connection is up right now."""
    def work(session: Session) -> None:
        row = _row(session, mailbox, folder)
        row.connected = connected
        row.updated_at = utc_now()

    _retrying_once(database, work)


def record_error(database: Database, mailbox: str, folder: str, error: str,
                 *, now: datetime | None = None) -> None:
    """Record that the connection failed (it is down now) and why."""
    def work(session: Session) -> None:
        row = _row(session, mailbox, folder)
        stamp = now or utc_now()
        row.connected = False
        row.last_error = error[:_MAX_ERROR_TEXT]
        row.last_error_at = stamp
        row.updated_at = stamp

    _retrying_once(database, work)


def record_oversized(database: Database, mailbox: str, folder: str, *, uidvalidity: int,
                     uid: int, size: int) -> bool:
    """Remember a message left on the server for its size; True only the first time."""
    def work(session: Session) -> bool:
        known = session.execute(
            select(ImapOversized.id).where(
                ImapOversized.mailbox == mailbox, ImapOversized.folder == folder,
                ImapOversized.uidvalidity == uidvalidity, ImapOversized.uid == uid)
        ).first()
        if known is not None:
            return False
        session.add(ImapOversized(mailbox=mailbox, folder=folder, uidvalidity=uidvalidity,
                                  uid=uid, size=size, seen_at=utc_now()))
        session.flush()
        return True

    return _retrying_once(database, work)


def folder_status(database: Database, mailbox: str, folder: str) -> FolderStatus | None:
    """The folder's row, or None when the mailbox never got as far as writing one."""
    with database.read() as session:
        row = session.execute(
            select(ImapFolderState)
            .where(ImapFolderState.mailbox == mailbox, ImapFolderState.folder == folder)
        ).scalar_one_or_none()
        if row is None:
            return None
        return FolderStatus(row.mailbox, row.folder, row.uidvalidity, row.last_uid,
                            row.connected, row.last_success_at, row.last_error,
                            row.last_error_at, row.updated_at)


def oversized_messages(database: Database, mailbox: str | None = None) -> list[OversizedMessage]:
    """Messages left on the server for their size, oldest first (of one mailbox, or all)."""
    statement = select(ImapOversized).order_by(ImapOversized.id)
    if mailbox is not None:
        statement = statement.where(ImapOversized.mailbox == mailbox)
    with database.read() as session:
        return [OversizedMessage(row.mailbox, row.folder, row.uidvalidity, row.uid, row.size,
                                 row.seen_at)
                for row in session.execute(statement).scalars()]


def count_oversized(database: Database, mailbox: str, folder: str) -> int:
    """How many messages of the folder were left on the server for their size."""
    with database.read() as session:
        return int(session.execute(
            select(func.count()).select_from(ImapOversized)
            .where(ImapOversized.mailbox == mailbox, ImapOversized.folder == folder)
        ).scalar_one())
