"""The web view's sessions and login links (issue 20).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create web_session and login_request."""
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id_sha256", sa.String(64), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.UniqueConstraint("id_sha256", name="uq_web_session_id_sha256"),
    )
    op.create_table(
        "login_request",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_path", sa.Text(), nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_login_request_token_sha256"),
    )
    op.create_index("ix_login_request_address_requested_at", "login_request",
                    ["address", "requested_at"])
    op.create_index("ix_login_request_client_requested_at", "login_request",
                    ["client", "requested_at"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_index("ix_login_request_client_requested_at", table_name="login_request")
    op.drop_index("ix_login_request_address_requested_at", table_name="login_request")
    op.drop_table("login_request")
    op.drop_table("web_session")
