"""The store against real databases: SQLite and a PostgreSQL server the suite starts."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, date, datetime, timedelta, timezone

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

import elvwatch.tickets.notify_log  # the notifiers' outbox table (0003), on Base too
import elvwatch.tickets.poller_marks  # the pollers' marks (0006), on Base too
import elvwatch.tickets.schema  # the ticket tables, on Base too
import elvwatch.tickets.site_leases  # noqa: F401  (the sites' leases, 0006; all are compared)
from elvwatch.rules.state import DeviceState, StateTransition
from elvwatch.tickets.store import (
    ArchiveChange,
    ArchiveEntry,
    Base,
    Store,
    StoreError,
    StoreUnavailable,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
TABLES = {"devices", "device_states", "state_transitions", "archive_events", "tickets",
          "ticket_events"}
HEAD = "0006"  # the newest migration shipped (0006: the pollers' marks)


def entry(device: str, **fields: object) -> ArchiveEntry:
    values: dict[str, object] = {"site": "lakeside", "kind": "ipc", "system": "cctv",
                                 "host": f"{device}.lan"}
    values.update(fields)
    return ArchiveEntry(device, **values)  # type: ignore[arg-type]


def went(device: str, previous: DeviceState, state: DeviceState, at: float,
         cause: str = "icmp: timeout") -> StateTransition:
    return StateTransition(device, previous, state, at, cause)


def _schema(conn: Connection) -> tuple[set[str], list[object], str | None]:
    names = set(inspect(conn).get_table_names())
    diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    version = MigrationContext.configure(conn).get_current_revision()
    return names, diffs, version


async def read_schema(url: str) -> tuple[set[str], list[object], str | None]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_schema)
    finally:
        await engine.dispose()


async def test_open_migrates_empty_database_and_reopening_changes_nothing(store_url: str) -> None:
    before, _, version = await read_schema(store_url)
    assert before == set() and version is None

    store = await Store.open(store_url)
    await store.sync_archive([entry("cam-01")], T0)
    await store.close()
    tables, diffs, version = await read_schema(store_url)
    assert tables >= TABLES and "alembic_version" in tables
    assert version == HEAD
    assert diffs == []  # the migration builds exactly what the models describe

    async with await Store.open(store_url) as again:
        assert [e.id for e in await again.archive()] == ["cam-01"]
    assert (await read_schema(store_url))[2] == HEAD


async def test_transitions_survive_reopen_identical_to_the_microsecond(store_url: str) -> None:
    at = [1740816000.123456, 1740816012.000001, 1740819600.999999]
    sent = [
        went("cam-01", DeviceState.UNKNOWN, DeviceState.UP, at[0], "all checks ok"),
        went("cam-01", DeviceState.UP, DeviceState.DOWN, at[1], "icmp: timeout; 门禁 offline"),
        went("cam-01", DeviceState.DOWN, DeviceState.UP, at[2], "all checks ok"),
    ]
    async with await Store.open(store_url) as store:
        await store.sync_archive([entry("cam-01")], T0)
        await store.record_transitions(sent)

    async with await Store.open(store_url) as store:
        back = await store.transitions()
    assert back == sent
    assert [t.at for t in back] == at  # bit for bit, not approximately


async def test_raw_clock_time_is_kept_to_the_nearest_microsecond(store_url: str) -> None:
    now = time.time()
    async with await Store.open(store_url) as store:
        await store.sync_archive([entry("cam-01")], T0)
        await store.record_transitions([went("cam-01", DeviceState.UP, DeviceState.DOWN, now)])
        (back,) = await store.transitions()
        assert abs(back.at - now) <= 0.5e-6
        assert back.at == round(back.at, 6)


async def test_current_states_hold_each_devices_latest_transition(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        await store.sync_archive([entry("cam-01"), entry("sw-01", kind="poe_switch")], T0)
        assert await store.current_states() == {}
        await store.record_transitions([
            went("cam-01", DeviceState.UNKNOWN, DeviceState.UP, 1000.5, "all checks ok"),
            went("sw-01", DeviceState.UNKNOWN, DeviceState.UP, 1001.0, "all checks ok"),
            went("cam-01", DeviceState.UP, DeviceState.DOWN, 1060.25, "icmp: timeout"),
        ])
        await store.record_transitions([
            went("sw-01", DeviceState.UP, DeviceState.DEGRADED, 1200.0, "snmp: timeout"),
        ])

    async with await Store.open(store_url) as store:
        assert await store.current_states() == {
            "cam-01": (DeviceState.DOWN, 1060.25, "icmp: timeout"),
            "sw-01": (DeviceState.DEGRADED, 1200.0, "snmp: timeout"),
        }


async def test_transition_of_device_missing_from_archive_is_rejected_whole(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        await store.sync_archive([entry("cam-01")], T0)
        with pytest.raises(StoreError):
            await store.record_transitions([
                went("cam-01", DeviceState.UNKNOWN, DeviceState.UP, 1000.0),
                went("ghost", DeviceState.UNKNOWN, DeviceState.UP, 1000.0),
            ])
        assert await store.transitions() == []
        assert await store.current_states() == {}


async def test_archive_sync_marks_dropped_devices_removed_and_returning_ones_active(
    store_url: str,
) -> None:
    camera = entry("cam-01", name="东门枪机", vendor="Hikvision", model="DS-2CD2T47",
                   serial="J1234", location="1号楼 / B1 / 东门", installed=date(2024, 5, 1),
                   warranty_until=date(2027, 4, 30), depends_on=("sw-01",), tags=("outdoor",))
    switch = entry("sw-01", kind="poe_switch", system="network")
    later = T0 + timedelta(days=30)
    async with await Store.open(store_url) as store:
        await store.sync_archive([camera, switch], T0)
        assert await store.archive() == [camera, switch]

        await store.sync_archive([switch], later)
        assert await store.archive() == [switch]
        everything = await store.archive(include_removed=True)
        assert [(e.id, e.removed_at) for e in everything] == [("cam-01", later), ("sw-01", None)]

        await store.sync_archive([camera, switch], later + timedelta(days=1))
        assert await store.archive() == [camera, switch]


async def test_reported_serial_change_records_replacement_event(store_url: str) -> None:
    camera = entry("cam-01", vendor="Hikvision", serial="J1234", firmware="V5.7.3")
    reported_at = T0 + timedelta(hours=3)
    async with await Store.open(store_url) as store:
        await store.sync_archive([camera], T0)
        changes = await store.update_device_facts(
            "cam-01", {"vendor": "Hikvision", "serial": "K9999", "hardware": "x"}, reported_at)
        assert changes == [ArchiveChange("cam-01", "serial", "J1234", "K9999", reported_at)]
        assert await store.update_device_facts("cam-01", {"serial": "K9999"}, reported_at) == []

    # After a restart the config still says J1234: the device's report stands.
    async with await Store.open(store_url) as store:
        await store.sync_archive([camera], T0 + timedelta(days=1))
        (stored,) = await store.archive()
        assert stored.serial == "K9999"
        assert await store.update_device_facts("cam-01", {"serial": "K9999"}, reported_at) == []

    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql(
                "SELECT device_id, field, old, new FROM archive_events")).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [("cam-01", "serial", "J1234", "K9999")]


async def test_transitions_range_query_is_half_open_and_filters_by_device(store_url: str) -> None:
    base = T0.timestamp()
    sent = [
        went("cam-01", DeviceState.UNKNOWN, DeviceState.UP, base),
        went("cam-02", DeviceState.UNKNOWN, DeviceState.UP, base + 10),
        went("cam-01", DeviceState.UP, DeviceState.DOWN, base + 3600),
        went("cam-01", DeviceState.DOWN, DeviceState.UP, base + 7200),
    ]
    async with await Store.open(store_url) as store:
        await store.sync_archive([entry("cam-01"), entry("cam-02")], T0)
        await store.record_transitions(sent)
        hour = timedelta(hours=1)
        assert await store.transitions(start=T0, end=T0 + 2 * hour) == sent[:3]
        assert await store.transitions("cam-01", start=T0 + hour) == sent[2:]
        assert await store.transitions("cam-01", end=T0 + hour) == sent[:1]
        assert await store.transitions("cam-02") == [sent[1]]
        # Any zone is accepted (16:00 in Beijing is 08:00 UTC); a naive time is a bug.
        beijing = T0.astimezone(timezone(timedelta(hours=8)))
        assert await store.transitions(start=beijing + hour) == sent[2:]
        with pytest.raises(ValueError, match="naive"):
            await store.transitions(start=beijing.replace(tzinfo=None))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unreachable_postgres_raises_redacted_store_error_quickly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql+asyncpg://elvwatch:s3cret-pw@127.0.0.1:{_free_port()}/elvwatch"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        await Store.open(url, connect_timeout=2)
    assert time.monotonic() - started < 5
    assert "s3cret-pw" not in str(raised.value) and "elvwatch:***@127.0.0.1" in str(raised.value)
    assert "s3cret-pw" not in raised.value.url
    assert "s3cret-pw" not in caplog.text


async def test_postgres_that_never_answers_times_out_with_store_error() -> None:
    with socket.socket() as silent:  # accepts TCP connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"u:\*\*\*@"):
            await Store.open(f"postgresql+asyncpg://u:pw@127.0.0.1:{port}/db", connect_timeout=1)
        assert time.monotonic() - started < 5


async def test_sqlite_in_missing_directory_raises_store_error(tmp_path: object) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await Store.open(f"sqlite+aiosqlite:///{tmp_path}/missing/elvwatch.db")


@pytest.mark.postgres
async def test_postgres_database_dropped_under_open_store_raises_store_error(
    postgres_url: str,
) -> None:
    base = make_url(postgres_url)
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute('CREATE DATABASE "going_away"')
        store = await Store.open(base.set(database="going_away").render_as_string(False))
        try:
            await store.sync_archive([entry("cam-01")], T0)
            await admin.execute('DROP DATABASE "going_away" WITH (FORCE)')
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as raised:
                await store.archive()
            assert time.monotonic() - started < 5
            assert base.password and base.password not in str(raised.value)
        finally:
            await store.close()
    finally:
        await admin.execute('DROP DATABASE IF EXISTS "going_away" WITH (FORCE)')
        await admin.close()


async def test_database_from_a_newer_elvwatch_is_refused_with_store_error(store_url: str) -> None:
    await (await Store.open(store_url)).close()
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    finally:
        await engine.dispose()
    with pytest.raises(StoreError, match="9999"):
        await Store.open(store_url)
