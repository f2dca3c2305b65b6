"""The ticket life of the maintenance plan: responses by people, sign-off before closing,
breaches that outlive a renegotiated deadline, reclassified severities, tickets from
people, RMA claims and replacements recorded in the equipment archive.

New columns are filled from what the store already knows: ``responded_at`` from the
first acknowledgement or resolution by a person in the audit trail, the breach counts
from the ``breached`` events, ``signed_off_at`` from the sign-offs, ``channel`` from
the ticket's kind.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Written out rather than imported from tickets.schema: a migration is frozen in time.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

TICKET_COLUMNS = ("responded_at", "awaiting_record", "signed_off_at", "close_reason",
                  "original_severity", "response_breaches", "resolve_breaches", "channel",
                  "reporter", "reporter_contact")


def _at(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _ticket_fk(table: str) -> list[object]:
    return [sa.Column("ticket_id", ROW_ID, nullable=False),
            sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                    name=f"fk_{table}_ticket_id_tickets")]


def upgrade() -> None:
    op.add_column("tickets", _at("responded_at"))
    op.add_column("tickets", sa.Column("awaiting_record", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.add_column("tickets", _at("signed_off_at"))
    op.add_column("tickets", sa.Column("close_reason", sa.String(16), nullable=True))
    op.add_column("tickets", sa.Column("original_severity", sa.String(16), nullable=True))
    for name in ("response_breaches", "resolve_breaches"):
        op.add_column("tickets", sa.Column(name, sa.Integer(), nullable=False,
                                           server_default="0"))
    op.add_column("tickets", sa.Column("channel", sa.String(16), nullable=False,
                                       server_default="monitoring"))
    op.add_column("tickets", sa.Column("reporter", sa.Text(), nullable=True))
    op.add_column("tickets", sa.Column("reporter_contact", sa.Text(), nullable=True))
    op.add_column("ticket_events", sa.Column("via", sa.String(16), nullable=True))
    op.add_column("sign_offs", sa.Column("channel", sa.String(16), nullable=True))
    op.add_column("sign_offs", sa.Column("recorded_by", sa.Text(), nullable=True))
    op.add_column("sign_offs", sa.Column("receipt", sa.Text(), nullable=True))
    op.add_column("archive_events", sa.Column("ticket", sa.String(32), nullable=True))

    op.create_table(
        "superseded_deadlines",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        *_ticket_fk("superseded_deadlines"),
        sa.Column("which", sa.String(16), nullable=False), _at("due", False),
        sa.Column("severity", sa.String(16), nullable=False), _at("breached_at"),
        _at("replaced_at", False), sa.Column("replaced_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_superseded_deadlines"),
    )
    op.create_index("ix_superseded_deadlines_ticket_id", "superseded_deadlines",
                    ["ticket_id"])
    op.create_table(
        "rma_claims",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        *_ticket_fk("rma_claims"),
        sa.Column("claim_number", sa.String(64), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("device", sa.String(128), nullable=True),
        sa.Column("vendor", sa.Text(), nullable=False),
        sa.Column("vendor_contact", sa.Text(), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=True),
        sa.Column("returned_on", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        _at("created_at", False), _at("updated_at", False),
        sa.PrimaryKeyConstraint("id", name="pk_rma_claims"),
        sa.UniqueConstraint("ticket_id", "claim_number",
                            name="uq_rma_claims_ticket_id_claim_number"),
    )
    op.create_index("ix_rma_claims_ticket_id", "rma_claims", ["ticket_id"])

    # What the store already knows, in plain SQL both SQLite and PostgreSQL run.
    op.execute("UPDATE tickets SET channel = 'schedule' WHERE kind = 'preventive'")
    op.execute(
        "UPDATE tickets SET responded_at = (SELECT MIN(e.at) FROM ticket_events e "
        "WHERE e.ticket_id = tickets.id AND e.kind IN ('acknowledged', 'resolved') "
        "AND e.actor <> 'system')")
    for which in ("response", "resolve"):
        op.execute(
            f"UPDATE tickets SET {which}_breaches = (SELECT COUNT(*) FROM ticket_events e "
            f"WHERE e.ticket_id = tickets.id AND e.kind = 'breached' "
            f"AND e.note LIKE '{which} %')")
    op.execute(
        "UPDATE tickets SET signed_off_at = (SELECT MIN(s.at) FROM sign_offs s "
        "WHERE s.ticket_id = tickets.id)")
    op.execute("UPDATE tickets SET close_reason = 'signed_off' "
               "WHERE state = 'closed' AND signed_off_at IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_rma_claims_ticket_id", table_name="rma_claims")
    op.drop_table("rma_claims")
    op.drop_index("ix_superseded_deadlines_ticket_id", table_name="superseded_deadlines")
    op.drop_table("superseded_deadlines")
    with op.batch_alter_table("archive_events") as batch:
        batch.drop_column("ticket")
    with op.batch_alter_table("sign_offs") as batch:
        for name in ("receipt", "recorded_by", "channel"):
            batch.drop_column(name)
    with op.batch_alter_table("ticket_events") as batch:
        batch.drop_column("via")
    with op.batch_alter_table("tickets") as batch:
        for name in reversed(TICKET_COLUMNS):
            batch.drop_column(name)
