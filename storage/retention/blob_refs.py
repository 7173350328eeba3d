"""Which blobs of either store rows name: all those of an item's rows, and those still
named by rows outside a set of exclusions; and the chunks long IN (…) lists are cut into."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import QueryableAttribute, Session

from storage.blob_columns import BLOB_COLUMNS
from storage.retention.items import BlobRef, Exclusions, ItemRows

# SHA-256s per IN (…) list: well below every database's limit on bound parameters.
_CHUNK = 500
_T = TypeVar("_T")
_Column = QueryableAttribute[Any]


def blobs_of(session: Session, rows: ItemRows) -> set[BlobRef]:
    """Every blob the item's rows name, in either store."""
    found: set[BlobRef] = set()
    for named in BLOB_COLUMNS:
        keys = sorted(rows.message_sha256s) if named.by_sha256 else sorted(rows.message_ids)
        for chunk in chunks(keys):
            found.update((named.store, sha256) for sha256 in session.execute(
                select(named.blob).where(named.message_key.in_(chunk),
                                         named.blob.is_not(None))).scalars())
    return found


def still_referenced(session: Session, blobs: Iterable[BlobRef],
                gone: Exclusions | None = None) -> set[BlobRef]:
    """The blobs a row names, not counting rows of the messages in `gone`."""
    gone = gone or Exclusions()
    wanted: dict[str, list[str]] = {}
    for store, sha256 in blobs:
        wanted.setdefault(store, []).append(sha256)
    found: set[BlobRef] = set()
    for named in BLOB_COLUMNS:
        excluded: set[Any] = set(gone.sha256s if named.by_sha256 else gone.ids)
        for chunk in chunks(sorted(wanted.get(named.store, ()))):
            # Filtered here, not with NOT IN: a plan's exclusions may be long.
            found.update((named.store, sha256) for sha256, owned_by in session.execute(
                select(named.blob, named.message_key).where(named.blob.in_(chunk)))
                if owned_by not in excluded)
    return found


def chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]
