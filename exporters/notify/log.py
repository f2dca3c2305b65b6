"""The notification log: what is owed to whom, and what was sent.

An outbox keyed by (event id, receiver).  ``submit`` writes a *pending* row per receiver
before anything is sent, so an event accepted by the dispatcher survives a crash;
``mark_sent`` is written right after the receiver accepted the message, so a restart
does not send it again; ``enqueue`` ignores keys already known, so the ticket stage may
hand the same event over twice (say, after its own restart) without a second message.

The one window left is a hard kill between a receiver accepting a message and the
``sent`` row being committed: that message goes out again after the restart, with the
same delivery id / Message-ID, which the webhook receiver (and mail clients) can use to
drop it.  Cancellation (stop, reload) does not open the window: see the dispatcher.

``MemoryNotificationLog`` is for unit seams; ``SqlNotificationLog`` is the real one, in
the store's database (table ``notify_log``, Alembic migration 0003).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Table, insert, select, tuple_, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from elvwatch.exporters.notify.messages import event_from_json, event_json
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.notify_log import notify_log
from elvwatch.tickets.store import configure_sqlite, redact, upgrade_schema

log = logging.getLogger(__name__)

PENDING, SENT, FAILED = "pending", "sent", "failed"
# Not sent because another notification already told the same receiver the same thing:
# a fault notified while the store was down, whose ticket was opened afterwards.
COVERED = "covered"


@dataclass(frozen=True, slots=True)
class Pending:
    """One notification owed: this event to this receiver."""

    event: TicketEvent
    receiver: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.event.id, self.receiver)


@dataclass(frozen=True, slots=True)
class LogEntry:
    event_id: str
    receiver: str
    state: str
    attempts: int
    message_id: str | None
    error: str | None


class NotificationLog(Protocol):
    async def enqueue(self, items: Sequence[Pending], now: float) -> list[Pending]:
        """Record the items not yet known; return those (the ones to send)."""

    async def pending(self) -> list[Pending]:
        """Everything not yet sent nor given up, oldest event first."""

    async def mark_sent(self, keys: Sequence[tuple[str, str]], message_id: str,
                        attempts: int, now: float) -> None: ...

    async def mark_failed(self, keys: Sequence[tuple[str, str]], error: str,
                          attempts: int, now: float) -> None: ...

    async def entries(self) -> list[LogEntry]: ...

    async def close(self) -> None: ...


class MemoryNotificationLog:
    """The log in a dict: for tests of the dispatcher without a database."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[Pending, LogEntry]] = {}

    async def enqueue(self, items: Sequence[Pending], now: float) -> list[Pending]:
        new = []
        for item in items:
            if item.key not in self._rows:
                self._rows[item.key] = (item, LogEntry(*item.key, PENDING, 0, None, None))
                new.append(item)
        return new

    async def pending(self) -> list[Pending]:
        return sorted((p for p, e in self._rows.values() if e.state == PENDING),
                      key=lambda p: (p.event.at, p.event.id, p.receiver))

    async def mark_sent(self, keys: Sequence[tuple[str, str]], message_id: str,
                        attempts: int, now: float) -> None:
        for key in keys:
            item, _ = self._rows[key]
            self._rows[key] = (item, LogEntry(*key, SENT, attempts, message_id, None))

    async def mark_failed(self, keys: Sequence[tuple[str, str]], error: str,
                          attempts: int, now: float) -> None:
        for key in keys:
            item, _ = self._rows[key]
            self._rows[key] = (item, LogEntry(*key, FAILED, attempts, None, error))

    async def entries(self) -> list[LogEntry]:
        return [entry for _, entry in self._rows.values()]

    async def close(self) -> None:
        return None


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class SqlNotificationLog:
    """The log in the store's database (SQLite or PostgreSQL).

    ``open(url)`` makes an engine of its own and upgrades the schema to the newest
    revision; ``SqlNotificationLog(engine)`` shares an engine already migrated.  The
    local spool (exporters/notify/spool.py) is this log on a table of its own."""

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = False,
                 table: Table = notify_log) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._table = table

    @classmethod
    async def open(cls, url: str, *, connect_timeout: float = 10.0) -> SqlNotificationLog:
        parsed = make_url(url)
        engine = create_async_engine(parsed, pool_pre_ping=True,
                                     connect_args={"timeout": connect_timeout})
        if engine.dialect.name == "sqlite":
            # Its own engine on the store's file: writes take the lock at BEGIN.
            configure_sqlite(engine, immediate=True)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade_schema)
        except BaseException:
            await engine.dispose()
            raise
        log.info("notification log open: %s", redact(parsed))
        return cls(engine, owns_engine=True)

    async def enqueue(self, items: Sequence[Pending], now: float) -> list[Pending]:
        if not items:
            return []
        unique = list({item.key: item for item in items}.values())
        async with self._engine.begin() as conn:
            # One writer (the dispatcher) per database: read-then-insert cannot race.
            known: set[tuple[str, str]] = set()
            for start in range(0, len(unique), 500):
                keys = [item.key for item in unique[start:start + 500]]
                rows = await conn.execute(
                    select(self._table.c.event_id, self._table.c.receiver).where(
                        tuple_(self._table.c.event_id, self._table.c.receiver).in_(keys)))
                known.update((r.event_id, r.receiver) for r in rows)
            new = [item for item in unique if item.key not in known]
            if new:
                moment = _at(now)
                covered = await self._covered(conn, new)
                await conn.execute(insert(self._table), [
                    {"event_id": p.event.id, "receiver": p.receiver,
                     "state": COVERED if p.key in covered else PENDING,
                     "kind": str(p.event.kind), "site": p.event.site,
                     "event": event_json(p.event), "event_at": _at(p.event.at),
                     "created_at": moment, "updated_at": moment, "attempts": 0,
                     "message_id": None, "error": covered.get(p.key),
                     **self._extra(p)} for p in new])
                new = [p for p in new if p.key not in covered]
        return new

    async def _covered(self, conn: AsyncConnection,
                       new: Sequence[Pending]) -> dict[tuple[str, str], str]:
        """Of ``new``, those another row already covers, with a note saying which."""
        return {}

    def _extra(self, item: Pending) -> dict[str, Any]:
        """Further columns of a new row (the spool's)."""
        return {}

    async def pending(self) -> list[Pending]:
        query = (select(self._table.c.event, self._table.c.receiver)
                 .where(self._table.c.state == PENDING)
                 .order_by(self._table.c.event_at, self._table.c.event_id,
                           self._table.c.receiver))
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return [Pending(event_from_json(r.event), r.receiver) for r in rows]

    async def _finish(self, keys: Sequence[tuple[str, str]], values: dict[str, Any]) -> None:
        if not keys:
            return
        async with self._engine.begin() as conn:
            for start in range(0, len(keys), 500):
                await conn.execute(
                    update(self._table)
                    .where(tuple_(self._table.c.event_id, self._table.c.receiver)
                           .in_(list(keys[start:start + 500])))
                    .values(**values, **self._changed()))

    def _changed(self) -> dict[str, Any]:
        """Further columns set whenever a row changes (the spool's)."""
        return {}

    async def mark_sent(self, keys: Sequence[tuple[str, str]], message_id: str,
                        attempts: int, now: float) -> None:
        await self._finish(keys, {"state": SENT, "message_id": message_id,
                                  "attempts": attempts, "updated_at": _at(now),
                                  "error": None})

    async def mark_failed(self, keys: Sequence[tuple[str, str]], error: str,
                          attempts: int, now: float) -> None:
        await self._finish(keys, {"state": FAILED, "error": error[:1000],
                                  "attempts": attempts, "updated_at": _at(now)})

    async def entries(self) -> list[LogEntry]:
        query = select(self._table).order_by(self._table.c.event_at, self._table.c.event_id,
                                            self._table.c.receiver)
        async with self._engine.connect() as conn:
            return [LogEntry(r.event_id, r.receiver, r.state, r.attempts, r.message_id,
                             r.error) for r in await conn.execute(query)]

    async def close(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()


