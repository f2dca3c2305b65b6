"""Tickets, their audit trail, service records, sign-offs, feedback, preventive checklists,
the fault log and silences (the notification log is 0003's notify_log).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Written out rather than imported from tickets.schema: a migration is frozen in time.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _str(name: str, length: int, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _int(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _row_id() -> sa.Column[object]:
    return sa.Column("id", ROW_ID, autoincrement=True, nullable=False)


def _ticket_fk(table: str, nullable: bool = False) -> list[object]:
    return [sa.Column("ticket_id", ROW_ID, nullable=nullable),
            sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                    name=f"fk_{table}_ticket_id_tickets")]


def upgrade() -> None:
    op.create_table(
        "tickets",
        _row_id(),
        _str("number", 32), _str("kind", 16), _str("fingerprint", 64, True),
        _str("open_key", 64, True), _str("dedup_key", 200, True), _str("rule", 128, True),
        _str("site", 128), _text("site_name"), _str("language", 8), _str("system", 32, True),
        _str("device", 128, True), _text("location", True), _text("title_zh"),
        _text("title_en"), _str("severity", 16), _str("state", 16), _text("summary"),
        _at("opened_at", False), _at("acknowledged_at"), _at("resolved_at"),
        _at("verified_at"), _at("closed_at"), _at("response_due"), _at("resolve_due"),
        sa.Column("resolve_to_agree", sa.Boolean(), nullable=False),
        _at("response_breached_at"), _at("resolve_breached_at"),
        sa.Column("fault_active", sa.Boolean(), nullable=False),
        _at("fault_cleared_at"), _int("healthy_polls"), _int("recurrences"),
        sa.Column("recovered_without_intervention", sa.Boolean(), nullable=False),
        _str("period", 16, True), sa.Column("checklist", sa.JSON(), nullable=False),
        _int("event_seq"), _at("updated_at", False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("number", name="uq_tickets_number"),
        sa.UniqueConstraint("open_key", name="uq_tickets_open_key"),
        sa.UniqueConstraint("dedup_key", name="uq_tickets_dedup_key"),
    )
    op.create_index("ix_tickets_device", "tickets", ["device"])
    op.create_index("ix_tickets_fingerprint", "tickets", ["fingerprint"])
    op.create_index("ix_tickets_state_site", "tickets", ["state", "site"])

    op.create_table(
        "ticket_devices",
        *_ticket_fk("ticket_devices"),
        _str("device", 128), _str("role", 16), _at("added_at", False), _at("cleared_at"),
        sa.PrimaryKeyConstraint("ticket_id", "device", name="pk_ticket_devices"),
    )

    op.create_table(
        "ticket_events",
        _row_id(), _str("event_id", 64), *_ticket_fk("ticket_events"), _int("seq"),
        _str("kind", 32), _at("at", False), _str("actor", 128), _text("note"),
        _str("from_state", 16, True), _str("to_state", 16),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
        sa.UniqueConstraint("event_id", name="uq_ticket_events_event_id"),
    )
    op.create_index("ix_ticket_events_ticket_id_seq", "ticket_events", ["ticket_id", "seq"])

    op.create_table(
        "service_records",
        _row_id(), *_ticket_fk("service_records"), _at("at", False), _text("engineer"),
        _text("work_done"),
        sa.PrimaryKeyConstraint("id", name="pk_service_records"),
    )
    op.create_index("ix_service_records_ticket_id", "service_records", ["ticket_id"])

    op.create_table(
        "service_parts",
        _row_id(), sa.Column("record_id", ROW_ID, nullable=False),
        _str("device", 128, True), _text("part"), _int("quantity"), _str("coverage", 16),
        sa.Column("warranty_until", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["service_records.id"],
                                name="fk_service_parts_record_id_service_records"),
        sa.PrimaryKeyConstraint("id", name="pk_service_parts"),
    )
    op.create_index("ix_service_parts_record_id", "service_parts", ["record_id"])

    op.create_table(
        "sign_offs",
        _row_id(), *_ticket_fk("sign_offs"), _text("name"), _at("at", False), _text("comment"),
        sa.PrimaryKeyConstraint("id", name="pk_sign_offs"),
    )
    op.create_index("ix_sign_offs_ticket_id", "sign_offs", ["ticket_id"])

    op.create_table(
        "feedback",
        _row_id(), *_ticket_fk("feedback"), _at("at", False), _int("rating"),
        _text("comment"), _text("recorded_by"),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_ticket_id", "feedback", ["ticket_id"])

    op.create_table(
        "checklist_results",
        _row_id(), *_ticket_fk("checklist_results"), _text("item"),
        sa.Column("ok", sa.Boolean(), nullable=False), _text("note"), _at("at", False),
        sa.PrimaryKeyConstraint("id", name="pk_checklist_results"),
    )
    op.create_index("ix_checklist_results_ticket_id", "checklist_results", ["ticket_id"])

    op.create_table(
        "fault_log",
        _row_id(), _str("fingerprint", 64), _str("rule", 128), _str("site", 128),
        _str("device", 128), _str("previous", 16), _str("state", 16), _at("at", False),
        _str("severity", 16), _str("root_cause", 128, True), _str("suppressed_by", 128, True),
        *_ticket_fk("fault_log", nullable=True), _text("summary"),
        sa.PrimaryKeyConstraint("id", name="pk_fault_log"),
    )
    op.create_index("ix_fault_log_fingerprint_at", "fault_log", ["fingerprint", "at"])

    op.create_table(
        "silences",
        _str("id", 64), sa.Column("matchers", sa.JSON(), nullable=False),
        _text("created_by"), _text("reason"), _at("starts_at", False), _at("ends_at", False),
        _at("created_at", False), _at("expired_at"),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
    )


def downgrade() -> None:
    for table in ("silences", "fault_log", "checklist_results", "feedback",
                  "sign_offs", "service_parts", "service_records", "ticket_events",
                  "ticket_devices", "tickets"):
        op.drop_table(table)
