"""The one durable accept path every receiver uses: blob first, then the committed row.

A receiver may say "accepted" (SMTP 250, IMAP move) only after `accept_message` (a message
held in memory), `accept_messages` (several, all or none) or `accept_spooled` (one streamed
into a `BlobWriter`) returns: by then the raw bytes are fsync'd in the store and the row is
committed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from intake.parse.headers import summarize_headers
from intake.receive.addresses import SenderPolicy
from storage.blobstore import BlobStore, BlobWriter
from storage.database import Database
from storage.log_context import log_fields
from storage.messages import (
    DeliveryEnvelope,
    HeaderSummary,
    NewDelivery,
    RecordedDelivery,
    record_deliveries,
    record_delivery,
)
from storage.models import MessageSource, QuarantineReason

log = logging.getLogger("chikanemail.intake.accept")

# How much of a message's beginning `summarize_headers` reads at most.
HEAD_BYTES = 1024 * 1024
# The blank line that ends a header block, as `summarize_headers` finds it.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# A match of _HEADER_END is at most this long: bytes past a match that settle it.
_HEADER_END_SPAN = 4


class MessageHead:
    """The beginning of a message that arrives in pieces: enough for `summarize_headers`.

    It keeps the header block and a few bytes after it, or the first `HEAD_BYTES` when no
    blank line comes before; `summarize_headers` reads the same values from it as from the
    whole message, and a large message does not sit in memory twice.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._search_from = 0
        self.complete = False

    def add(self, piece: bytes | bytearray) -> None:
        """Append the next piece of the message (ignored once the head is complete)."""
        if self.complete:
            return
        self._data += piece[: HEAD_BYTES - len(self._data)]
        match = _HEADER_END.search(self._data, self._search_from)
        if match is not None and match.end() + _HEADER_END_SPAN <= len(self._data):
            # Enough bytes after the blank line that more could not change the match.
            del self._data[match.end() + _HEADER_END_SPAN:]
            self.complete = True
        elif len(self._data) >= HEAD_BYTES:
            self.complete = True
        else:
            # Only a match near the end can still change: search again from there.
            near_end = max(0, len(self._data) - _HEADER_END_SPAN + 1)
            self._search_from = near_end if match is None else min(match.start(), near_end)

    def __bytes__(self) -> bytes:
        return bytes(self._data)


@dataclass(frozen=True)
class AcceptedMessage:
    """The result of accepting one raw message."""

    sha256: str
    message_pk: int
    size: int
    duplicate: bool
    times_seen: int
    quarantined: bool


class IntakeService:
    """Stores raw messages durably and wakes the worker; safe to call from several threads."""

    def __init__(
        self,
        store: BlobStore,
        database: Database,
        senders: SenderPolicy,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.database = database
        self.senders = senders
        self._on_stored = on_stored

    def accept_message(self, raw: bytes, envelope: DeliveryEnvelope) -> AcceptedMessage:
        """Keep the exact bytes as a blob and commit their row; raises if either fails."""
        # Until the row is committed nothing references the blob: if `put` found it already
        # stored, retention must not delete it meanwhile (it waits for this shared lock).
        with self.store.shared_lock():
            sha256 = self.store.put(raw)
            return self._record(sha256, len(raw), raw, envelope)

    def accept_messages(
        self, raws: Sequence[bytes], envelope: DeliveryEnvelope
    ) -> list[AcceptedMessage]:
        """Accept several messages that arrived the same way, all or none, in order.

        The same as `accept_message` for each in turn, with less waiting for the disk: the
        blobs are written and fsync'd together (`BlobStore.put_many`), then every row is
        committed in one transaction. When it raises, no row was committed; blobs already
        written are unreferenced until their bytes come again.
        """
        if not raws:
            return []
        with self.store.shared_lock():  # as in `accept_message`, until the rows are committed
            names = self.store.put_many(raws)
            summaries = [summarize_headers(raw) for raw in raws]
            foreign = [self._is_foreign(envelope, headers) for headers in summaries]
            deliveries = [
                NewDelivery(sha256, len(raw), headers,
                            QuarantineReason.FOREIGN_SENDER if is_foreign else None)
                for sha256, raw, headers, is_foreign in zip(names, raws, summaries, foreign,
                                                            strict=True)
            ]
            recorded = record_deliveries(self.database, deliveries, envelope=envelope)
            accepted = [self._accepted(delivery, envelope, row)
                        for delivery, row in zip(deliveries, recorded, strict=True)]
            if self._on_stored is not None and not all(row.duplicate for row in recorded):
                self._on_stored()
            return accepted

    def accept_spooled(
        self, writer: BlobWriter, head: bytes, envelope: DeliveryEnvelope
    ) -> AcceptedMessage:
        """Make a fully written spool a blob (fsync, rename to its SHA-256, read-only) and
        commit its row; raises if either fails, and then no work file is left behind.

        `head` is the message's beginning (at least its header block, or `HEAD_BYTES`).
        """
        # As in `accept_message`: retention may not delete the blob before its row exists.
        with self.store.shared_lock():
            with writer:
                sha256 = writer.commit()
            return self._record(sha256, writer.size, head, envelope)

    def _is_foreign(self, envelope: DeliveryEnvelope, headers: HeaderSummary) -> bool:
        """Whether the sender's domain is outside `allowed_sender_domains`.

        SMTP and LMTP judge the envelope sender; IMAP has none, so the From header is judged;
        files an admin ingests are trusted.
        """
        if envelope.source == MessageSource.INGEST:
            return False
        if envelope.source == MessageSource.IMAP:
            return not self.senders.admits(headers.from_address)
        return not self.senders.admits(envelope.mail_from)

    def _record(
        self, sha256: str, size: int, head: bytes, envelope: DeliveryEnvelope
    ) -> AcceptedMessage:
        """Commit the row of a stored blob and wake the worker for a new message."""
        with log_fields(sha256=sha256):
            return self._record_row(sha256, size, head, envelope)

    def _record_row(
        self, sha256: str, size: int, head: bytes, envelope: DeliveryEnvelope
    ) -> AcceptedMessage:
        headers = summarize_headers(head)
        foreign = self._is_foreign(envelope, headers)
        delivery = NewDelivery(sha256, size, headers,
                               QuarantineReason.FOREIGN_SENDER if foreign else None)
        recorded = record_delivery(
            self.database,
            sha256=sha256,
            size=size,
            envelope=envelope,
            headers=headers,
            quarantine_reason=delivery.quarantine_reason,
        )
        accepted = self._accepted(delivery, envelope, recorded)
        if self._on_stored is not None and not recorded.duplicate:
            self._on_stored()
        return accepted

    def _accepted(
        self, delivery: NewDelivery, envelope: DeliveryEnvelope, recorded: RecordedDelivery
    ) -> AcceptedMessage:
        """Log a committed delivery and describe it to the receiver."""
        foreign = delivery.quarantine_reason is not None
        with log_fields(sha256=delivery.sha256):
            log.info(
                "message stored sha256=%s size=%d source=%s id=%d duplicate=%s "
                "times_seen=%d%s",
                delivery.sha256, delivery.size, envelope.source, recorded.message_pk,
                recorded.duplicate, recorded.times_seen,
                " quarantined=foreign-sender" if foreign else "",
            )
        return AcceptedMessage(
            sha256=delivery.sha256,
            message_pk=recorded.message_pk,
            size=delivery.size,
            duplicate=recorded.duplicate,
            times_seen=recorded.times_seen,
            quarantined=foreign,
        )
