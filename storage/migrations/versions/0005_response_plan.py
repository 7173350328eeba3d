"""The response plan: case fields for registration, per-case checklist, scheduler notices,
and links between related cases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the registration fields to cases and create the plan tables."""
    with op.batch_alter_table("case_file") as batch:
        batch.add_column(sa.Column("relation", sa.String(16), nullable=False,
                                   server_default="unknown"))
        batch.add_column(sa.Column("medium", sa.String(16), nullable=True))
        batch.add_column(sa.Column("first_absence_day", sa.Date(), nullable=True))
        batch.add_column(sa.Column("witnesses", sa.JSON(), nullable=False,
                                   server_default="[]"))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.Text(), nullable=True))
        batch.add_column(sa.Column("escalation_level", sa.Integer(), nullable=False,
                                   server_default="0"))
    op.create_table(
        "case_step",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("title_da", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), nullable=False),
        sa.Column("description_da", sa.Text(), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(16), nullable=False),
        sa.Column("due", sa.String(32), nullable=True),
        sa.Column("working_days", sa.Boolean(), nullable=False),
        sa.Column("due_after", sa.String(32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.Text(), nullable=True),
        sa.UniqueConstraint("case_id", "key", name="uq_case_step_key"),
    )
    op.create_index("ix_case_step_case_id", "case_step", ["case_id"])
    op.create_table(
        "plan_notice",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", sa.Integer(), sa.ForeignKey("outbox.id"), nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_plan_notice"),
    )
    op.create_index("ix_plan_notice_case_id", "plan_notice", ["case_id"])
    op.create_table(
        "case_link",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_file.id"), nullable=False),
        sa.Column("other_case_id", sa.Integer(), sa.ForeignKey("case_file.id"),
                  nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("case_id", "other_case_id", "reason", name="uq_case_link"),
    )
    op.create_index("ix_case_link_case_id", "case_link", ["case_id"])
    op.create_index("ix_case_link_other_case_id", "case_link", ["other_case_id"])


def downgrade() -> None:
    """Drop the plan tables and the registration fields."""
    op.drop_table("case_link")
    op.drop_table("plan_notice")
    op.drop_table("case_step")
    with op.batch_alter_table("case_file") as batch:
        for column in ("escalation_level", "acknowledged_by", "acknowledged_at", "witnesses",
                       "first_absence_day", "medium", "relation"):
            batch.drop_column(column)
