"""The store: equipment archive, device state and its history, in SQL.

SQLAlchemy 2 async on SQLite (default, ``sqlite+aiosqlite:////abs/path/elvwatch.db``) or
PostgreSQL (``postgresql+asyncpg://user:password@host/db``).  ``Store.open`` brings the
schema to the newest Alembic revision shipped in ``tickets/migrations``; no alembic.ini
is needed on disk.

Times go in as timezone-aware datetimes or epoch seconds and are kept in UTC with
microsecond precision; an epoch float with microsecond precision comes back identical.
Only state *changes* are stored, never one row per poll.

Errors::

    StoreError              base of every error the store raises on purpose; its message
    │                       names the database with the password replaced by ***
    ├── StoreUnavailable    cannot connect, connection lost, or the database timed out
    └── UnknownDevice       the device is not in the archive (sync_archive first)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    event,
    insert,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from elvwatch.rules.state import DeviceState, StateTransition

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")

# Facts a device reports about itself; a difference from the archive is an archive event
# (serial changed = the unit was replaced, firmware changed = it was upgraded).
FACT_FIELDS = ("vendor", "model", "serial", "firmware")
# What the config declares that a replacement recorded on a ticket may also set: the
# config's value wins only when the config itself changed since the last sync.
DECLARED_FIELDS = (*FACT_FIELDS, "installed", "warranty_until")
# Device-supplied strings are untrusted: bounded before they reach the database.
MAX_FACT_LENGTH = 256

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class StoreError(Exception):
    """An error the store raises on purpose; ``url`` has the password redacted."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class StoreUnavailable(StoreError):
    """The database cannot be reached, went away, or did not answer in time."""


class UnknownDevice(StoreError):
    """The device is not in the archive."""


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One device of the equipment archive (设备档案), as configured.

    ``location`` is one text, "building / floor / place".  ``removed_at`` is set only on
    entries read back from the store for devices no longer configured; ``sync_archive``
    ignores it.
    """

    id: str
    site: str
    kind: str
    system: str
    host: str
    name: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    location: str | None = None
    installed: date | None = None
    warranty_until: date | None = None
    depends_on: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    removed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ArchiveChange:
    """A fact the device reported that differs from the archive; ``old`` None: first learned."""

    device: str
    field: str
    old: str | None
    new: str
    at: datetime


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite keeps DATETIME as text without a zone, so every value is written in UTC:
    then text order is time order and range queries work.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Deterministic constraint names: SQLite migrations (batch mode) need them to alter tables.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DeviceRow(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site: Mapped[str] = mapped_column(String(128), index=True)
    system: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(Text)
    vendor: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    serial: Mapped[str | None] = mapped_column(Text)
    firmware: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(253))
    installed: Mapped[date | None] = mapped_column(Date)
    warranty_until: Mapped[date | None] = mapped_column(Date)
    depends_on: Mapped[list[str]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    # The config's values of DECLARED_FIELDS at the last sync (dates as ISO text).  A
    # config value overrides a reported or recorded one only when the config itself
    # changed, so a stale serial in the config does not undo the device's report (and
    # log a "replacement") on every restart, nor an old warranty a replacement's.
    declared: Mapped[dict[str, str | None]] = mapped_column(JSON)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeviceStateRow(Base):
    __tablename__ = "device_states"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    cause: Mapped[str] = mapped_column(Text)


class TransitionRow(Base):
    __tablename__ = "state_transitions"
    __table_args__ = (Index("ix_state_transitions_device_id_at", "device_id", "at"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    previous: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(Text)


class ArchiveEventRow(Base):
    __tablename__ = "archive_events"
    __table_args__ = (Index("ix_archive_events_device_id_at", "device_id", "at"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    field: Mapped[str] = mapped_column(String(32))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    # The ticket whose service record made the change (a replacement); NULL: the device
    # reported it (migration 0004).
    ticket: Mapped[str | None] = mapped_column(String(32))


def alembic_config(url: str | None = None) -> Config:
    """Alembic configuration for the shipped migrations, built in code (no .ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ***, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<unparsable database URL>"


class Store:
    """Async access to the store; open with ``await Store.open(url)``, then ``close``."""

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        self._engine = engine
        self._url = url
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The database URL, password redacted."""
        return redact(self._url)

    @classmethod
    async def open(
        cls, url: str, *, connect_timeout: float = 10.0, command_timeout: float = 60.0
    ) -> Store:
        """Connect and upgrade the schema to the newest revision.

        ``connect_timeout`` bounds connecting (and, on SQLite, waiting for a lock);
        ``command_timeout`` bounds each PostgreSQL statement, so a database that stops
        answering raises StoreUnavailable instead of hanging the daemon.
        """
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError:
            raise StoreError("invalid database URL (not shown: it may hold a password)") from None
        _check_sqlite_directory(parsed)
        connect_args: dict[str, Any]
        if parsed.get_backend_name() == "sqlite":
            connect_args = {"timeout": connect_timeout}
        else:
            connect_args = {"timeout": connect_timeout, "command_timeout": command_timeout}
        try:
            engine = create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise StoreError(f"unsupported database URL {redact(parsed)}: {exc}") from None
        if engine.dialect.name == "sqlite":
            # The daemon writes from several tasks (state writer, ticket housekeeping,
            # CLI): each transaction takes the write lock at BEGIN and waits its turn,
            # instead of failing with "database is locked" on a read→write upgrade.
            configure_sqlite(engine, immediate=True)
        store = cls(engine, parsed)
        try:
            with store._errors("open"):
                async with engine.begin() as conn:
                    await conn.run_sync(upgrade_schema)
        except BaseException:
            await engine.dispose()
            raise
        log.info("store open: %s", store.url)
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def sync_archive(self, entries: Iterable[ArchiveEntry], now: datetime) -> None:
        """Make the archive match the config: add and update devices, mark dropped ones
        removed (never deleted: reports need their history), un-mark returning ones."""
        now = _utc(now)
        wanted: dict[str, ArchiveEntry] = {}
        for entry in entries:
            if entry.id in wanted:
                raise ValueError(f"duplicate device id {entry.id!r}")
            wanted[entry.id] = entry
        with self._errors("sync the archive"):
            async with self._sessions.begin() as session:
                rows = {row.id: row for row in await session.scalars(select(DeviceRow))}
                for entry in wanted.values():
                    row = rows.get(entry.id)
                    if row is None:
                        session.add(_new_row(entry, now))
                    elif _apply_entry(row, entry):
                        row.updated_at = now
                for device_id, row in rows.items():
                    if device_id not in wanted and row.removed_at is None:
                        row.removed_at = row.updated_at = now

    async def update_device_facts(
        self, device: str, facts: Mapping[str, str], now: datetime
    ) -> list[ArchiveChange]:
        """Take vendor/model/serial/firmware as the device reports them; other keys and
        empty values are ignored.  Each difference is recorded and returned."""
        now = _utc(now)
        changes: list[ArchiveChange] = []
        with self._errors("update device facts"):
            async with self._sessions.begin() as session:
                row = await session.get(DeviceRow, device)
                if row is None:
                    raise UnknownDevice(f"device {device!r} is not in the archive", self.url)
                for name in FACT_FIELDS:
                    value = facts.get(name, "").strip()[:MAX_FACT_LENGTH]
                    old = getattr(row, name)
                    if not value or value == old:
                        continue
                    setattr(row, name, value)
                    changes.append(ArchiveChange(device, name, old, value, now))
                    session.add(ArchiveEventRow(device_id=device, at=now, field=name,
                                                old=old, new=value))
                if changes:
                    row.updated_at = now
        for change in changes:
            log.info("archive: %s %s %r -> %r", device, change.field, change.old, change.new)
        return changes

    async def record_transitions(self, transitions: Sequence[StateTransition]) -> None:
        """Store the transitions and each device's resulting state, in one transaction.
        Within the batch the last transition of a device is its current state."""
        if not transitions:
            return
        latest = {t.device: t for t in transitions}
        # Two statements, each one round trip however many devices: the SQLite write lock
        # is held from BEGIN, and a merge per device (a SELECT each) held it for as many
        # event-loop turns as devices — seconds on a busy daemon, starving other writers.
        history = [{"device_id": t.device, "at": from_epoch(t.at), "previous": t.previous.value,
                    "state": t.state.value, "cause": t.cause} for t in transitions]
        current = [{"device_id": t.device, "state": t.state.value, "since": from_epoch(t.at),
                    "cause": t.cause} for t in latest.values()]
        with self._errors("record transitions"):
            async with self._sessions.begin() as session:
                await session.execute(insert(TransitionRow), history)
                await session.execute(self._upsert_states(), current)

    def _upsert_states(self) -> Any:
        dialect = self._engine.dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DeviceStateRow)
        return stmt.on_conflict_do_update(
            index_elements=[DeviceStateRow.device_id],
            set_={"state": stmt.excluded.state, "since": stmt.excluded.since,
                  "cause": stmt.excluded.cause})

    async def current_states(self) -> dict[str, tuple[DeviceState, float, str]]:
        """device -> (state, since as epoch seconds, cause), as last recorded."""
        with self._errors("read current states"):
            async with self._sessions() as session:
                rows = await session.scalars(select(DeviceStateRow))
                return {r.device_id: (DeviceState(r.state), to_epoch(r.since), r.cause)
                        for r in rows}

    async def transitions(
        self,
        device: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[StateTransition]:
        """Transitions in time order, of one device or all, with ``start <= at < end``."""
        query = select(TransitionRow).order_by(TransitionRow.at, TransitionRow.id)
        if device is not None:
            query = query.where(TransitionRow.device_id == device)
        if start is not None:
            query = query.where(TransitionRow.at >= _utc(start))
        if end is not None:
            query = query.where(TransitionRow.at < _utc(end))
        with self._errors("read transitions"):
            async with self._sessions() as session:
                rows = await session.scalars(query)
                return [StateTransition(r.device_id, DeviceState(r.previous),
                                        DeviceState(r.state), to_epoch(r.at), r.cause)
                        for r in rows]

    async def archive(self, include_removed: bool = False) -> list[ArchiveEntry]:
        """The archive by site and id; devices removed from the config only on request."""
        query = select(DeviceRow).order_by(DeviceRow.site, DeviceRow.id)
        if not include_removed:
            query = query.where(DeviceRow.removed_at.is_(None))
        with self._errors("read the archive"):
            async with self._sessions() as session:
                return [_entry(row) for row in await session.scalars(query)]

    @asynccontextmanager
    async def transaction(self, doing: str) -> AsyncIterator[AsyncSession]:
        """One transaction for the other tables' code (tickets/ticket_store.py), with
        errors translated like ours; ``doing`` completes "cannot ..." in messages."""
        with self._errors(doing):
            async with self._sessions.begin() as session:
                yield session

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Translate driver and migration errors into StoreError at the boundary."""
        try:
            yield
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                OSError, TimeoutError) as exc:
            raise StoreUnavailable(self._message(doing, exc), self.url) from exc
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated or exc.statement is None:  # failed to connect
                raise StoreUnavailable(self._message(doing, exc), self.url) from exc
            raise StoreError(self._message(doing, exc), self.url) from exc
        except CommandError as exc:
            message = self._message(doing, exc) + " (written by a newer elvwatch?)"
            raise StoreError(message, self.url) from exc

    def _message(self, doing: str, exc: BaseException) -> str:
        # DBAPIError's own text carries SQL and parameters; the driver's error is enough.
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig else exc
        detail = str(cause) or type(cause).__name__
        if self._url.password:
            detail = detail.replace(str(self._url.password), "***")
        return f"store {self.url}: cannot {doing}: {detail}"


def _check_sqlite_directory(url: URL) -> None:
    # Said up front for a clearer message, and because aiosqlite (0.22) stops its worker
    # thread after a failed connect without waiting, which races a loop that is closing.
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or \
            database.startswith("file:"):
        return
    directory = Path(database).parent
    if not directory.is_dir():
        raise StoreUnavailable(
            f"store {redact(url)}: cannot open: directory {directory} does not exist", redact(url))


def upgrade_schema(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def configure_sqlite(engine: AsyncEngine, *, immediate: bool = False) -> None:
    """WAL so readers (HTTP pages, CLI) do not block the daemon's writes; foreign keys
    on; and BEGIN emitted by us, because the driver's own transaction handling skips
    it before DDL (SQLAlchemy's documented recipe) — so migrations are atomic.

    ``immediate``: take the write lock at BEGIN.  A deferred transaction that reads,
    then writes after another connection committed fails at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT) instead of waiting; writers sharing a file with
    another engine want IMMEDIATE."""
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: give a timezone-aware time")
    return moment.astimezone(UTC)


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)  # rounds to the microsecond


def to_epoch(moment: datetime) -> float:
    # Integer microseconds divided once: correctly rounded, so a float that had
    # microsecond precision comes back bit for bit.
    return ((moment - _EPOCH) // _MICROSECOND) / 1_000_000


def _declared(entry: ArchiveEntry) -> dict[str, str | None]:
    values = {name: getattr(entry, name) for name in DECLARED_FIELDS}
    return {name: v.isoformat() if isinstance(v, date) else v for name, v in values.items()}


def _new_row(entry: ArchiveEntry, now: datetime) -> DeviceRow:
    row = DeviceRow(id=entry.id, first_seen=now, updated_at=now, removed_at=None,
                    declared=_declared(entry))
    for name in DECLARED_FIELDS:
        setattr(row, name, getattr(entry, name))
    _apply_entry(row, entry)
    return row


def _apply_entry(row: DeviceRow, entry: ArchiveEntry) -> bool:
    """Copy the configured fields onto the row; True if anything changed."""
    configured: dict[str, object] = {
        "site": entry.site, "system": entry.system, "kind": entry.kind, "host": entry.host,
        "name": entry.name, "location": entry.location,
        "depends_on": list(entry.depends_on), "tags": list(entry.tags), "removed_at": None,
    }
    declared = _declared(entry)
    previous = row.declared or {}
    for name, value in declared.items():
        if value is not None and value != previous.get(name):
            configured[name] = getattr(entry, name)  # the operator edited the config: it wins
    changed = declared != previous
    for name, setting in configured.items():
        if getattr(row, name, None) != setting:
            setattr(row, name, setting)
            changed = True
    row.declared = declared
    return changed


def _entry(row: DeviceRow) -> ArchiveEntry:
    return ArchiveEntry(
        id=row.id, site=row.site, kind=row.kind, system=row.system, host=row.host,
        name=row.name, vendor=row.vendor, model=row.model, serial=row.serial,
        firmware=row.firmware, location=row.location, installed=row.installed,
        warranty_until=row.warranty_until, depends_on=tuple(row.depends_on),
        tags=tuple(row.tags), removed_at=row.removed_at,
    )
