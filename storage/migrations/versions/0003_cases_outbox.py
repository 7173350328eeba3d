"""Cases, their counter and notes, the outbox, and each message's place in a case.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the case and outbox tables and link messages to cases."""
    op.create_table(
        "case_file",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("reporter_name", sa.Text(), nullable=True),
        sa.Column("manager", sa.Text(), nullable=False),
        sa.Column("deputy", sa.Text(), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("routing_source", sa.String(16), nullable=False),
        sa.Column("routing_reason", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("number", name="uq_case_file_number"),
        sa.UniqueConstraint("year", "sequence", name="uq_case_file_year_sequence"),
    )
    op.create_index("ix_case_file_status", "case_file", ["status"])
    op.create_table(
        "case_counter",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
    )
    op.create_table(
        "case_note",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("message_pk", sa.Integer(), sa.ForeignKey("message.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_case_note_case_id", "case_note", ["case_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("mail_from", sa.Text(), nullable=False),
        sa.Column("rcpt_tos", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
    )
    op.create_index("ix_outbox_case_id", "outbox", ["case_id"])
    op.create_index("ix_outbox_state", "outbox", ["state"])
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(32), nullable=True))
        batch.add_column(sa.Column("automatic", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("from_address", sa.Text(), nullable=True))
        batch.add_column(sa.Column("in_reply_to", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reference_ids", sa.JSON(), nullable=True))
        batch.create_foreign_key("fk_message_case_id", "case_file", ["case_id"], ["id"])
        batch.create_index("ix_message_case_id", ["case_id"])


def downgrade() -> None:
    """Drop the case and outbox tables and the message's case columns."""
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_case_id")
        batch.drop_constraint("fk_message_case_id", type_="foreignkey")
        for name in ("reference_ids", "in_reply_to", "from_address", "automatic", "kind",
                     "case_id"):
            batch.drop_column(name)
    op.drop_table("outbox")
    op.drop_table("case_note")
    op.drop_table("case_counter")
    op.drop_table("case_file")
