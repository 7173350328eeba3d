"""Proof of the evidence: the hash-chained audit log, verify runs, legal holds, retention's
pending blob deletions, and RFC 3161 time-stamps.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The chain starts from this "previous hash" (see storage.audit.GENESIS_HASH).
_GENESIS = "0" * 64


def upgrade() -> None:
    """Create the audit, verify, retention and time-stamp tables; add the legal hold."""
    with op.batch_alter_table("case_file") as batch:
        batch.add_column(sa.Column("legal_hold", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("held_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("held_by", sa.Text(), nullable=True))
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("case_number", sa.String(16), nullable=True),
        sa.Column("message_sha256", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_event_case_number", "audit_event", ["case_number"])
    op.create_index("ix_audit_event_message_sha256", "audit_event", ["message_sha256"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": _GENESIS}])
    op.create_table(
        "verify_run",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("blobs_checked", sa.BigInteger(), nullable=False),
        sa.Column("bytes_checked", sa.BigInteger(), nullable=False),
        sa.Column("events_checked", sa.BigInteger(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
    )
    op.create_table(
        "blob_deletion",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("store", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("store", "sha256", name="uq_blob_deletion"),
    )
    op.create_table(
        "message_timestamp",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("message_sha256", sa.String(64), nullable=False),
        sa.Column("tsa_url", sa.Text(), nullable=True),
        sa.Column("token_sha256", sa.String(64), nullable=True),
        sa.Column("gen_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("message_sha256", name="uq_message_timestamp"),
    )


def downgrade() -> None:
    """Drop what `upgrade` added."""
    for table in ("message_timestamp", "blob_deletion", "verify_run", "audit_head",
                  "audit_event"):
        op.drop_table(table)
    with op.batch_alter_table("case_file") as batch:
        for column in ("held_by", "held_at", "hold_reason", "legal_hold"):
            batch.drop_column(column)
