"""Who may act on a case: secret reply tokens, the sender check of each message, and the
flags for what could not be proven (issue 15).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create reply_token; add the sender check to message and the flag to case_file."""
    op.create_table(
        "reply_token",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_reason", sa.String(32), nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_reply_token_token_sha256"),
    )
    op.create_index("ix_reply_token_case_id", "reply_token", ["case_id"])
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("sender_check", sa.String(32), nullable=True))
        batch.add_column(sa.Column("sender_authenticated", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("reply_token_id", sa.Integer(),
                                   sa.ForeignKey("reply_token.id",
                                                 name="fk_message_reply_token_id"),
                                   nullable=True))
        batch.add_column(sa.Column("unverified", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("case_file") as batch:
        batch.add_column(sa.Column("sender_unverified", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    """Drop what upgrade added."""
    with op.batch_alter_table("case_file") as batch:
        batch.drop_column("sender_unverified")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("unverified")
        batch.drop_column("reply_token_id")
        batch.drop_column("sender_authenticated")
        batch.drop_column("sender_check")
    op.drop_index("ix_reply_token_case_id", table_name="reply_token")
    op.drop_table("reply_token")
