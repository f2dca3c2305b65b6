"""Tables of the ticket stage: tickets, their audit trail and records, silences.

They share ``elvwatch.tickets.store.Base`` (one metadata, one Alembic history); migration 0002
creates them.  Times are UTC datetimes (``UTCDateTime``); the manager speaks epoch seconds.

Why some columns exist:

* ``tickets.open_key`` holds the fault fingerprint while the ticket is not closed and
  NULL once it is.  Its unique constraint makes a second live ticket for one fault
  episode impossible at the database level, whatever a crash interleaves.
* ``tickets.dedup_key`` does the same for preventive work orders (site, system, period).
* ``ticket_events.event_id`` is the stable id a notifier keys its log on (``notify_log``,
  migration 0003); the event is written in the same transaction as the change it
  reports, so it exists exactly once.
* ``tickets.responded_at`` is the first response by a person (acknowledging, or an
  engineer's resolution); the system resolving a fault that cleared on its own is no
  response.  ``response_breaches``/``resolve_breaches`` count every breach ever
  recorded: ``*_breached_at`` belong to the current deadline and a renegotiated one
  starts afresh, but a breach stays a breach (migration 0004 adds these, the
  superseded deadlines, RMA claims and the sign-off's channel).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from elvwatch.tickets.store import _ROW_ID, Base, UTCDateTime


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_state_site", "state", "site"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # fault | preventive
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    rule: Mapped[str | None] = mapped_column(String(128))
    site: Mapped[str] = mapped_column(String(128))
    site_name: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    system: Mapped[str | None] = mapped_column(String(32))
    device: Mapped[str | None] = mapped_column(String(128), index=True)
    location: Mapped[str | None] = mapped_column(Text)
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # NULL resolve_due with resolve_to_agree: the contract leaves the repair deadline
    # to be agreed with the site representative (major faults).
    resolve_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_to_agree: Mapped[bool] = mapped_column(Boolean)
    response_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fault_active: Mapped[bool] = mapped_column(Boolean)
    fault_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    healthy_polls: Mapped[int] = mapped_column(Integer)
    recurrences: Mapped[int] = mapped_column(Integer)
    recovered_without_intervention: Mapped[bool] = mapped_column(Boolean)
    period: Mapped[str | None] = mapped_column(String(16))  # preventive: 2026-03, 2026-Q1
    checklist: Mapped[list[str]] = mapped_column(JSON)
    event_seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Resolved because its device recovered while an engineer was on it: the engineer's
    # service record is still owed, and verification and sign-off wait for it.
    awaiting_record: Mapped[bool] = mapped_column(Boolean, default=False)
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_reason: Mapped[str | None] = mapped_column(String(16))  # signed_off | no_sign_off
    original_severity: Mapped[str | None] = mapped_column(String(16))  # set on reclassify
    response_breaches: Mapped[int] = mapped_column(Integer, default=0)
    resolve_breaches: Mapped[int] = mapped_column(Integer, default=0)
    # monitoring | schedule | phone | wechat | walk_in | email | other
    channel: Mapped[str] = mapped_column(String(16), default="monitoring")
    reporter: Mapped[str | None] = mapped_column(Text)
    reporter_contact: Mapped[str | None] = mapped_column(Text)
    # Dispatch (0005): the solution given, the engineer sent and when they are expected.
    solution: Mapped[str | None] = mapped_column(Text)
    assignee: Mapped[str | None] = mapped_column(Text)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A ticket opened for a failed checklist item names its work order (0005).
    follow_up_of: Mapped[str | None] = mapped_column(String(32), index=True)


class TicketDeviceRow(Base):
    """Devices a ticket covers: its own (``primary``) and those behind it (``affected``)."""

    __tablename__ = "ticket_devices"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TicketEventRow(Base):
    """The audit trail: every transition and notable fact, with actor and time."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_seq", "ticket_id", "seq"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    via: Mapped[str | None] = mapped_column(String(16))  # cli | api | page | link | system


class ServiceRecordRow(Base):
    """服务记录: what an engineer did to resolve a ticket."""

    __tablename__ = "service_records"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    engineer: Mapped[str] = mapped_column(Text)
    work_done: Mapped[str] = mapped_column(Text)
    cause: Mapped[str | None] = mapped_column(Text)                       # 0005
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))  # 0005


class ServicePartRow(Base):
    """A replaced part: claimed under the maker's warranty or charged at cost."""

    __tablename__ = "service_parts"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("service_records.id"), index=True)
    device: Mapped[str | None] = mapped_column(String(128))
    part: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer)
    coverage: Mapped[str] = mapped_column(String(16))  # warranty | at_cost | unknown
    warranty_until: Mapped[date | None] = mapped_column(Date)
    # 0005: the price of one (fen, 1/100 yuan; None: not priced) and whether it is a
    # consumable (cable, connectors, batteries), which the device's warranty never covers.
    unit_price_cents: Mapped[int | None] = mapped_column(Integer)
    consumable: Mapped[bool] = mapped_column(Boolean, server_default=false())


class SignOffRow(Base):
    """The site representative's acceptance of the result (服务回执单): given through a
    signed link, or a paper receipt an engineer recorded (``recorded_by``)."""

    __tablename__ = "sign_offs"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    comment: Mapped[str] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(16))  # link | paper
    recorded_by: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[str | None] = mapped_column(Text)  # the paper receipt's number
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))  # 0005: its sheet


class SupersededDeadlineRow(Base):
    """A deadline replaced by a renegotiation or a reclassification, with its breach:
    the SLA report keeps it (the new deadline applies from ``replaced_at`` on)."""

    __tablename__ = "superseded_deadlines"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    which: Mapped[str] = mapped_column(String(16))  # response | resolve
    due: Mapped[datetime] = mapped_column(UTCDateTime)
    severity: Mapped[str] = mapped_column(String(16))
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    replaced_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)


class RmaClaimRow(Base):
    """A manufacturer warranty claim (RMA) for a part of a ticket's repair."""

    __tablename__ = "rma_claims"
    __table_args__ = (UniqueConstraint("ticket_id", "claim_number"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    claim_number: Mapped[str] = mapped_column(String(64))
    part: Mapped[str] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(String(128))
    vendor: Mapped[str] = mapped_column(Text)
    vendor_contact: Mapped[str] = mapped_column(Text)
    sent_on: Mapped[date | None] = mapped_column(Date)
    returned_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedbackRow(Base):
    """Return-visit feedback (用户回访反馈信息表): after a ticket, or a periodic return
    visit of the site with no ticket (``ticket_id`` NULL, 0005)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(Text)
    # 0005: the plan's fields.  ``quality_issue`` 是否工程质量问题 (None: not assessed);
    # ``solution`` 处理方案 proposed by the customer response centre; ``outcome`` 处理结果.
    site: Mapped[str | None] = mapped_column(String(128), index=True)
    contact: Mapped[str | None] = mapped_column(Text)
    quality_issue: Mapped[bool | None] = mapped_column(Boolean)
    solution: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChecklistResultRow(Base):
    __tablename__ = "checklist_results"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    item: Mapped[str] = mapped_column(Text)
    ok: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    device: Mapped[str | None] = mapped_column(String(128))    # 0005: the item's device
    follow_up: Mapped[str | None] = mapped_column(String(32))  # 0005: ticket it opened


class FaultLogRow(Base):
    """Every fault transition the ticket stage received, ticketed or not (suppressed,
    behind a root cause, pending): nothing the rule engine says is lost."""

    __tablename__ = "fault_log"
    __table_args__ = (Index("ix_fault_log_fingerprint_at", "fingerprint", "at"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(128))
    site: Mapped[str] = mapped_column(String(128))
    device: Mapped[str] = mapped_column(String(128))
    previous: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    severity: Mapped[str] = mapped_column(String(16))
    root_cause: Mapped[str | None] = mapped_column(String(128))
    suppressed_by: Mapped[str | None] = mapped_column(String(128))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    summary: Mapped[str] = mapped_column(Text)


class SilenceRow(Base):
    """A silence or maintenance window created through the API/CLI (config ones are
    not stored).  ``matchers`` is {label: value}."""

    __tablename__ = "silences"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    matchers: Mapped[dict[str, str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The engineers' field records (visits, photos, personal links), migration 0005.
import elvwatch.tickets.field_schema  # noqa: E402, F401
