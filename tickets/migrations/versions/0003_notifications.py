"""The notifiers' outbox log (exporters.notify.log): table notify_log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notify_log",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        _at("event_at"),
        _at("created_at"),
        _at("updated_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(64)),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("event_id", "receiver", name="pk_notify_log"),
    )
    op.create_index("ix_notify_log_state", "notify_log", ["state"])


def downgrade() -> None:
    op.drop_index("ix_notify_log_state", table_name="notify_log")
    op.drop_table("notify_log")
