"""The EventFollower hands every stored event out once, in order, even when PostgreSQL
commits a later id first; a gap a rolled-back transaction leaves is given up in time."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from elvwatch.rules.faults import FaultState
from elvwatch.tickets import ticket_store as ts
from elvwatch.tickets.events import TicketEvent, TicketEventKind
from elvwatch.tickets.follower import EventFollower
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.schema import TicketRow
from elvwatch.tickets.store import Store
from tests.ticket_fixtures import T0, Clock, fault


def event(n: int) -> TicketEvent:
    return TicketEvent(id=f"T-1#{n}", kind=TicketEventKind.OPENED, ticket="T-1", at=float(n),
                       site="s", site_name="s", language="en", severity="general",
                       title_zh="t", title_en="t")


class Rows:
    """A narrow stand-in for the store's event table (ids as a database hands them)."""

    def __init__(self) -> None:
        self.committed: dict[int, TicketEvent] = {}

    async def events_after(self, after_id: int, limit: int = 500,
                           since: float | None = None) -> list[tuple[int, TicketEvent]]:
        return sorted((i, e) for i, e in self.committed.items() if i > after_id)[:limit]


async def test_an_id_committed_late_is_still_handed_out_once() -> None:
    rows, clock = Rows(), Clock(0.0)
    follower = EventFollower(rows, 0, gap_seconds=30, clock=clock)
    rows.committed.update({1: event(1), 3: event(3)})   # 2 is still in flight
    assert [e.id for e in await follower.poll()] == ["T-1#1", "T-1#3"]
    assert follower.position == 1
    assert await follower.poll() == []                  # 3 is not handed out twice
    clock.now = 10.0
    rows.committed[2] = event(2)
    assert [e.id for e in await follower.poll()] == ["T-1#2"]
    assert follower.position == 3


async def test_a_gap_no_transaction_fills_is_given_up_after_its_wait() -> None:
    rows, clock = Rows(), Clock(0.0)
    follower = EventFollower(rows, 0, gap_seconds=30, clock=clock)
    rows.committed.update({1: event(1), 3: event(3)})
    await follower.poll()
    clock.now = 29.0
    await follower.poll()
    assert follower.position == 1
    clock.now = 30.0
    rows.committed[4] = event(4)
    assert [e.id for e in await follower.poll()] == ["T-1#4"]
    assert follower.position == 4


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[Store]:
    base = make_url(postgres_url)
    name = f"test_{secrets.token_hex(6)}"
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        async with await Store.open(base.set(database=name).render_as_string(
                hide_password=False)) as store:
            yield store
    finally:
        admin = await asyncpg.connect(dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.mark.postgres
async def test_postgres_commit_of_a_lower_id_after_a_higher_one_is_not_lost(
        pg_store: Store) -> None:
    manager = TicketManager(pg_store, dict, Clock())
    opened, other = await manager.handle([fault("cam-01", FaultState.FIRING, T0),
                                          fault("cam-02", FaultState.FIRING, T0)])
    follower = EventFollower(manager, 0)
    assert [e.id for e in await follower.poll()] == [opened.id, other.id]
    async with pg_store.transaction("a slow writer") as slow:
        # Another ticket's row: the two writers do not wait for each other's locks.
        row = await slow.scalar(select(TicketRow).where(TicketRow.number == other.ticket))
        assert row is not None
        late = await ts.add_event(slow, row, TicketEventKind.FEEDBACK, T0 + 60,
                                  actor="慢", note="written first, committed last")
        await slow.flush()   # its id is taken now
        # Meanwhile another writer (the daemon, the CLI) commits a later id.
        (quick,) = await manager.acknowledge(opened.ticket, "快")
        assert [e.id for e in await follower.poll()] == [quick.id]
    assert [e.id for e in await follower.poll()] == [late.id]
    assert await follower.poll() == []
