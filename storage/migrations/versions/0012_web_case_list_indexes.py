"""The web view's case list finds a viewer's cases by index (issue 20).

The access rule compares addresses case-folded (`lower(manager)`, `lower(deputy)`): these
expression indexes let SQLite and PostgreSQL find one manager's cases among 100,000 without
reading every case. The filter "a step overdue" looks for steps not done: a partial index
holds only those, by case and deadline.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index cases by their manager's and deputy's address, case-folded, and the steps not
    done by case and deadline."""
    op.create_index("ix_case_file_manager_lower", "case_file", [sa.text("lower(manager)")])
    op.create_index("ix_case_file_deputy_lower", "case_file", [sa.text("lower(deputy)")])
    op.create_index("ix_case_step_open_due", "case_step", ["case_id", "due_at"],
                    sqlite_where=sa.text("done_at IS NULL"),
                    postgresql_where=sa.text("done_at IS NULL"))


def downgrade() -> None:
    """Drop the three indexes."""
    op.drop_index("ix_case_step_open_due", table_name="case_step")
    op.drop_index("ix_case_file_deputy_lower", table_name="case_file")
    op.drop_index("ix_case_file_manager_lower", table_name="case_file")
