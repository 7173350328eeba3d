"""Retention: delete what has been kept long enough, with its files; legal holds win.

What has expired at `now`:

- a closed case whose `closed_at + closed_case_days <= now`, unless it is on legal hold
  (`storage.holds`); open cases are never deleted;
- a processed message without a case that is `not-a-report` or automatic, whose
  `received_at + not_a_report_days <= now`.

Quarantined messages are never touched: an admin decides about them. A case with a
quarantined message, or with one still in the pipeline, is kept and the plan says why.

Each expired item (a case with everything of it, or one message) is deleted in one
transaction: its rows go, a `BlobDeletion` row is written for every blob of either store
that no remaining row references, and a `deleted-by-retention` event (the tombstone) records
the rule, dates, counts and hashes. A blob another case still references is kept. The files
are deleted after the commit, under the store's exclusive lock (writers hold its shared lock
from putting a blob until their row is committed) and only if nothing references them by
then; rows a crash left behind are finished by the next run. The audit log is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import QueryableAttribute, Session

from storage import audit
from storage.blob_columns import BLOB_COLUMNS, DERIVED_STORE, EVIDENCE_STORE
from storage.blobstore import BlobStore, BlobStoreError, fsync_directory
from storage.database import Database
from storage.models import (
    BlobDeletion,
    Case,
    CaseLink,
    CaseNote,
    CaseStatus,
    CaseStep,
    Evidence,
    Message,
    MessageKind,
    MessageState,
    MessageTimestamp,
    OutboxMail,
    PlanNotice,
    ReplyToken,
    utc_now,
)
from storage.settings import RetentionSettings

log = logging.getLogger("chikanemail.storage.retention")

CLOSED_CASE_RULE = "closed_case_days"
NOT_A_REPORT_RULE = "not_a_report_days"
TOMBSTONE_ACTION = "deleted-by-retention"
# Why something past its period is kept.
KEPT_LEGAL_HOLD = "legal-hold"
KEPT_QUARANTINED = "message-quarantined"
KEPT_IN_PROGRESS = "message-in-progress"
KEPT_NOTE_ELSEWHERE = "message-named-by-a-note-of-another-case"
# SHA-256s per IN (…) list: well below every database's limit on bound parameters.
_CHUNK = 500

BlobRef = tuple[str, str]  # (store, sha256)
_T = TypeVar("_T")
_Column = QueryableAttribute[Any]
# Deletes one expired case or message by its id: what went, why it stayed, or None.
_DeleteOne = Callable[[Database, int, RetentionSettings, datetime, str],
                      "RetentionItem | KeptItem | None"]

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
class _Rows:
    """The rows one item deletes: a case's (if any) and those of its messages."""

    case_id: int | None
    message_ids: frozenset[int]
    message_sha256s: tuple[str, ...]


@dataclass
class _Exclusions:
    """Messages and cases treated as gone (earlier items of a plan) when looking for
    references and counting links."""

    ids: set[int] = field(default_factory=set)
    sha256s: set[str] = field(default_factory=set)
    case_ids: set[int] = field(default_factory=set)


def plan_retention(database: Database, settings: RetentionSettings,
                   now: datetime) -> RetentionPlan:
    """What `apply_retention` at `now` would delete and keep; changes nothing."""
    items: list[RetentionItem] = []
    kept: list[KeptItem] = []
    gone = _Exclusions()  # earlier items of the plan: their blobs no longer count as shared
    with database.read() as session:
        found = [_case_item(session, case, settings, gone)
                 for case in _expired_cases(session, settings, now)]
        found += [_message_item(session, message, settings, gone)
                  for message in _expired_messages(session, settings, now)]
        for one in found:
            if isinstance(one, RetentionItem):
                items.append(one)
            else:
                kept.append(one)
        pending = session.execute(select(func.count()).select_from(BlobDeletion)).scalar_one()
    return RetentionPlan(now, tuple(items), tuple(kept), pending)


def apply_retention(database: Database, evidence_store: BlobStore, derived_store: BlobStore,
                    settings: RetentionSettings, now: datetime, *,
                    actor: str = audit.SYSTEM_ACTOR) -> RetentionResult:
    """Delete everything expired at `now` (one transaction per case or message), then the
    files no row references any more, also those a crashed run left."""
    with database.read() as session:
        case_ids = [case.id for case in _expired_cases(session, settings, now)]
        message_ids = [message.id for message in _expired_messages(session, settings, now)]
    deleted: list[RetentionItem] = []
    kept: list[KeptItem] = []
    failed: list[str] = []
    work: list[tuple[_DeleteOne, int, str]] = [
        (_delete_case, case_id, f"case id {case_id}") for case_id in case_ids]
    work += [(_delete_message, message_id, f"message id {message_id}")
             for message_id in message_ids]
    for delete_one, row_id, label in work:
        try:
            found = delete_one(database, row_id, settings, now, actor)
        except Exception as error:  # one bad item must not stop the others; next run retries
            log.error("retention could not delete %s: %s", label, type(error).__name__,
                      exc_info=error)
            failed.append(label)
            continue
        if isinstance(found, RetentionItem):
            deleted.append(found)
            _log_deleted(found)
        elif isinstance(found, KeptItem):
            kept.append(found)
            log.info("retention kept %s: %s", _kept_label(found), found.reason)
    files_deleted, files_kept = finish_blob_deletions(
        database, {EVIDENCE_STORE: evidence_store, DERIVED_STORE: derived_store})
    if deleted or files_deleted or failed:
        log.info("retention run: %d cases and %d messages deleted, %d kept, %d failed, "
                 "%d files deleted, %d files kept (referenced again)",
                 sum(1 for item in deleted if item.case_number is not None),
                 sum(1 for item in deleted if item.case_number is None), len(kept),
                 len(failed), files_deleted, files_kept)
    return RetentionResult(now, tuple(deleted), tuple(kept), tuple(failed), files_deleted,
                           files_kept)


def run_retention_if_enabled(database: Database, evidence_store: BlobStore,
                             derived_store: BlobStore, settings: RetentionSettings, *,
                             now: datetime | None = None) -> RetentionResult | None:
    """The scheduler's job: apply retention now when `[retention] enabled`, else nothing."""
    if not settings.enabled:
        log.debug("retention is disabled; nothing deleted")
        return None
    return apply_retention(database, evidence_store, derived_store, settings,
                           now or utc_now())


def finish_blob_deletions(database: Database,
                          stores: Mapping[str, BlobStore]) -> tuple[int, int]:
    """Delete the files of pending `BlobDeletion` rows that nothing references, and drop
    the rows (a referenced one is dropped and its file kept); return (deleted, kept)."""
    deleted = kept = 0
    for name, store in stores.items():
        with database.read() as session:
            pending = [(row_id, sha256) for row_id, sha256 in session.execute(
                select(BlobDeletion.id, BlobDeletion.sha256)
                .where(BlobDeletion.store == name).order_by(BlobDeletion.id))]
        for batch in _chunks(pending):
            done, removed, still_used = _delete_files(database, name, store, batch)
            deleted += removed
            kept += still_used
            if done:
                with database.write() as session:
                    session.execute(delete(BlobDeletion).where(BlobDeletion.id.in_(done)))
    return deleted, kept


# -- what has expired ---------------------------------------------------------------------

def _expired_cases(session: Session, settings: RetentionSettings, now: datetime) -> list[Case]:
    """Closed cases past their period, held ones included (the plan says they are kept)."""
    cutoff = now - timedelta(days=settings.closed_case_days)
    return list(session.execute(
        select(Case).where(Case.status == CaseStatus.CLOSED, Case.closed_at.is_not(None),
                           Case.closed_at <= cutoff)
        .order_by(Case.closed_at, Case.id)).scalars())


def _expired_messages(session: Session, settings: RetentionSettings,
                      now: datetime) -> list[Message]:
    """Processed messages without a case, not-a-report or automatic, past their period."""
    cutoff = now - timedelta(days=settings.not_a_report_days)
    return list(session.execute(
        select(Message).where(_message_expires(), Message.received_at <= cutoff)
        .order_by(Message.received_at, Message.id)).scalars())


def _message_expires() -> Any:
    """Which messages `not_a_report_days` applies to (quarantined ones never)."""
    return (Message.case_id.is_(None) & (Message.state == MessageState.PROCESSED)
            & or_(Message.kind == MessageKind.NOT_A_REPORT, Message.automatic.is_(True)))


def _case_item(session: Session, case: Case, settings: RetentionSettings,
               gone: _Exclusions) -> RetentionItem | KeptItem:
    """The case as an item to delete, or why it is kept."""
    if case.legal_hold:
        return KeptItem(case.number, None, KEPT_LEGAL_HOLD, case.hold_reason)
    messages = list(session.execute(
        select(Message).where(Message.case_id == case.id).order_by(Message.id)).scalars())
    states = {message.state for message in messages}
    if MessageState.QUARANTINED in states:
        return KeptItem(case.number, None, KEPT_QUARANTINED)
    if states & {MessageState.RECEIVED, MessageState.PROCESSING}:
        return KeptItem(case.number, None, KEPT_IN_PROGRESS)
    rows = _Rows(case.id, frozenset(m.id for m in messages), tuple(m.sha256 for m in messages))
    if _named_by_other_notes(session, rows):
        return KeptItem(case.number, None, KEPT_NOTE_ELSEWHERE)
    assert case.closed_at is not None  # _expired_cases selects closed cases only
    return _describe(session, CLOSED_CASE_RULE, case.number, case.closed_at,
                     settings.closed_case_days, rows, gone)


def _message_item(session: Session, message: Message, settings: RetentionSettings,
                  gone: _Exclusions) -> RetentionItem | KeptItem:
    """The message without a case as an item to delete, or why it is kept."""
    rows = _Rows(None, frozenset({message.id}), (message.sha256,))
    if _named_by_other_notes(session, rows):
        return KeptItem(None, message.sha256, KEPT_NOTE_ELSEWHERE)
    return _describe(session, NOT_A_REPORT_RULE, None, message.received_at,
                     settings.not_a_report_days, rows, gone)


def _named_by_other_notes(session: Session, rows: _Rows) -> bool:
    """Whether a note of another case points at one of these messages (its row must stay)."""
    statement = select(CaseNote.id).where(CaseNote.message_pk.in_(rows.message_ids))
    if rows.case_id is not None:
        statement = statement.where(CaseNote.case_id != rows.case_id)
    return session.execute(statement.limit(1)).first() is not None


def _describe(session: Session, rule: str, number: str | None, counted_from: datetime,
              days: int, rows: _Rows, gone: _Exclusions) -> RetentionItem:
    """Count the item's rows and sort its blobs into deleted and kept-shared; the item's
    messages join `gone`, so a later item of the same plan may delete a blob kept here."""
    counts = _counts(session, rows, gone)
    gone.ids |= rows.message_ids
    gone.sha256s |= set(rows.message_sha256s)
    if rows.case_id is not None:
        gone.case_ids.add(rows.case_id)
    candidates = _blobs_of(session, rows)
    shared = _referenced(session, candidates, gone)
    return RetentionItem(
        rule=rule, case_number=number, message_sha256s=rows.message_sha256s,
        counted_from=counted_from, retention_days=days, counts=counts,
        blobs_to_delete=tuple(sorted(candidates - shared)),
        blobs_kept_shared=tuple(sorted(shared)))


def _counts(session: Session, rows: _Rows, gone: _Exclusions) -> dict[str, int]:
    """How many rows of each kind the item deletes (links to cases in `gone` are gone)."""
    ids = rows.message_ids

    def count(model: Any, *conditions: Any) -> int:
        return int(session.execute(
            select(func.count()).select_from(model).where(or_(*conditions))).scalar_one())

    counts = {"messages": len(ids),
              "evidence": count(Evidence, Evidence.message_pk.in_(ids)),
              "timestamps": count(MessageTimestamp,
                                  MessageTimestamp.message_sha256.in_(rows.message_sha256s))}
    case_id = rows.case_id
    if case_id is not None:
        counts.update(
            notes=count(CaseNote, CaseNote.case_id == case_id),
            steps=count(CaseStep, CaseStep.case_id == case_id),
            outbox=count(OutboxMail, OutboxMail.case_id == case_id),
            notices=count(PlanNotice, PlanNotice.case_id == case_id),
            links=sum(1 for one, other in session.execute(
                select(CaseLink.case_id, CaseLink.other_case_id).where(
                    or_(CaseLink.case_id == case_id, CaseLink.other_case_id == case_id)))
                if one not in gone.case_ids and other not in gone.case_ids))
    return counts


# -- which blobs are whose ----------------------------------------------------------------

def _blobs_of(session: Session, rows: _Rows) -> set[BlobRef]:
    """Every blob the item's rows name, in either store."""
    found: set[BlobRef] = set()
    for named in BLOB_COLUMNS:
        keys = sorted(rows.message_sha256s) if named.by_sha256 else sorted(rows.message_ids)
        for chunk in _chunks(keys):
            found.update((named.store, sha256) for sha256 in session.execute(
                select(named.blob).where(named.message_key.in_(chunk),
                                         named.blob.is_not(None))).scalars())
    return found


def _referenced(session: Session, blobs: Iterable[BlobRef],
                gone: _Exclusions | None = None) -> set[BlobRef]:
    """The blobs a row names, not counting rows of the messages in `gone`."""
    gone = gone or _Exclusions()
    wanted: dict[str, list[str]] = {}
    for store, sha256 in blobs:
        wanted.setdefault(store, []).append(sha256)
    found: set[BlobRef] = set()
    for named in BLOB_COLUMNS:
        excluded: set[Any] = set(gone.sha256s if named.by_sha256 else gone.ids)
        for chunk in _chunks(sorted(wanted.get(named.store, ()))):
            # Filtered here, not with NOT IN: a plan's exclusions may be long.
            found.update((named.store, sha256) for sha256, owned_by in session.execute(
                select(named.blob, named.message_key).where(named.blob.in_(chunk)))
                if owned_by not in excluded)
    return found


# -- deleting -----------------------------------------------------------------------------

def _delete_case(database: Database, case_id: int, settings: RetentionSettings,
                 now: datetime, actor: str) -> RetentionItem | KeptItem | None:
    """Delete one expired case in one transaction; None if it changed meanwhile."""
    with database.write() as session:
        case = session.execute(
            select(Case).where(Case.id == case_id).with_for_update()).scalar_one_or_none()
        cutoff = now - timedelta(days=settings.closed_case_days)
        if (case is None or case.status != CaseStatus.CLOSED or case.closed_at is None
                or case.closed_at > cutoff):
            return None  # deleted by another daemon, or reopened
        # Lock the messages too: a delivery counting a copy of one waits, or sees it gone.
        session.execute(select(Message.id).where(Message.case_id == case_id).with_for_update())
        found = _case_item(session, case, settings, _Exclusions())
        if isinstance(found, RetentionItem):
            rows = _Rows(case_id, frozenset(session.execute(
                select(Message.id).where(Message.case_id == case_id)).scalars()),
                found.message_sha256s)
            _delete_rows(session, rows)
            _request_file_deletions(session, found.blobs_to_delete, now)
            audit.record(session, TOMBSTONE_ACTION, actor=actor, case_number=found.case_number,
                         details=found.details(), now=now)
        return found


def _delete_message(database: Database, message_id: int, settings: RetentionSettings,
                    now: datetime, actor: str) -> RetentionItem | KeptItem | None:
    """Delete one expired message without a case in one transaction; None if it changed."""
    with database.write() as session:
        message = session.execute(
            select(Message).where(Message.id == message_id, _message_expires())
            .with_for_update()).scalar_one_or_none()
        cutoff = now - timedelta(days=settings.not_a_report_days)
        if message is None or message.received_at > cutoff:
            return None  # gone, or it found a case meanwhile
        found = _message_item(session, message, settings, _Exclusions())
        if isinstance(found, RetentionItem):
            _delete_rows(session, _Rows(None, frozenset({message_id}), (message.sha256,)))
            _request_file_deletions(session, found.blobs_to_delete, now)
            audit.record(session, TOMBSTONE_ACTION, actor=actor, message_sha256=message.sha256,
                         details=found.details(), now=now)
        return found


def _delete_rows(session: Session, rows: _Rows) -> None:
    """Delete the item's rows, each before the rows it points at."""
    ids, case_id = rows.message_ids, rows.case_id
    if case_id is not None:
        outbox = select(OutboxMail.id).where(OutboxMail.case_id == case_id)
        session.execute(delete(PlanNotice).where(
            or_(PlanNotice.case_id == case_id, PlanNotice.outbox_id.in_(outbox))))
        session.execute(delete(OutboxMail).where(OutboxMail.case_id == case_id))
        session.execute(delete(CaseNote).where(CaseNote.case_id == case_id))
        session.execute(delete(CaseStep).where(CaseStep.case_id == case_id))
        session.execute(delete(CaseLink).where(
            or_(CaseLink.case_id == case_id, CaseLink.other_case_id == case_id)))
    session.execute(delete(MessageTimestamp).where(
        MessageTimestamp.message_sha256.in_(rows.message_sha256s)))
    _delete_evidence(session, ids)
    if case_id is not None:
        # A mail of another case may have come to one of this case's reply tokens.
        tokens = select(ReplyToken.id).where(ReplyToken.case_id == case_id)
        session.execute(update(Message).where(Message.reply_token_id.in_(tokens))
                        .values(reply_token_id=None)
                        .execution_options(synchronize_session=False))
    session.execute(delete(Message).where(Message.id.in_(ids)))
    if case_id is not None:
        session.execute(delete(ReplyToken).where(ReplyToken.case_id == case_id))
        session.execute(delete(Case).where(Case.id == case_id))


def _delete_evidence(session: Session, message_ids: frozenset[int]) -> None:
    """Delete the messages' evidence rows, children before their parents."""
    parents: dict[int, int | None] = {row_id: parent for row_id, parent in session.execute(
        select(Evidence.id, Evidence.parent_id).where(Evidence.message_pk.in_(message_ids)))}
    while parents:
        leaves = (set(parents) - set(parents.values())) or set(parents)  # no loop on a cycle
        for chunk in _chunks(sorted(leaves)):
            session.execute(delete(Evidence).where(Evidence.id.in_(chunk)))
        parents = {row: parent for row, parent in parents.items() if row not in leaves}


def _request_file_deletions(session: Session, blobs: Sequence[BlobRef], now: datetime) -> None:
    """Write a `BlobDeletion` row per blob (one may be pending already) in the transaction."""
    if not blobs:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(BlobDeletion).values([{"store": store, "sha256": sha256, "requested_at": now}
                                     for store, sha256 in blobs])
        .on_conflict_do_nothing(index_elements=["store", "sha256"]))


def _delete_files(database: Database, name: str, store: BlobStore,
                  batch: Sequence[tuple[int, str]]) -> tuple[list[int], int, int]:
    """Under the store's exclusive lock: delete each unreferenced file of the batch; return
    the rows settled, files deleted, and files kept because a row names them again."""
    done: list[int] = []
    deleted = kept = 0
    with store.exclusive_lock():
        # Every writer that found one of these blobs stored has committed its row by now.
        with database.read() as session:
            referenced = {sha256 for _, sha256 in
                          _referenced(session, [(name, sha256) for _, sha256 in batch])}
        directories: set[Path] = set()
        for row_id, sha256 in batch:
            if sha256 in referenced:
                kept += 1
                done.append(row_id)
                log.info("retention kept blob store=%s sha256=%s: referenced again",
                         name, sha256)
                continue
            try:
                path = store.path(sha256)
                _unlink_blob(path)
            except (OSError, BlobStoreError) as error:  # left pending for the next run
                log.error("retention could not delete blob store=%s sha256=%s: %s", name,
                          sha256, error)
                continue
            directories.add(path.parent)
            deleted += 1
            done.append(row_id)
        for directory in sorted(directories):
            fsync_directory(directory)
    return done, deleted, kept


def _unlink_blob(path: Path) -> None:
    """Remove one blob file (already gone after a crash: fine). A read-only file in a
    directory we own can be unlinked."""
    path.unlink(missing_ok=True)


# -- small helpers ------------------------------------------------------------------------

def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _by_store(blobs: Iterable[BlobRef]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {EVIDENCE_STORE: [], DERIVED_STORE: []}
    for store, sha256 in blobs:
        grouped.setdefault(store, []).append(sha256)
    return grouped


def _kept_label(kept: KeptItem) -> str:
    return (f"case {kept.case_number}" if kept.case_number is not None
            else f"message sha256={kept.message_sha256}")


def _log_deleted(item: RetentionItem) -> None:
    counts = " ".join(f"{name}={value}" for name, value in sorted(item.counts.items()))
    subject = (f"case {item.case_number}" if item.case_number is not None
               else f"message sha256={item.message_sha256s[0]}")
    log.info("retention deleted %s rule=%s %s blobs_deleted=%d blobs_kept_shared=%d",
             subject, item.rule, counts, len(item.blobs_to_delete),
             len(item.blobs_kept_shared))
