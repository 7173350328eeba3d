"""What a reader's language needs: routing parameters and coded system notes (issue 19).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add case_file.routing_params and case_note.code/params (NULL on every row from
    before: those rows keep the text they were written with)."""
    with op.batch_alter_table("case_file") as batch:
        batch.add_column(sa.Column("routing_params", sa.JSON(), nullable=True))
    with op.batch_alter_table("case_note") as batch:
        batch.add_column(sa.Column("code", sa.String(32), nullable=True))
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop what upgrade added."""
    with op.batch_alter_table("case_note") as batch:
        batch.drop_column("params")
        batch.drop_column("code")
    with op.batch_alter_table("case_file") as batch:
        batch.drop_column("routing_params")
