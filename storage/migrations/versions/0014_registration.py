"""The registration of a case, its versions, the EASY report, and the statistics' columns
(issue 22).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None



def _case_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("registration_version", sa.Integer(), nullable=True),
        sa.Column("relation_detail", sa.String(32), nullable=True),
        sa.Column("harassment_type", sa.String(32), nullable=True),
        sa.Column("absence", sa.String(32), nullable=True),
        sa.Column("easy_case_number", sa.String(64), nullable=True),
        sa.Column("easy_reported_on", sa.Date(), nullable=True),
        sa.Column("easy_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("easy_recorded_by", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    """Create case_registration; add the registration's and EASY's columns to case_file."""
    op.create_table(
        "case_registration",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("fields_sha256", sa.String(64), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("case_id", "version", name="uq_case_registration"),
    )
    op.create_index("ix_case_registration_case_id", "case_registration", ["case_id"])
    with op.batch_alter_table("case_file") as batch:
        for column in _case_columns():
            batch.add_column(column)


def downgrade() -> None:
    """Drop what upgrade added. The columns are dropped in place (SQLite 3.35 and later
    drop a plain column itself): a batch copy of case_file would lose its expression
    indexes (revision 0012)."""
    for column in reversed(_case_columns()):
        op.drop_column("case_file", column.name)
    op.drop_index("ix_case_registration_case_id", table_name="case_registration")
    op.drop_table("case_registration")
