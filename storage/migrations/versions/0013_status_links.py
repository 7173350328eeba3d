"""The reporter's status page links (issue 21).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create status_link."""
    op.create_table(
        "status_link",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_reason", sa.String(32), nullable=True),
        sa.UniqueConstraint("secret_sha256", name="uq_status_link_secret_sha256"),
    )
    op.create_index("ix_status_link_case_id", "status_link", ["case_id"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_index("ix_status_link_case_id", table_name="status_link")
    op.drop_table("status_link")
