"""SQLAlchemy models: the same tables on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


class MessageState(enum.StrEnum):
    """Where a received message is in its life."""

    RECEIVED = "received"  # stored and committed; waiting for the worker
    PROCESSING = "processing"  # claimed by a worker
    PROCESSED = "processed"  # every pipeline step finished
    QUARANTINED = "quarantined"  # kept out of cases: a foreign sender, or steps kept failing


class MessageSource(enum.StrEnum):
    """How a message reached the service."""

    SMTP = "smtp"
    LMTP = "lmtp"
    IMAP = "imap"
    INGEST = "ingest"


class QuarantineReason(enum.StrEnum):
    """Why a message is quarantined."""

    FOREIGN_SENDER = "foreign-sender"
    PROCESSING_FAILED = "processing-failed"


class Message(Base):
    """One received mail: its raw bytes are the blob named by `sha256`."""

    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("sha256", name="uq_message_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))
    # Envelope of the first delivery; later deliveries of the same bytes only count.
    mail_from: Mapped[str | None] = mapped_column(Text)
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON)
    peer: Mapped[str | None] = mapped_column(Text)
    helo: Mapped[str | None] = mapped_column(Text)
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    # Taken from the header block at intake (metadata only; the blob is the authority).
    message_id: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    quarantine_reason: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_until: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    # Set by extraction (issue 3); all derived from the raw blob and rebuilt by `reprocess`.
    extracted_at: Mapped[datetime | None]
    # Each {"defect": name, "parsers": [...]}; a plain name on rows from before (storage.defects).
    defects: Mapped[list[Any] | None] = mapped_column(JSON)
    body_text_sha256: Mapped[str | None] = mapped_column(String(64))
    received_chain: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    sender_ip: Mapped[str | None] = mapped_column(String(64))
    original_rule: Mapped[str | None] = mapped_column(String(64))
    original_from_name: Mapped[str | None] = mapped_column(Text)
    original_from_address: Mapped[str | None] = mapped_column(Text)
    original_date: Mapped[datetime | None]
    # The inline forward's date line named no zone: original_date is that wall-clock time
    # read in the workplace's zone (issue 16), and every view says so beside the raw text.
    original_date_zone_assumed: Mapped[bool] = mapped_column(Boolean, default=False)
    original_date_raw: Mapped[str | None] = mapped_column(Text)
    original_subject: Mapped[str | None] = mapped_column(Text)
    original_to: Mapped[str | None] = mapped_column(Text)
    original_message_id: Mapped[str | None] = mapped_column(Text)
    # Set by case handling (issue 4).
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    kind: Mapped[str | None] = mapped_column(String(32))  # a MessageKind
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    from_address: Mapped[str | None] = mapped_column(Text)  # the header From, lower-cased
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    reference_ids: Mapped[list[str] | None] = mapped_column(JSON)  # References header
    # Who the mail is proven to be from (issue 15), decided once and never re-run:
    # `sender_check` is a SenderCheck code ("dkim-pass", "authserv-pass", "dkim-fail",
    # "no-signature", "not-aligned", "several-from", "dns-temporary", "not-checked", …);
    # `sender_authenticated` says whether it authenticates the From address.
    sender_check: Mapped[str | None] = mapped_column(String(32))
    sender_authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    # The live or retired reply token the mail came to, if any.
    reply_token_id: Mapped[int | None] = mapped_column(ForeignKey("reply_token.id"))
    # True when the mail claims a role on its case (reporter's follow-up, manager's reply)
    # that it could not prove: kept as evidence, changed nothing.
    unverified: Mapped[bool] = mapped_column(Boolean, default=False)


class ImapFolderState(Base):
    """How far a mailbox folder has been taken in: its UIDVALIDITY and the last UID stored."""

    __tablename__ = "imap_folder_state"
    __table_args__ = (UniqueConstraint("mailbox", "folder", name="uq_imap_folder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox: Mapped[str] = mapped_column(String(255))
    folder: Mapped[str] = mapped_column(Text)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ImapOversized(Base):
    """A message left on the server because it is over max_message_bytes (recorded once)."""

    __tablename__ = "imap_oversized"
    __table_args__ = (UniqueConstraint("mailbox", "folder", "uidvalidity", "uid",
                                       name="uq_imap_oversized"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox: Mapped[str] = mapped_column(String(255))
    folder: Mapped[str] = mapped_column(Text)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime]


class MessageKind(enum.StrEnum):
    """What a processed message is to the case it belongs to (or why it has none)."""

    REPORT = "report"  # opened a case
    FOLLOW_UP = "follow-up"  # the reporter added to their case
    NOTE = "note"  # the case's manager or deputy wrote
    AUTOMATIC = "automatic"  # an auto-reply or bounce that threads to a case
    NOT_A_REPORT = "not-a-report"  # automatic mail that threads to nothing


class CaseStatus(enum.StrEnum):
    """Where a case is."""

    OPEN = "open"
    CLOSED = "closed"


class Case(Base):
    """One report of harassment and everything that followed it."""

    __tablename__ = "case_file"  # "case" is an SQL keyword
    # Listings go newest first: by (year, sequence), and by status then (year, sequence).
    __table_args__ = (
        UniqueConstraint("year", "sequence", name="uq_case_file_year_sequence"),
        Index("ix_case_file_status_year_sequence", "status", "year", "sequence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)  # YYYY-NNNN
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reporter: Mapped[str] = mapped_column(Text)
    reporter_name: Mapped[str | None] = mapped_column(Text)
    manager: Mapped[str] = mapped_column(Text)
    deputy: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    routing_source: Mapped[str] = mapped_column(String(16))  # rule, directory, default
    routing_reason: Mapped[str] = mapped_column(Text)  # English; shown when params is NULL
    # The line or rule that decided, for storage.routing_words (NULL on cases before 0010).
    routing_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(Text)
    # What the registration needs (issue 6).
    relation: Mapped[str] = mapped_column(String(16), default="unknown")  # a HarasserRelation
    medium: Mapped[str | None] = mapped_column(String(16))  # a Medium
    first_absence_day: Mapped[date | None] = mapped_column(Date)
    witnesses: Mapped[list[str]] = mapped_column(JSON, default=list)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    # 0: nobody told beyond the manager; 1: the deputy; 2: the default manager.
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    # A legal hold (issue 7) keeps the case past its retention period until it is lifted.
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    held_at: Mapped[datetime | None]
    held_by: Mapped[str | None] = mapped_column(Text)
    # The report's From could not be vouched for: no receipt went out (issue 15).
    sender_unverified: Mapped[bool] = mapped_column(Boolean, default=False)
    # Copied from the newest registration (issue 22), for the statistics; NULL until the
    # case is registered. `relation` above stays the coarse value derived from the detail.
    registration_version: Mapped[int | None] = mapped_column(Integer)
    relation_detail: Mapped[str | None] = mapped_column(String(32))  # storage.registration_codes
    harassment_type: Mapped[str | None] = mapped_column(String(32))
    absence: Mapped[str | None] = mapped_column(String(32))  # none, sick-leave, other-absence, …
    # The work-accident report to Arbejdstilsynet through EASY, once the manager has made it.
    easy_case_number: Mapped[str | None] = mapped_column(String(64))
    easy_reported_on: Mapped[date | None] = mapped_column(Date)
    easy_recorded_at: Mapped[datetime | None]
    easy_recorded_by: Mapped[str | None] = mapped_column(Text)


# The web view's access rule compares addresses case-folded (revision 0012).
Index("ix_case_file_manager_lower", func.lower(Case.manager))
Index("ix_case_file_deputy_lower", func.lower(Case.deputy))
# The statistics count cases by the month they were opened, from this index alone
# (revision 0015).
Index("ix_case_file_statistics", Case.opened_at, Case.harassment_type, Case.medium,
      Case.relation_detail, Case.absence, Case.acknowledged_at, Case.closed_at)


class ReplyToken(Base):
    """A secret reply address's token, issued for one case (or none: a digest) and one
    person, kept only as its SHA-256; live until `retired_at` is set."""

    __tablename__ = "reply_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    address: Mapped[str] = mapped_column(Text)  # case-folded
    kind: Mapped[str] = mapped_column(String(32))  # the mail it was issued with
    issued_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    retired_reason: Mapped[str | None] = mapped_column(String(32))  # closed, reassigned, …


class HarasserRelation(enum.StrEnum):
    """Who the harasser is to the workplace: it decides which guidance applies."""

    EXTERNAL = "external"  # a citizen, a parent: violence (AT guidance D.4.3)
    COLLEAGUE = "colleague"  # krænkende handlinger (AT guidance 4.3.1)
    UNKNOWN = "unknown"


class Medium(enum.StrEnum):
    """Where the harassment happened."""

    MAIL = "mail"
    SMS = "sms"
    SOCIAL_MEDIA = "social-media"
    OTHER = "other"


class CaseRegistration(Base):
    """One saved version of a case's registration (issue 22): the fields of the Danish
    guidance's registration template as JSON. Every save is a new row; none is changed."""

    __tablename__ = "case_registration"
    __table_args__ = (UniqueConstraint("case_id", "version", name="uq_case_registration"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, … per case
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)  # storage.registrations
    # SHA-256 of the fields' canonical JSON; the version's audit event holds it too.
    fields_sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class CaseStep(Base):
    """One step of the response plan on one case: copied from the plan when the case opened,
    so a later change of the plan leaves open cases as they were."""

    __tablename__ = "case_step"
    __table_args__ = (UniqueConstraint("case_id", "key", name="uq_case_step_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1-based: "trin 2" is position 2
    key: Mapped[str] = mapped_column(String(64))
    title_da: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    description_da: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(16))  # manager, reporter, safety_rep, hr
    due: Mapped[str | None] = mapped_column(String(32))  # ISO 8601 duration as configured
    working_days: Mapped[bool] = mapped_column(Boolean, default=False)
    due_after: Mapped[str] = mapped_column(String(32))  # intake, first_absence_day
    due_at: Mapped[datetime | None]  # None until the event it counts from is known
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(Text)


# The case list's "a step overdue" reads only the steps not done (revision 0012).
Index("ix_case_step_open_due", CaseStep.case_id, CaseStep.due_at,
      sqlite_where=CaseStep.done_at.is_(None), postgresql_where=CaseStep.done_at.is_(None))


class PlanNotice(Base):
    """A reminder, escalation or digest the scheduler has dealt with: written with its outbox
    row in one transaction, unique by (kind, key), so nothing is sent twice or forgotten."""

    __tablename__ = "plan_notice"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_plan_notice"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # reminder, escalation, digest
    key: Mapped[str] = mapped_column(String(255))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    recipient: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    # True when a later notice of the same step made this one pointless (after a downtime).
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)


class CaseLink(Base):
    """Two cases that look related (same sender, domain or screenshot); stored both ways."""

    __tablename__ = "case_link"
    __table_args__ = (UniqueConstraint("case_id", "other_case_id", "reason",
                                       name="uq_case_link"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    other_case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    reason: Mapped[str] = mapped_column(String(16))  # sender, domain, image
    detail: Mapped[str] = mapped_column(Text)  # the address, the domain, the image distance
    created_at: Mapped[datetime]


class CaseCounter(Base):
    """The last case number given out in a year: numbers are gap-free and unique."""

    __tablename__ = "case_counter"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(Integer)


class CaseNote(Base):
    """A note on a case: from a manager's mail, or typed in with the CLI."""

    __tablename__ = "case_note"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    author: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)  # a coded note's English words
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    created_at: Mapped[datetime]
    # A note the system writes: its code and parameters, read in the reader's language
    # (storage.note_words); NULL for a person's own words and for notes before 0010.
    code: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class OutboxState(enum.StrEnum):
    """Where an outgoing mail is."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMail(Base):
    """One outgoing mail, rendered in full (Message-ID included) when the row is written,
    so a retry after a crash sends the very same mail."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # receipt, notification, …
    mail_from: Mapped[str] = mapped_column(Text)
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    deadline_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]


class EvidenceRole(enum.StrEnum):
    """What a part of a message is."""

    BODY = "body"
    ATTACHMENT = "attachment"
    INLINE = "inline"
    NESTED_MESSAGE = "nested-message"
    CONTAINER_PART = "container-part"


class Evidence(Base):
    """One part of a received message, kept as its own blob (the SHA-256 of its decoded bytes).

    `part_path` names the part's place in the message (`1`, `2.1`, `3.c2` for the second item
    of a container) and is stable, so re-extraction updates rows instead of duplicating them.
    """

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("message_pk", "part_path", name="uq_evidence_part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    part_path: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"))
    role: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    declared_type: Mapped[str | None] = mapped_column(Text)
    sniffed_type: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    content_id: Mapped[str | None] = mapped_column(Text)
    disposition: Mapped[str | None] = mapped_column(String(32))
    transfer_encoding: Mapped[str | None] = mapped_column(String(64))
    charset: Mapped[str | None] = mapped_column(String(64))
    defects: Mapped[list[Any]] = mapped_column(JSON)  # as Message.defects
    flags: Mapped[list[str]] = mapped_column(JSON)
    text_sha256: Mapped[str | None] = mapped_column(String(64))
    image: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64))
    dhash: Mapped[str | None] = mapped_column(String(16))
    ocr_status: Mapped[str | None] = mapped_column(String(16))
    ocr_sha256: Mapped[str | None] = mapped_column(String(64))
    original: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AuditEvent(Base):
    """One event in the append-only, hash-chained audit log.

    `hash` is SHA-256 over the previous event's hash (64 hex digits, ASCII) followed by the
    event's canonical JSON (see `storage.audit`); rows are never updated or deleted. The
    subject columns are plain values, not foreign keys, so an event outlives the rows it is
    about (retention leaves the log whole).
    """

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(Text)  # system, cli:<user>, or a mail address
    action: Mapped[str] = mapped_column(String(64))
    case_number: Mapped[str | None] = mapped_column(String(16), index=True)
    message_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's newest event: one row, locked by every transaction that appends, so
    events are chained one after another even with several daemons on one database."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class VerifyRun(Base):
    """One run of `verify`: when, how it went, and what it found (for `health` and the log)."""

    __tablename__ = "verify_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    ok: Mapped[bool | None] = mapped_column(Boolean)
    trigger: Mapped[str] = mapped_column(String(16))  # cli, scheduler
    blobs_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    events_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class BlobDeletion(Base):
    """A blob retention decided to delete, written with the rows' deletion; the file is
    removed after the commit (again after a crash), only if nothing references it by then."""

    __tablename__ = "blob_deletion"
    __table_args__ = (UniqueConstraint("store", "sha256", name="uq_blob_deletion"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(String(16))  # blobs, derived
    sha256: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime]


class MessageTimestamp(Base):
    """An RFC 3161 time-stamp token over a raw message's SHA-256, or the wait for one.

    The token (the TSA's whole DER response) is a blob in the derived store.
    """

    __tablename__ = "message_timestamp"
    __table_args__ = (UniqueConstraint("message_sha256", name="uq_message_timestamp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_sha256: Mapped[str] = mapped_column(String(64))
    tsa_url: Mapped[str | None] = mapped_column(Text)
    token_sha256: Mapped[str | None] = mapped_column(String(64))
    gen_time: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class WebSession(Base):
    """A person logged in to the web view (issue 20). The browser's cookie holds a random id;
    the row keeps only its SHA-256, so the table alone logs nobody in."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(Text)  # case-folded
    # The token every form of this session carries (CSRF); not a secret from its holder.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    # Set at logout; a session also ends by its idle and absolute timeouts.
    ended_at: Mapped[datetime | None]
    client: Mapped[str | None] = mapped_column(String(64))


class LoginRequest(Base):
    """An address entered on the login page (or given to `chikanemail web link`). For a
    person who may log in it carries a single-use link, kept only as its SHA-256; for anyone
    else it only counts against the rate limits."""

    __tablename__ = "login_request"
    __table_args__ = (
        Index("ix_login_request_address_requested_at", "address", "requested_at"),
        Index("ix_login_request_client_requested_at", "client", "requested_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(Text)  # case-folded, as entered
    client: Mapped[str] = mapped_column(String(64))  # the client's address, or "cli:<user>"
    requested_at: Mapped[datetime]
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]
    # Where the person goes after logging in: a local path only.
    next_path: Mapped[str | None] = mapped_column(Text)


class StatusLink(Base):
    """The reporter's read-only status page link of a case (issue 21), kept only as the
    SHA-256 of its secret; separate from the reply tokens, so the link cannot send a
    verified follow-up. Live until `retired_at` is set."""

    __tablename__ = "status_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    retired_reason: Mapped[str | None] = mapped_column(String(32))  # manager, case-closed
