"""The statistics (issue 22) count cases by the month they were opened: an index on
`case_file.opened_at` that also holds every column they count (type, medium, relation,
absence, acknowledged and closed) finds the first case, and answers each of their grouped
counts from the index alone, without reading the wide case rows.

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

STATISTICS_COLUMNS = ("opened_at", "harassment_type", "medium", "relation_detail", "absence",
                      "acknowledged_at", "closed_at")


def upgrade() -> None:
    """Index cases by the time they were opened, with the statistics' columns."""
    op.create_index("ix_case_file_statistics", "case_file", list(STATISTICS_COLUMNS))


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_case_file_statistics", table_name="case_file")
