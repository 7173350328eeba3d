"""Take in one folder's new mail by UID: store each message, then move it, then advance.

The order is what keeps evidence safe. A message leaves the folder only after
`IntakeService.accept_message` returned (blob fsync'd, row committed); the folder's last UID
moves on only after the move. A crash in between fetches the message again, and the accept
path, keyed by the raw bytes' SHA-256, only counts it once more. A message over the size
limit is never downloaded: it stays on the server, recorded once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from intake.accept import IntakeService
from intake.imap_connection import ImapClient
from intake.imap_folders import move_messages
from intake.settings import ImapMailbox
from storage.imap_state import FolderPosition, advance_folder, record_oversized
from storage.messages import DeliveryEnvelope
from storage.models import MessageSource

log = logging.getLogger("chikanemail.intake.imap")

# One FETCH asks for at most this many bodies, and this many bytes of them (a single larger
# message is fetched alone): bounded memory, few round trips.
BATCH_MESSAGES = 50
BATCH_BYTES = 16 * 1024 * 1024

_BODY = b"BODY[]"
_SIZE = b"RFC822.SIZE"


@dataclass(frozen=True)
class ServerMessage:
    """A message in the folder: its UID and its size as the server reports it."""

    uid: int
    size: int


@dataclass
class StoreOutcome:
    """What storing one batch did."""

    stored: list[int] = field(default_factory=list)  # accepted: may now leave the folder
    done: set[int] = field(default_factory=set)  # stored, or left on the server for size
    error: Exception | None = None  # storing stopped here; the rest of the batch waits


class FolderIntake:
    """Takes in the new messages of one mailbox's folder through the durable accept path."""

    def __init__(self, mailbox: ImapMailbox, intake: IntakeService, max_message_bytes: int,
                 *, batch_messages: int = BATCH_MESSAGES,
                 batch_bytes: int = BATCH_BYTES) -> None:
        self.mailbox = mailbox
        self.intake = intake
        self.max_message_bytes = max_message_bytes
        self.batch_messages = batch_messages
        self.batch_bytes = batch_bytes
        self.envelope = DeliveryEnvelope(source=MessageSource.IMAP, mail_from=None, rcpt_tos=(),
                                         peer=f"imap:{mailbox.name}", tls=True)

    def new_messages(self, client: ImapClient, last_uid: int) -> list[ServerMessage]:
        """The messages of the selected folder above `last_uid`, in UID order, with sizes."""
        # "UID n:*" always matches the newest message, even one below n: keep only UIDs > n.
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"])
                      if uid > last_uid)
        if not uids:
            return []
        # A range, not the list: a first sync of a full folder would overflow the server's
        # command line limit (Dovecot: 64 KiB).
        sizes = client.fetch(f"{uids[0]}:{uids[-1]}", ["RFC822.SIZE"])
        wanted = set(uids)
        return [ServerMessage(uid, int(data[_SIZE])) for uid, data in sorted(sizes.items())
                if uid in wanted and isinstance(data.get(_SIZE), int)]

    def batches(self, messages: Sequence[ServerMessage]) -> Iterator[list[ServerMessage]]:
        """The messages in UID order, cut into FETCH-sized batches."""
        batch: list[ServerMessage] = []
        batch_bytes = 0
        for message in messages:
            size = message.size if message.size <= self.max_message_bytes else 0
            if batch and (len(batch) >= self.batch_messages
                          or batch_bytes + size > self.batch_bytes):
                yield batch
                batch, batch_bytes = [], 0
            batch.append(message)
            batch_bytes += size
        if batch:
            yield batch

    def store(self, client: ImapClient, uidvalidity: int,
              batch: Sequence[ServerMessage]) -> StoreOutcome:
        """Download and durably store the batch's messages that are within the size limit;
        record the others. Nothing is moved and no UID recorded here.

        When storing fails, the outcome holds the error and what was stored before it.
        """
        outcome = StoreOutcome()
        small = [message.uid for message in batch if message.size <= self.max_message_bytes]
        bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        for message in batch:
            raw = bodies.get(message.uid, {}).get(_BODY)
            if message.size > self.max_message_bytes or (
                    isinstance(raw, bytes) and len(raw) > self.max_message_bytes):
                size = len(raw) if isinstance(raw, bytes) else message.size
                self._leave_on_server(uidvalidity, message.uid, size)
                outcome.done.add(message.uid)
                continue
            if not isinstance(raw, bytes):
                # Expunged by someone else since we listed it, or a server hiccup: it is not
                # marked done, so the next catch-up looks for it again.
                log.warning("mailbox %s: message uid=%d of folder %r not returned by the "
                            "server; looking again later", self.mailbox.name, message.uid,
                            self.mailbox.folder)
                continue
            try:
                accepted = self.intake.accept_message(raw, self.envelope)
            except Exception as error:
                outcome.error = error
                return outcome
            log.info("mailbox %s: uid=%d stored sha256=%s size=%d duplicate=%s",
                     self.mailbox.name, message.uid, accepted.sha256, accepted.size,
                     accepted.duplicate)
            outcome.stored.append(message.uid)
            outcome.done.add(message.uid)
        return outcome

    def catch_up(self, client: ImapClient, position: FolderPosition, processed_folder: str,
                 move: str, keep_going: Callable[[], bool] = lambda: True,
                 ) -> tuple[FolderPosition, int]:
        """Store, move and record every new message of the selected folder (between
        batches, stop early when `keep_going` says so).

        Returns the new position and how many messages were stored. Raises (after moving
        and recording what was stored) when storing or the server fails.
        """
        messages = self.new_messages(client, position.last_uid)
        stored = 0
        gap = False  # a message not done yet: the last UID must stay below it
        for batch in self.batches(messages):
            if not keep_going():
                break
            outcome = self.store(client, position.uidvalidity, batch)
            move_messages(client, outcome.stored, processed_folder, move)
            stored += len(outcome.stored)
            last_uid = position.last_uid
            for message in batch:
                if gap or message.uid not in outcome.done:
                    gap = True
                    break
                last_uid = message.uid
            if last_uid != position.last_uid:
                position = replace(position, last_uid=last_uid)
                advance_folder(self.intake.database, self.mailbox.name, self.mailbox.folder,
                               position)
            if outcome.error is not None:
                raise outcome.error
        # Also the time of the last successful check, when nothing was new.
        advance_folder(self.intake.database, self.mailbox.name, self.mailbox.folder, position)
        return position, stored

    def _leave_on_server(self, uidvalidity: int, uid: int, size: int) -> None:
        first_time = record_oversized(self.intake.database, self.mailbox.name,
                                      self.mailbox.folder, uidvalidity=uidvalidity, uid=uid,
                                      size=size)
        if first_time:
            log.warning("mailbox %s: message uid=%d of folder %r is %d bytes, over the limit "
                        "of %d (smtp.max_message_bytes): left on the server, not stored",
                        self.mailbox.name, uid, self.mailbox.folder, size,
                        self.max_message_bytes)
