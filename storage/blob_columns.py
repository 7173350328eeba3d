"""Every column that names a blob, in one list: verify checks each named blob exists, and
retention keeps a blob while any of these still names it. A new column naming a blob belongs
here, or verify will call its blob a stray and retention may delete a file still needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import QueryableAttribute

from storage.models import Evidence, Message, MessageTimestamp

# The two stores, by the names rows, deletions and reports use.
EVIDENCE_STORE = "blobs"
DERIVED_STORE = "derived"

_Column = QueryableAttribute[Any]


@dataclass(frozen=True)
class BlobColumn:
    """A column naming a blob in `store`; its row belongs to the message that
    `message_key` names (by the message's id, or by its raw SHA-256 when `by_sha256`)."""

    store: str
    blob: _Column
    row_id: _Column
    message_key: _Column
    by_sha256: bool = False
    size: _Column | None = None  # what the row says the blob's size is, where it says so

    @property
    def table(self) -> str:
        """The table the column is in."""
        return str(self.blob.class_.__tablename__)

    @property
    def name(self) -> str:
        """The column's name."""
        return self.blob.key


BLOB_COLUMNS: tuple[BlobColumn, ...] = (
    BlobColumn(EVIDENCE_STORE, Message.sha256, Message.id, Message.id, size=Message.size),
    BlobColumn(EVIDENCE_STORE, Evidence.sha256, Evidence.id, Evidence.message_pk,
               size=Evidence.size),
    BlobColumn(DERIVED_STORE, Message.body_text_sha256, Message.id, Message.id),
    BlobColumn(DERIVED_STORE, Evidence.text_sha256, Evidence.id, Evidence.message_pk),
    BlobColumn(DERIVED_STORE, Evidence.thumbnail_sha256, Evidence.id, Evidence.message_pk),
    BlobColumn(DERIVED_STORE, Evidence.ocr_sha256, Evidence.id, Evidence.message_pk),
    BlobColumn(DERIVED_STORE, MessageTimestamp.token_sha256, MessageTimestamp.id,
               MessageTimestamp.message_sha256, by_sha256=True),
)
