"""Evidence extraction: one evidence row per part, and what was learned on the message.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

def _message_columns() -> list[sa.Column[object]]:
    """New columns of the message table (fresh objects: a Column belongs to one table)."""
    return [
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("defects", sa.JSON(), nullable=True),
        sa.Column("body_text_sha256", sa.String(64), nullable=True),
        sa.Column("received_chain", sa.JSON(), nullable=True),
        sa.Column("sender_ip", sa.String(64), nullable=True),
        sa.Column("original_rule", sa.String(64), nullable=True),
        sa.Column("original_from_name", sa.Text(), nullable=True),
        sa.Column("original_from_address", sa.Text(), nullable=True),
        sa.Column("original_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("original_date_raw", sa.Text(), nullable=True),
        sa.Column("original_subject", sa.Text(), nullable=True),
        sa.Column("original_to", sa.Text(), nullable=True),
        sa.Column("original_message_id", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    """Add the evidence table and the message's extraction columns."""
    with op.batch_alter_table("message") as batch:
        for column in _message_columns():
            batch.add_column(column)
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("message_pk", sa.Integer(), sa.ForeignKey("message.id"), nullable=False),
        sa.Column("part_path", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("evidence.id"), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("declared_type", sa.Text(), nullable=True),
        sa.Column("sniffed_type", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("content_id", sa.Text(), nullable=True),
        sa.Column("disposition", sa.String(32), nullable=True),
        sa.Column("transfer_encoding", sa.String(64), nullable=True),
        sa.Column("charset", sa.String(64), nullable=True),
        sa.Column("defects", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=True),
        sa.Column("image", sa.JSON(), nullable=True),
        sa.Column("thumbnail_sha256", sa.String(64), nullable=True),
        sa.Column("dhash", sa.String(16), nullable=True),
        sa.Column("ocr_status", sa.String(16), nullable=True),
        sa.Column("ocr_sha256", sa.String(64), nullable=True),
        sa.Column("original", sa.JSON(), nullable=True),
        sa.UniqueConstraint("message_pk", "part_path", name="uq_evidence_part"),
    )
    op.create_index("ix_evidence_message_pk", "evidence", ["message_pk"])
    op.create_index("ix_evidence_sha256", "evidence", ["sha256"])


def downgrade() -> None:
    """Drop the evidence table and the extraction columns."""
    op.drop_index("ix_evidence_sha256", table_name="evidence")
    op.drop_index("ix_evidence_message_pk", table_name="evidence")
    op.drop_table("evidence")
    with op.batch_alter_table("message") as batch:
        for column in reversed(_message_columns()):
            batch.drop_column(column.name)
