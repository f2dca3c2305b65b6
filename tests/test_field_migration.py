"""Migration 0005 on a store written before it (0004), on SQLite and PostgreSQL: a return
visit recorded on a ticket gets the ticket's site (the feedback form lists feedback by
site), and the store then takes periodic visits with no ticket and the field records."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from alembic import command
from sqlalchemy import Integer, String, column, insert, table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from elvwatch.exporters.reports.periods import whole_range
from elvwatch.exporters.reports.service import service_report
from elvwatch.tickets.field_work import FieldWork, ReturnVisit
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store, UTCDateTime, alembic_config
from tests.test_ticket_migration import HOUR, T0, _at, _seed_0003

FEEDBACK = table("feedback", column("ticket_id", Integer), column("at", UTCDateTime()),
                 column("rating", Integer), column("comment", String),
                 column("recorded_by", String))


def _seed_0004(conn: Connection) -> None:
    _seed_0003(conn)
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "0004")
    conn.execute(insert(FEEDBACK), [{"ticket_id": 1, "at": _at(T0 + 5 * HOUR), "rating": 4,
                                     "comment": "及时", "recorded_by": "客服小刘"}])


async def test_0005_gives_old_feedback_its_site_and_takes_visits_without_a_ticket(
        store_url: str) -> None:
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_seed_0004)
    finally:
        await engine.dispose()
    async with await Store.open(store_url) as store:
        manager = TicketManager(store, dict, lambda: T0 + 6 * HOUR)
        await FieldWork(manager).return_visit("lakeside", "客服小刘", ReturnVisit(
            5, "运行良好", contact="张经理", quality_issue=False))
        march = whole_range(date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Asia/Shanghai"))
        report = await service_report(store, "lakeside", march)
        detail = await manager.get("T-2026-000001")
    assert [(f.number, f.rating, f.contact) for f in report.feedback] == [
        ("T-2026-000001", 4, ""), (None, 5, "张经理")]
    assert detail.feedback[0]["site"] == "lakeside"
    assert detail.visits == () and detail.photos == ()
