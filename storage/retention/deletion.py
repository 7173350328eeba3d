"""Deleting what has expired: the run (also the scheduler's), each case or message in its
own transaction with its rows, a `BlobDeletion` request per blob no other row names, and the
tombstone event; the files are deleted after the commit (`storage.retention.files`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage import audit
from storage.blob_columns import DERIVED_STORE, EVIDENCE_STORE
from storage.blobstore import BlobStore
from storage.database import Database
from storage.models import (
    BlobDeletion,
    Case,
    CaseLink,
    CaseNote,
    CaseRegistration,
    CaseStatus,
    CaseStep,
    Evidence,
    Message,
    MessageTimestamp,
    OutboxMail,
    PlanNotice,
    ReplyToken,
    StatusLink,
    utc_now,
)
from storage.retention.blob_refs import chunks
from storage.retention.expiry import (
    case_item,
    expired_cases,
    expired_messages,
    message_expires,
    message_item,
)
from storage.retention.files import finish_blob_deletions
from storage.retention.items import (
    BlobRef,
    Exclusions,
    ItemRows,
    KeptItem,
    RetentionItem,
    RetentionResult,
)
from storage.settings import RetentionSettings

log = logging.getLogger("chikanemail.storage.retention")

TOMBSTONE_ACTION = "deleted-by-retention"
# Deletes one expired case or message by its id: what went, why it stayed, or None.
_DeleteOne = Callable[[Database, int, RetentionSettings, datetime, str],
                      "RetentionItem | KeptItem | None"]


def apply_retention(database: Database, evidence_store: BlobStore, derived_store: BlobStore,
                    settings: RetentionSettings, now: datetime, *,
                    actor: str = audit.SYSTEM_ACTOR) -> RetentionResult:
    """Delete everything expired at `now` (one transaction per case or message), then the
    files no row references any more, also those a crashed run left."""
    with database.read() as session:
        case_ids = [case.id for case in expired_cases(session, settings, now)]
        message_ids = [message.id for message in expired_messages(session, settings, now)]
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
        found = case_item(session, case, settings, Exclusions())
        if isinstance(found, RetentionItem):
            rows = ItemRows(case_id, frozenset(session.execute(
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
            select(Message).where(Message.id == message_id, message_expires())
            .with_for_update()).scalar_one_or_none()
        cutoff = now - timedelta(days=settings.not_a_report_days)
        if message is None or message.received_at > cutoff:
            return None  # gone, or it found a case meanwhile
        found = message_item(session, message, settings, Exclusions())
        if isinstance(found, RetentionItem):
            _delete_rows(session, ItemRows(None, frozenset({message_id}), (message.sha256,)))
            _request_file_deletions(session, found.blobs_to_delete, now)
            audit.record(session, TOMBSTONE_ACTION, actor=actor, message_sha256=message.sha256,
                         details=found.details(), now=now)
        return found


def _delete_rows(session: Session, rows: ItemRows) -> None:
    """Delete the item's rows, each before the rows it points at."""
    ids, case_id = rows.message_ids, rows.case_id
    if case_id is not None:
        outbox = select(OutboxMail.id).where(OutboxMail.case_id == case_id)
        session.execute(delete(PlanNotice).where(
            or_(PlanNotice.case_id == case_id, PlanNotice.outbox_id.in_(outbox))))
        session.execute(delete(OutboxMail).where(OutboxMail.case_id == case_id))
        session.execute(delete(CaseNote).where(CaseNote.case_id == case_id))
        session.execute(delete(CaseStep).where(CaseStep.case_id == case_id))
        session.execute(delete(CaseRegistration).where(CaseRegistration.case_id == case_id))
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
        session.execute(delete(StatusLink).where(StatusLink.case_id == case_id))
        session.execute(delete(Case).where(Case.id == case_id))


def _delete_evidence(session: Session, message_ids: frozenset[int]) -> None:
    """Delete the messages' evidence rows, children before their parents."""
    parents: dict[int, int | None] = {row_id: parent for row_id, parent in session.execute(
        select(Evidence.id, Evidence.parent_id).where(Evidence.message_pk.in_(message_ids)))}
    while parents:
        leaves = (set(parents) - set(parents.values())) or set(parents)  # no loop on a cycle
        for chunk in chunks(sorted(leaves)):
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
