"""Many communities, one centre: how far the centre has applied each site poller's
observations (the highest sequence number), so a batch sent twice is applied once; and
which poller serves each site now (a lease), so two pollers of one site are applied as
one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "poller_marks",
        sa.Column("poller_id", sa.String(128), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("heard_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("poller_id", name="pk_poller_marks"),
    )
    op.create_table(
        "site_leases",
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("poller_id", sa.String(128), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site", name="pk_site_leases"),
    )


def downgrade() -> None:
    op.drop_table("site_leases")
    op.drop_table("poller_marks")
