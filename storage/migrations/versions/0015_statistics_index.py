"""The statistics (issue 22) count cases by the month they were opened: an index on
`case_file.opened_at` finds the first case and the cases of a range of months without
reading the whole table.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index cases by the time they were opened."""
    op.create_index("ix_case_file_opened_at", "case_file", ["opened_at"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_case_file_opened_at", table_name="case_file")
