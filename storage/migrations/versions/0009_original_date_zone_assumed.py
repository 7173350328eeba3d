"""The flag for a forwarded original's date read in the workplace's zone (issue 16).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add message.original_date_zone_assumed (false on every row from before)."""
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("original_date_zone_assumed", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    """Drop what upgrade added."""
    with op.batch_alter_table("message") as batch:
        batch.drop_column("original_date_zone_assumed")
