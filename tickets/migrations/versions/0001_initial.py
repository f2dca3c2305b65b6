"""Equipment archive, current device state, state transitions, archive events.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Written out rather than imported from tickets.store: a migration is frozen in time.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _device_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                   name=f"fk_{table}_device_id_devices")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(128), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("vendor", sa.Text()),
        sa.Column("model", sa.Text()),
        sa.Column("serial", sa.Text()),
        sa.Column("firmware", sa.Text()),
        sa.Column("location", sa.Text()),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("installed", sa.Date()),
        sa.Column("warranty_until", sa.Date()),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("declared", sa.JSON(), nullable=False),
        _at("first_seen"),
        _at("updated_at"),
        _at("removed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
    )
    op.create_index("ix_devices_site", "devices", ["site"])

    op.create_table(
        "device_states",
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _at("since"),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_states"),
        _device_fk("device_states"),
    )

    op.create_table(
        "state_transitions",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        _at("at"),
        sa.Column("previous", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_state_transitions"),
        _device_fk("state_transitions"),
    )
    op.create_index("ix_state_transitions_device_id_at", "state_transitions",
                    ["device_id", "at"])
    op.create_index("ix_state_transitions_at", "state_transitions", ["at"])

    op.create_table(
        "archive_events",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        _at("at"),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("old", sa.Text()),
        sa.Column("new", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_archive_events"),
        _device_fk("archive_events"),
    )
    op.create_index("ix_archive_events_device_id_at", "archive_events", ["device_id", "at"])


def downgrade() -> None:
    op.drop_table("archive_events")
    op.drop_table("state_transitions")
    op.drop_table("device_states")
    op.drop_index("ix_devices_site", table_name="devices")
    op.drop_table("devices")
