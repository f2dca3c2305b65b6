"""The ``notify_log`` table (migration 0003): the notifiers' outbox.

Declared here, on the store's metadata, so the schema check and Alembic see it with the
rest of the store; read and written only by ``elvwatch.exporters.notify.log``.  Kept apart from
``tickets.schema``'s ``notifications`` table, which is the ticket stage's own record.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, PrimaryKeyConstraint, String, Table, Text

from elvwatch.tickets.store import Base, UTCDateTime


def outbox_columns() -> list[Column[object]]:
    """The columns of an outbox row, new objects on each call: the store's table below,
    and the daemon's local spool (exporters/notify/spool.py) with the same rows."""
    return [
        Column("event_id", String(128), nullable=False),
        Column("receiver", String(128), nullable=False),
        Column("state", String(16), nullable=False, index=True),
        Column("kind", String(32), nullable=False),
        Column("site", String(128), nullable=False),
        Column("event", JSON, nullable=False),
        Column("event_at", UTCDateTime, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("message_id", String(64)),
        Column("error", Text),
    ]


notify_log = Table(
    "notify_log", Base.metadata, *outbox_columns(),
    PrimaryKeyConstraint("event_id", "receiver"),
)
