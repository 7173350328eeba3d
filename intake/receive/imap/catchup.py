"""Take in one folder's new mail by UID: store each message, then move it, then advance.

The order is what keeps evidence safe. A message leaves the folder only after the accept
path returned for it (blob fsync'd, row committed); the folder's last UID moves on only after
the move. A crash in between fetches the message again, and the accept path, keyed by the raw
bytes' SHA-256, only counts it once more. A message over the size limit is never downloaded:
it stays on the server, recorded once.

A batch (one FETCH) is accepted together, `IntakeService.accept_messages`: its blobs are
fsync'd together and its rows committed in one transaction, all or none, which waits for the
disk a few times per batch instead of a few times per message. If that fails, the batch is
taken again one message at a time, so the messages before a failing one are still stored and
moved, and the rest wait in the folder for the next catch-up. While one batch is stored (in
a second thread), the next one downloads; batches are moved and recorded in order.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from intake.receive.accept import AcceptedMessage, IntakeService
from intake.receive.imap.connection import ImapClient
from intake.receive.imap.folders import move_messages
from intake.service.settings import ImapMailbox
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


@dataclass
class Download:
    """One batch as downloaded: the bodies to store, and what is settled already."""

    bodies: list[tuple[int, bytes]] = field(default_factory=list)  # (UID, raw), in UID order
    outcome: StoreOutcome = field(default_factory=StoreOutcome)  # done: left for their size


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
        return self.store_downloaded(self.download(client, uidvalidity, batch))

    def download(self, client: ImapClient, uidvalidity: int,
                 batch: Sequence[ServerMessage]) -> Download:
        """Fetch the bodies of the batch's messages that are within the size limit (one
        FETCH); record the others, left on the server, as done."""
        download = Download()
        small = [message.uid for message in batch if message.size <= self.max_message_bytes]
        bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        for message in batch:
            raw = bodies.get(message.uid, {}).get(_BODY)
            if message.size > self.max_message_bytes or (
                    isinstance(raw, bytes) and len(raw) > self.max_message_bytes):
                size = len(raw) if isinstance(raw, bytes) else message.size
                self._leave_on_server(uidvalidity, message.uid, size)
                download.outcome.done.add(message.uid)
            elif isinstance(raw, bytes):
                download.bodies.append((message.uid, raw))
            else:
                # Expunged by someone else since we listed it, or a server hiccup: it is not
                # marked done, so the next catch-up looks for it again.
                log.warning("mailbox %s: message uid=%d of folder %r not returned by the "
                            "server; looking again later", self.mailbox.name, message.uid,
                            self.mailbox.folder)
        return download

    def store_downloaded(self, download: Download) -> StoreOutcome:
        """Durably store a downloaded batch: all together, or, if that fails, one at a time
        up to the first that fails (its error in the outcome). Talks to no server."""
        outcome, fetched = download.outcome, download.bodies
        try:
            accepted = self.intake.accept_messages([raw for _uid, raw in fetched],
                                                   self.envelope)
        except Exception as error:
            # Only the error's type: its text could quote a header. If it was no passing
            # trouble, the first message that fails again ends the catch-up with it.
            log.warning("mailbox %s: storing %d messages together failed (%s); storing them "
                        "one at a time", self.mailbox.name, len(fetched),
                        type(error).__name__)
            return self._store_one_at_a_time(fetched, outcome)
        for (uid, _raw), stored in zip(fetched, accepted, strict=True):
            self._stored(uid, stored, outcome)
        return outcome

    def _store_one_at_a_time(self, fetched: Sequence[tuple[int, bytes]],
                             outcome: StoreOutcome) -> StoreOutcome:
        """Accept each message alone, in order, until one fails."""
        for uid, raw in fetched:
            try:
                accepted = self.intake.accept_message(raw, self.envelope)
            except Exception as error:
                outcome.error = error
                return outcome
            self._stored(uid, accepted, outcome)
        return outcome

    def _stored(self, uid: int, accepted: AcceptedMessage, outcome: StoreOutcome) -> None:
        log.info("mailbox %s: uid=%d stored sha256=%s size=%d duplicate=%s",
                 self.mailbox.name, uid, accepted.sha256, accepted.size, accepted.duplicate)
        outcome.stored.append(uid)
        outcome.done.add(uid)

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
        # The next batch downloads while the one before is being stored (blobs fsync'd, rows
        # committed) in a second thread, so the server and the disk are waited for at the
        # same time. Each batch still leaves the folder only after its own store returned,
        # and batches are moved and recorded in UID order. If a download fails meanwhile,
        # the batch being stored is not moved: the next catch-up fetches it again.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=(
                f"chikanemail-imap-store-{self.mailbox.name}")) as storer:
            storing: tuple[list[ServerMessage], Future[StoreOutcome]] | None = None
            for batch in self.batches(messages):
                if not keep_going():
                    break
                download = self.download(client, position.uidvalidity, batch)
                if storing is not None:
                    position, gap = self._move_and_record(client, position, gap, *storing,
                                                          processed_folder, move)
                    stored += len(storing[1].result().stored)
                # In this thread's context: its log fields (the mailbox) go along.
                storing = (batch, storer.submit(contextvars.copy_context().run,
                                                self.store_downloaded, download))
            if storing is not None:
                position, gap = self._move_and_record(client, position, gap, *storing,
                                                      processed_folder, move)
                stored += len(storing[1].result().stored)
        # Also the time of the last successful check, when nothing was new.
        advance_folder(self.intake.database, self.mailbox.name, self.mailbox.folder, position)
        return position, stored

    def _move_and_record(self, client: ImapClient, position: FolderPosition, gap: bool,
                         batch: Sequence[ServerMessage], storing: Future[StoreOutcome],
                         processed_folder: str, move: str) -> tuple[FolderPosition, bool]:
        """Wait until the batch is stored, move what was stored, record the last UID below
        the first message not done; raise the store's error after that."""
        outcome = storing.result()
        move_messages(client, outcome.stored, processed_folder, move)
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
        return position, gap

    def _leave_on_server(self, uidvalidity: int, uid: int, size: int) -> None:
        first_time = record_oversized(self.intake.database, self.mailbox.name,
                                      self.mailbox.folder, uidvalidity=uidvalidity, uid=uid,
                                      size=size)
        if first_time:
            log.warning("mailbox %s: message uid=%d of folder %r is %d bytes, over the limit "
                        "of %d (smtp.max_message_bytes): left on the server, not stored",
                        self.mailbox.name, uid, self.mailbox.folder, size,
                        self.max_message_bytes)
