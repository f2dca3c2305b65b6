"""The notifications' outbox on local disk, so that telling people never waits for the
database: while PostgreSQL is down (or the SQLite store locked), what is owed is still
written durably and sent.

    dispatcher ─► SpooledLog ─► SpoolLog   (a SQLite file next to the config;
                      │                     every commit fsynced: synchronous=FULL)
                      └─────── StoreMirror  (the store's notify_log, when it answers)

* ``enqueue`` writes to the spool first, then asks the store — when it answers within
  ``STORE_ANSWER_SECONDS`` — whether it already settled any of those notifications (sent
  by this daemon before the spool existed, or before the spool file was lost): those
  are adopted as settled, not sent again.  A store that does not answer is skipped.
* ``sync`` copies what changed in the spool to the store's ``notify_log`` (the record
  reports and other tools read), oldest first; the daemon calls it every few seconds
  and it simply fails while the store is down.
* An event carrying a fault episode (``TicketEvent.episode``) that another row of the
  same receiver already has is recorded ``covered`` and not sent: the "opened" of a
  ticket whose fault was notified while the store could not take the ticket.

The spool is this daemon's own: it is no Alembic revision of the store; its one table
is created when missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    event,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from elvwatch.exporters.notify.log import PENDING, LogEntry, Pending, SqlNotificationLog
from elvwatch.exporters.notify.messages import event_from_json
from elvwatch.probes.base import bounded
from elvwatch.tickets.notify_log import notify_log, outbox_columns
from elvwatch.tickets.store import configure_sqlite

log = logging.getLogger(__name__)

# How long a submit waits for the store to say what it already settled.
STORE_ANSWER_SECONDS = 3.0
SYNC_BATCH = 500
_BATCH = 500

spool_metadata = MetaData()
notify_spool = Table(
    "notify_spool", spool_metadata, *outbox_columns(),
    Column("episode", String(300)),
    Column("synced", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("event_id", "receiver"),
    Index("ix_notify_spool_synced", "synced"),
    Index("ix_notify_spool_episode", "receiver", "episode"),
)
_COPIED = [c.name for c in notify_log.columns]
Key = tuple[str, str]


class SpoolLog(SqlNotificationLog):
    """The outbox in a local SQLite file; rows remember whether the store has them."""

    @classmethod
    async def open_file(cls, path: Path) -> SpoolLog:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}",
                                     connect_args={"timeout": 10.0})
        configure_sqlite(engine, immediate=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _durable(dbapi_connection: Any, _record: Any) -> None:
            # WAL commits are fsynced only with FULL: a notification accepted is on disk.
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA synchronous=FULL")
            finally:
                cursor.close()

        try:
            async with engine.begin() as conn:
                await conn.run_sync(_create)
        except BaseException:
            await engine.dispose()
            raise
        log.info("notification spool open: %s", path)
        return cls(engine, owns_engine=True, table=notify_spool)

    def _extra(self, item: Pending) -> dict[str, Any]:
        return {"episode": item.event.episode, "synced": False}

    def _changed(self) -> dict[str, Any]:
        return {"synced": False}

    async def _covered(self, conn: AsyncConnection,
                       new: Sequence[Pending]) -> dict[Key, str]:
        episodes = {(p.receiver, p.event.episode) for p in new if p.event.episode}
        if not episodes:
            return {}
        table = self._table
        rows = await conn.execute(
            select(table.c.receiver, table.c.episode, table.c.event_id).where(
                tuple_(table.c.receiver, table.c.episode).in_(list(episodes))))
        first = {(r.receiver, r.episode): r.event_id for r in rows}
        return {p.key: f"told before as {first[(p.receiver, p.event.episode)]}"
                for p in new if (p.receiver, p.event.episode) in first}

    async def unsynced(self, limit: int = SYNC_BATCH) -> list[dict[str, Any]]:
        """Rows the store does not have as they are now, oldest change first."""
        table = self._table
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(table).where(table.c.synced.is_(False))
                                      .order_by(table.c.updated_at).limit(limit))
            return [dict(r._mapping) for r in rows]

    async def unsynced_count(self) -> int:
        async with self._engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(self._table)
                                      .where(self._table.c.synced.is_(False)))
        return int(count or 0)

    async def mark_synced(self, rows: Sequence[dict[str, Any]]) -> None:
        """These rows are in the store — unless they changed meanwhile (then the next
        sync copies them again)."""
        table = self._table
        async with self._engine.begin() as conn:
            for row in rows:
                await conn.execute(update(table).where(and_(
                    table.c.event_id == row["event_id"], table.c.receiver == row["receiver"],
                    table.c.updated_at == row["updated_at"], table.c.state == row["state"],
                )).values(synced=True))

    async def adopt(self, settled: dict[Key, dict[str, Any]]) -> None:
        """Take the store's word for notifications it already settled."""
        table = self._table
        async with self._engine.begin() as conn:
            for (event_id, receiver), row in settled.items():
                await conn.execute(update(table).where(and_(
                    table.c.event_id == event_id, table.c.receiver == receiver)).values(
                    state=row["state"], attempts=row["attempts"],
                    message_id=row["message_id"], error=row["error"],
                    updated_at=row["updated_at"], synced=True))


def _create(conn: Connection) -> None:
    spool_metadata.create_all(conn)


class StoreMirror:
    """The store's ``notify_log``, reached on an engine of its own (the store opened
    and migrated it at start); every call may fail while the database is down."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        args: dict[str, Any] = {"timeout": connect_timeout}
        if not url.startswith("sqlite"):
            args["command_timeout"] = 30.0
        self._engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True,
                                                        connect_args=args)
        if self._engine.dialect.name == "sqlite":
            configure_sqlite(self._engine, immediate=True)
        self._password = self._engine.url.password

    def describe(self, exc: BaseException) -> str:
        """An error of the store fit for the log: the driver's words, no password."""
        cause = getattr(exc, "orig", None) or exc
        text = bounded(f"{type(cause).__name__}: {cause}", 300)
        return text.replace(str(self._password), "***") if self._password else text

    async def settled(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """Of ``keys``, those the store has as other than pending."""
        found: dict[Key, dict[str, Any]] = {}
        async with self._engine.connect() as conn:
            for start in range(0, len(keys), _BATCH):
                rows = await conn.execute(select(notify_log).where(
                    tuple_(notify_log.c.event_id, notify_log.c.receiver)
                    .in_(list(keys[start:start + _BATCH])),
                    notify_log.c.state != PENDING))
                found.update({(r.event_id, r.receiver): dict(r._mapping) for r in rows})
        return found

    async def pending(self) -> list[Pending]:
        """What the store still has as owed (written before the spool existed)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(notify_log.c.event, notify_log.c.receiver)
                                      .where(notify_log.c.state == PENDING))
            return [Pending(event_from_json(r.event), r.receiver) for r in rows]

    async def copy(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or update ``rows`` in the store; a row the store has as settled is
        not turned back into pending."""
        if not rows:
            return
        keys = [(r["event_id"], r["receiver"]) for r in rows]
        async with self._engine.begin() as conn:
            known = {(r.event_id, r.receiver): r.state for r in await conn.execute(
                select(notify_log.c.event_id, notify_log.c.receiver, notify_log.c.state)
                .where(tuple_(notify_log.c.event_id, notify_log.c.receiver).in_(keys)))}
            new = [{k: r[k] for k in _COPIED} for r in rows
                   if (r["event_id"], r["receiver"]) not in known]
            if new:
                await conn.execute(insert(notify_log), new)
            for r in rows:
                state = known.get((r["event_id"], r["receiver"]))
                if state is None or state == r["state"] or r["state"] == PENDING:
                    continue
                await conn.execute(update(notify_log).where(
                    notify_log.c.event_id == r["event_id"],
                    notify_log.c.receiver == r["receiver"]).values(
                    {k: r[k] for k in ("state", "attempts", "message_id", "error",
                                       "updated_at")}))

    async def close(self) -> None:
        await self._engine.dispose()


class SpooledLog:
    """The NotificationLog the daemon's dispatcher uses: the spool, kept in step with
    the store when it answers."""

    def __init__(self, spool: SpoolLog, mirror: StoreMirror) -> None:
        self.spool = spool
        self.mirror = mirror
        self.store_ok = True
        self.unsynced = 0  # rows the store has not seen, as of the last sync round

    @classmethod
    async def open(cls, path: Path, store_url: str) -> SpooledLog:
        return cls(await SpoolLog.open_file(path), StoreMirror(store_url))

    async def enqueue(self, items: Sequence[Pending], now: float) -> list[Pending]:
        new = await self.spool.enqueue(items, now)
        if not new:
            return new
        try:
            async with asyncio.timeout(STORE_ANSWER_SECONDS):
                settled = await self.mirror.settled([p.key for p in new])
        except Exception as exc:  # the store's trouble must not hold a notification
            self.store_unreachable("cannot ask the store what it already sent", exc)
            return new
        if settled:
            await self.spool.adopt(settled)
            log.info("notify: %d notification(s) the store has as settled not sent again",
                     len(settled))
        return [p for p in new if p.key not in settled]

    async def pending(self) -> list[Pending]:
        return await self.spool.pending()

    async def mark_sent(self, keys: Sequence[Key], message_id: str, attempts: int,
                        now: float) -> None:
        await self.spool.mark_sent(keys, message_id, attempts, now)

    async def mark_failed(self, keys: Sequence[Key], error: str, attempts: int,
                          now: float) -> None:
        await self.spool.mark_failed(keys, error, attempts, now)

    async def entries(self) -> list[LogEntry]:
        return await self.spool.entries()

    async def seed(self, now: float) -> int:
        """Take over what the store still owes (a daemon from before the spool, or a
        lost spool file); 0 when the store does not answer."""
        try:
            owed = await self.mirror.pending()
        except Exception as exc:  # as above
            self.store_unreachable("cannot read what the store still owes", exc)
            return 0
        return len(await self.spool.enqueue(owed, now))

    async def sync(self) -> int:
        """Copy the spool's changes to the store; how many rows.  Raises whatever the
        store raises while it is down."""
        copied = 0
        for _ in range(100):  # bounded; the next round goes on
            rows = await self.spool.unsynced()
            if not rows:
                break
            await self.mirror.copy(rows)
            await self.spool.mark_synced(rows)
            copied += len(rows)
        if not self.store_ok:
            log.info("notify: the store answers again; the spool is copied to it")
        self.store_ok = True
        self.unsynced = await self.spool.unsynced_count()
        return copied

    async def count_unsynced(self) -> int:
        self.unsynced = await self.spool.unsynced_count()
        return self.unsynced

    def store_unreachable(self, doing: str, exc: BaseException) -> None:
        """Said once per outage: notifications go on from the spool meanwhile."""
        if self.store_ok:
            log.warning("notify: %s (%s); notifications go on from the local spool",
                        doing, self.mirror.describe(exc))
        log.debug("notify: %s", doing, exc_info=exc)
        self.store_ok = False

    async def close(self) -> None:
        await self.spool.close()
        await self.mirror.close()
