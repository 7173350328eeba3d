"""What retention finds and reports: the rule and kept-reason codes, an item to delete, an
item kept and why, a plan and a run's result; and the rows and exclusions an item is worked
out with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from storage import audit
from storage.blob_columns import DERIVED_STORE, EVIDENCE_STORE

CLOSED_CASE_RULE = "closed_case_days"
NOT_A_REPORT_RULE = "not_a_report_days"
# Why something past its period is kept.
KEPT_LEGAL_HOLD = "legal-hold"
KEPT_QUARANTINED = "message-quarantined"
KEPT_IN_PROGRESS = "message-in-progress"
KEPT_NOTE_ELSEWHERE = "message-named-by-a-note-of-another-case"

BlobRef = tuple[str, str]  # (store, sha256)


@dataclass(frozen=True)
class RetentionItem:
    """One expired thing: a case with everything of it, or one message without a case."""

    rule: str  # closed_case_days, not_a_report_days
    case_number: str | None
    message_sha256s: tuple[str, ...]
    counted_from: datetime  # the case's closed_at, the message's received_at
    retention_days: int
    counts: Mapping[str, int]
    blobs_to_delete: tuple[BlobRef, ...]
    blobs_kept_shared: tuple[BlobRef, ...]

    @property
    def due_at(self) -> datetime:
        """When the retention period ended."""
        return self.counted_from + timedelta(days=self.retention_days)

    def details(self) -> dict[str, Any]:
        """The tombstone's details: rule, dates, counts and hashes (never content)."""
        since = "closed_at" if self.rule == CLOSED_CASE_RULE else "received_at"
        return {"rule": self.rule, since: audit.format_utc(self.counted_from),
                "retention_days": self.retention_days, "counts": dict(self.counts),
                "message_sha256s": list(self.message_sha256s),
                "deleted_blobs": _by_store(self.blobs_to_delete),
                "kept_shared_blobs": _by_store(self.blobs_kept_shared)}


@dataclass(frozen=True)
class KeptItem:
    """Something past its retention period that is kept, and why."""

    case_number: str | None
    message_sha256: str | None
    reason: str  # one of the KEPT_ codes
    detail: str | None = None  # the hold's reason


@dataclass(frozen=True)
class RetentionPlan:
    """What a run at `now` would delete, in the order it would, and what it would keep."""

    now: datetime
    items: tuple[RetentionItem, ...]
    kept: tuple[KeptItem, ...]
    pending_file_deletions: int  # files an earlier run decided to delete but has not yet


@dataclass(frozen=True)
class RetentionResult:
    """What a run deleted and kept; `failed` names items whose transaction failed."""

    now: datetime
    deleted: tuple[RetentionItem, ...]
    kept: tuple[KeptItem, ...]
    failed: tuple[str, ...] = ()
    files_deleted: int = 0
    files_kept: int = 0  # files due for deletion that something referenced again


@dataclass(frozen=True)
class ItemRows:
    """The rows one item deletes: a case's (if any) and those of its messages."""

    case_id: int | None
    message_ids: frozenset[int]
    message_sha256s: tuple[str, ...]


@dataclass
class Exclusions:
    """Messages and cases treated as gone (earlier items of a plan) when looking for
    references and counting links."""

    ids: set[int] = field(default_factory=set)
    sha256s: set[str] = field(default_factory=set)
    case_ids: set[int] = field(default_factory=set)


def _by_store(blobs: Iterable[BlobRef]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {EVIDENCE_STORE: [], DERIVED_STORE: []}
    for store, sha256 in blobs:
        grouped.setdefault(store, []).append(sha256)
    return grouped
