"""The one durable accept path every receiver uses: blob first, then the committed row.

A receiver may say "accepted" (SMTP 250, IMAP move) only after `accept_message` returns:
by then the raw bytes are fsync'd in the store and the row is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from intake.addresses import SenderPolicy
from intake.headers import summarize_headers
from storage.blobstore import BlobStore
from storage.database import Database
from storage.messages import DeliveryEnvelope, record_delivery
from storage.models import QuarantineReason

log = logging.getLogger("chikanemail.intake.accept")


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
        sha256 = self.store.put(raw)
        foreign = not self.senders.admits(envelope.mail_from) and envelope.source != "ingest"
        recorded = record_delivery(
            self.database,
            sha256=sha256,
            size=len(raw),
            envelope=envelope,
            headers=summarize_headers(raw),
            quarantine_reason=QuarantineReason.FOREIGN_SENDER if foreign else None,
        )
        log.info(
            "message stored sha256=%s size=%d source=%s id=%d duplicate=%s times_seen=%d%s",
            sha256, len(raw), envelope.source, recorded.message_pk, recorded.duplicate,
            recorded.times_seen, " quarantined=foreign-sender" if foreign else "",
        )
        if self._on_stored is not None and not recorded.duplicate:
            self._on_stored()
        return AcceptedMessage(
            sha256=sha256,
            message_pk=recorded.message_pk,
            size=len(raw),
            duplicate=recorded.duplicate,
            times_seen=recorded.times_seen,
            quarantined=foreign,
        )
