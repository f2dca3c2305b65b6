"""Field work and the plan's forms: visits (arrival/departure), photos, engineers'
personal links, dispatch details and follow-ups on tickets, cause and visit on service
records, price and consumables on parts, the visit a sign-off signs, the return-visit
form's fields (per ticket or per site), the device and follow-up of checklist results.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Written out rather than imported from tickets.schema: a migration is frozen in time.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _ticket_fk(table: str) -> list[object]:
    return [sa.Column("ticket_id", ROW_ID, nullable=False),
            sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                    name=f"fk_{table}_ticket_id_tickets")]


def upgrade() -> None:
    op.create_table(
        "visits",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False), *_ticket_fk("visits"),
        _text("engineer", False), _at("arrived_at", False), _at("departed_at"),
        _text("note", False),
        sa.PrimaryKeyConstraint("id", name="pk_visits"),
    )
    op.create_index("ix_visits_ticket_id", "visits", ["ticket_id"])

    op.create_table(
        "photos",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False), *_ticket_fk("photos"),
        sa.Column("visit_id", ROW_ID, nullable=True),
        sa.Column("file", sa.String(80), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        _text("caption", False), _text("uploaded_by", False), _at("at", False),
        sa.ForeignKeyConstraint(["visit_id"], ["visits.id"], name="fk_photos_visit_id_visits"),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
    )
    op.create_index("ix_photos_ticket_id", "photos", ["ticket_id"])

    op.create_table(
        "engineer_links",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("engineer", sa.String(64), nullable=False),
        _at("created_at", False), _at("expires_at", False), _at("revoked_at"),
        _text("note", False),
        sa.PrimaryKeyConstraint("id", name="pk_engineer_links"),
    )
    op.create_index("ix_engineer_links_engineer", "engineer_links", ["engineer"])

    with op.batch_alter_table("tickets") as batch:
        batch.add_column(_text("solution"))
        batch.add_column(_text("assignee"))
        batch.add_column(_at("eta"))
        batch.add_column(sa.Column("follow_up_of", sa.String(32), nullable=True))
        batch.create_index("ix_tickets_follow_up_of", ["follow_up_of"])

    with op.batch_alter_table("service_records") as batch:
        batch.add_column(_text("cause"))
        batch.add_column(sa.Column("visit_id", ROW_ID, nullable=True))
        batch.create_foreign_key("fk_service_records_visit_id_visits", "visits",
                                 ["visit_id"], ["id"])

    with op.batch_alter_table("service_parts") as batch:
        batch.add_column(sa.Column("unit_price_cents", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("consumable", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))

    with op.batch_alter_table("sign_offs") as batch:
        batch.add_column(sa.Column("visit_id", ROW_ID, nullable=True))
        batch.create_foreign_key("fk_sign_offs_visit_id_visits", "visits",
                                 ["visit_id"], ["id"])

    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("ticket_id", existing_type=ROW_ID, nullable=True)
        batch.add_column(sa.Column("site", sa.String(128), nullable=True))
        batch.add_column(_text("contact"))
        batch.add_column(sa.Column("quality_issue", sa.Boolean(), nullable=True))
        batch.add_column(_text("solution"))
        batch.add_column(_text("outcome"))
        batch.add_column(_at("outcome_at"))
        batch.create_index("ix_feedback_site", ["site"])
    # Feedback so far was all per ticket: its site is the ticket's.
    op.execute("UPDATE feedback SET site = (SELECT tickets.site FROM tickets "
               "WHERE tickets.id = feedback.ticket_id)")

    with op.batch_alter_table("checklist_results") as batch:
        batch.add_column(sa.Column("device", sa.String(128), nullable=True))
        batch.add_column(sa.Column("follow_up", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checklist_results") as batch:
        batch.drop_column("follow_up")
        batch.drop_column("device")
    op.execute("DELETE FROM feedback WHERE ticket_id IS NULL")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_site")
        for column in ("outcome_at", "outcome", "solution", "quality_issue", "contact",
                       "site"):
            batch.drop_column(column)
        batch.alter_column("ticket_id", existing_type=ROW_ID, nullable=False)
    with op.batch_alter_table("sign_offs") as batch:
        batch.drop_constraint("fk_sign_offs_visit_id_visits", type_="foreignkey")
        batch.drop_column("visit_id")
    with op.batch_alter_table("service_parts") as batch:
        batch.drop_column("consumable")
        batch.drop_column("unit_price_cents")
    with op.batch_alter_table("service_records") as batch:
        batch.drop_constraint("fk_service_records_visit_id_visits", type_="foreignkey")
        batch.drop_column("visit_id")
        batch.drop_column("cause")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_follow_up_of")
        for column in ("follow_up_of", "eta", "assignee", "solution"):
            batch.drop_column(column)
    op.drop_table("engineer_links")
    op.drop_table("photos")
    op.drop_table("visits")
