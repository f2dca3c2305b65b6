"""Migration 0004 on a store written by the previous release (0003), on SQLite and
PostgreSQL: the new columns are filled from what the audit trail and the sign-offs
already say, and the tickets read back through the manager."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import JSON, Boolean, Integer, String, column, insert, table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store, UTCDateTime, alembic_config
from tests.ticket_fixtures import HOUR, T0


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


TICKETS = table(
    "tickets", column("id", Integer), column("number", String), column("kind", String),
    column("fingerprint", String), column("open_key", String), column("site", String),
    column("site_name", String), column("language", String), column("system", String),
    column("device", String), column("title_zh", String), column("title_en", String),
    column("severity", String), column("state", String), column("summary", String),
    column("opened_at", UTCDateTime()), column("acknowledged_at", UTCDateTime()),
    column("resolved_at", UTCDateTime()), column("verified_at", UTCDateTime()),
    column("closed_at", UTCDateTime()), column("response_due", UTCDateTime()),
    column("resolve_due", UTCDateTime()), column("resolve_to_agree", Boolean),
    column("response_breached_at", UTCDateTime()), column("resolve_breached_at", UTCDateTime()),
    column("fault_active", Boolean), column("healthy_polls", Integer),
    column("recurrences", Integer), column("recovered_without_intervention", Boolean),
    column("checklist", JSON), column("event_seq", Integer), column("updated_at", UTCDateTime()),
    column("period", String))
EVENTS = table(
    "ticket_events", column("event_id", String), column("ticket_id", Integer),
    column("seq", Integer), column("kind", String), column("at", UTCDateTime()),
    column("actor", String), column("note", String), column("from_state", String),
    column("to_state", String))
SIGN_OFFS = table("sign_offs", column("ticket_id", Integer), column("name", String),
                  column("at", UTCDateTime()), column("comment", String))


def _ticket(number: int, kind: str, state: str, **times: float | None) -> dict[str, object]:
    row: dict[str, object] = {
        "id": number, "number": f"T-2026-{number:06d}", "kind": kind,
        "fingerprint": None, "open_key": None, "site": "lakeside", "site_name": "湖畔花园",
        "language": "zh-CN", "system": "cctv", "device": "cam-01" if kind == "fault" else None,
        "title_zh": "t", "title_en": "t", "severity": "general", "state": state,
        "summary": "", "resolve_to_agree": False, "fault_active": False, "healthy_polls": 0,
        "recurrences": 0, "recovered_without_intervention": False, "checklist": [],
        "event_seq": 0, "period": "2026-03" if kind == "preventive" else None,
        "opened_at": _at(T0), "updated_at": _at(T0)}
    for name in ("acknowledged_at", "resolved_at", "verified_at", "closed_at",
                 "response_due", "resolve_due", "response_breached_at",
                 "resolve_breached_at"):
        row[name] = _at(times.get(name))
    return row


def _event(ticket: int, seq: int, kind: str, at: float, actor: str,
           note: str = "") -> dict[str, object]:
    return {"event_id": f"T-2026-{ticket:06d}#{seq}", "ticket_id": ticket, "seq": seq,
            "kind": kind, "at": _at(at), "actor": actor, "note": note, "from_state": None,
            "to_state": "open"}


def _seed_0003(conn: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "0003")
    conn.execute(insert(TICKETS), [
        # Acknowledged by a person, resolved, signed off and closed by the old life.
        _ticket(1, "fault", "closed", acknowledged_at=T0 + HOUR, resolved_at=T0 + 2 * HOUR,
                verified_at=T0 + 3 * HOUR, closed_at=T0 + 3 * HOUR,
                response_due=T0 + 12 * HOUR, resolve_due=T0 + 12 * HOUR),
        # Nobody acknowledged; the system resolved it; both deadlines were breached, the
        # repair one then renegotiated (its breached_at cleared by the old release).
        _ticket(2, "fault", "resolved", resolved_at=T0 + 20 * HOUR,
                response_due=T0 + 12 * HOUR, resolve_due=T0 + 48 * HOUR,
                response_breached_at=T0 + 12 * HOUR),
        _ticket(3, "preventive", "open", resolve_due=T0 + 30 * 24 * HOUR),
    ])
    conn.execute(insert(EVENTS), [
        _event(1, 1, "opened", T0, "system"), _event(1, 2, "acknowledged", T0 + HOUR, "李四"),
        _event(1, 3, "resolved", T0 + 2 * HOUR, "王工"),
        _event(2, 1, "opened", T0, "system"),
        _event(2, 2, "breached", T0 + 12 * HOUR, "system",
               "response deadline passed (due 2026-03-02T20:00+00:00)"),
        _event(2, 3, "breached", T0 + 12 * HOUR, "system",
               "resolve deadline passed (due 2026-03-02T20:00+00:00)"),
        _event(2, 4, "resolved", T0 + 20 * HOUR, "system", "recovered without intervention"),
        _event(3, 1, "preventive_due", T0, "system", "due 2026-03"),
    ])
    conn.execute(insert(SIGN_OFFS), [{"ticket_id": 1, "name": "张经理", "at": _at(T0 + 3 * HOUR),
                                      "comment": ""}])


async def test_0004_fills_responses_breaches_sign_offs_and_channels_from_0003_data(
        store_url: str) -> None:
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_seed_0003)
    finally:
        await engine.dispose()
    async with await Store.open(store_url) as store:
        manager = TicketManager(store, dict)
        first, second, order = [(await manager.get(f"T-2026-{n:06d}")).ticket
                                for n in (1, 2, 3)]
    assert (first.responded_at, first.signed_off_at, first.close_reason, first.channel) == (
        T0 + HOUR, T0 + 3 * HOUR, "signed_off", "monitoring")
    # The system's resolution is no response; the renegotiated repair breach stays.
    assert second.responded_at is None
    assert second.response_breached and second.resolve_breached
    assert (second.close_reason, second.awaiting_record) == (None, False)
    assert (order.channel, order.responded_at) == ("schedule", None)


def _downgrade(conn: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    command.downgrade(config, "0003")


async def test_0004_downgrades_to_0003_and_upgrades_again(store_url: str) -> None:
    await (await Store.open(store_url)).close()
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade)
            version = (await conn.exec_driver_sql(
                "SELECT version_num FROM alembic_version")).scalar_one()
            assert version == "0003"
    finally:
        await engine.dispose()
    async with await Store.open(store_url) as store:
        assert await TicketManager(store, dict).list_tickets() == []
