"""Case listings filtered by status walk an index in (status, year, sequence) order.

`cases list --status open` on SQLite used the status index and then sorted every matching
case to find the newest page; this index gives that page directly (PostgreSQL walks it too).
It replaces the status-only index, whose column it starts with.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index cases by (status, year, sequence) instead of by status alone."""
    op.create_index("ix_case_file_status_year_sequence", "case_file",
                    ["status", "year", "sequence"])
    op.drop_index("ix_case_file_status", table_name="case_file")


def downgrade() -> None:
    """Back to the status-only index."""
    op.create_index("ix_case_file_status", "case_file", ["status"])
    op.drop_index("ix_case_file_status_year_sequence", table_name="case_file")
