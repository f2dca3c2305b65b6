"""Preventive maintenance work orders: periods across month and quarter boundaries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.ticket_fixtures import SITE, TERMS, Clock
from tickets.lifecycle import IllegalTransition
from tickets.manager import TicketManager
from tickets.preventive import due_work_orders, period_at
from tickets.store import Store

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> float:
    return datetime(*args, tzinfo=SHANGHAI).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(("moment", "frequency", "key", "start", "end"), [
    (local(2026, 3, 31, 23, 59, 59), "monthly", "2026-03", local(2026, 3, 1), local(2026, 4, 1)),
    (local(2026, 4, 1), "monthly", "2026-04", local(2026, 4, 1), local(2026, 5, 1)),
    (local(2026, 12, 31, 12), "monthly", "2026-12", local(2026, 12, 1), local(2027, 1, 1)),
    (local(2026, 3, 31, 23, 59, 59), "quarterly", "2026-Q1", local(2026, 1, 1),
     local(2026, 4, 1)),
    (local(2026, 4, 1), "quarterly", "2026-Q2", local(2026, 4, 1), local(2026, 7, 1)),
    (local(2026, 12, 31, 23), "quarterly", "2026-Q4", local(2026, 10, 1), local(2027, 1, 1)),
    # 16:30 UTC on 31 March is already April in Shanghai: periods are the site's local time.
    (datetime(2026, 3, 31, 16, 30, tzinfo=UTC).timestamp(), "monthly", "2026-04",
     local(2026, 4, 1), local(2026, 5, 1)),
])
def test_period_boundaries_are_local_calendar_months_and_quarters(
        moment: float, frequency: str, key: str, start: float, end: float) -> None:
    period = period_at(moment, frequency, SHANGHAI)
    assert (period.key, period.start, period.end) == (key, start, end)


def test_no_work_orders_outside_the_contract_or_without_one() -> None:
    terms = replace(TERMS, contract_start=date(2026, 1, 15), contract_months=12)
    assert due_work_orders(terms, local(2026, 1, 14, 23)) == []
    assert [(o.system, o.period.key) for o in due_work_orders(terms, local(2026, 1, 15))] == [
        ("alarm", "2026-Q1"), ("cctv", "2026-01"), ("network", "2026-01")]  # every system
    assert due_work_orders(terms, local(2027, 1, 14, 23)) != []
    assert due_work_orders(terms, local(2027, 1, 15)) == []
    assert due_work_orders(replace(terms, contract_start=None), local(2026, 6, 1)) == []


@pytest.fixture
async def manager(store_url: str) -> AsyncIterator[TicketManager]:
    # CCTV monthly and alarm quarterly: the two cadences (network has its own test).
    terms = replace(TERMS, systems=("cctv", "alarm"))
    async with await Store.open(store_url) as store:
        yield TicketManager(store, lambda: {SITE: terms}, Clock(local(2026, 3, 31, 23)))


async def test_work_orders_open_once_per_period_across_month_and_quarter_ends(
        manager: TicketManager) -> None:
    first = await manager.tick(local(2026, 3, 31, 23))
    assert sorted((e.system, e.note, e.resolve_due) for e in first) == [
        ("alarm", "due 2026-Q1", local(2026, 4, 1)),
        ("cctv", "due 2026-03", local(2026, 4, 1))]
    assert {e.kind.value for e in first} == {"preventive_due"}
    assert await manager.tick(local(2026, 3, 31, 23, 30)) == []  # same periods: nothing new
    crossed = await manager.tick(local(2026, 4, 1, 0, 0, 1))
    # The March and Q1 orders are overdue (breached once each), April and Q2 are due.
    assert sorted((e.kind.value, e.system, e.note.split(" (")[0]) for e in crossed) == [
        ("breached", "alarm", "resolve deadline passed"),
        ("breached", "cctv", "resolve deadline passed"),
        ("escalated", "alarm", "resolve deadline passed: escalated"),
        ("escalated", "cctv", "resolve deadline passed: escalated"),
        ("preventive_due", "alarm", "due 2026-Q2"), ("preventive_due", "cctv", "due 2026-04")]
    may = await manager.tick(local(2026, 5, 1, 0, 0, 1))
    assert [e.note for e in may if e.kind.value == "preventive_due"] == ["due 2026-05"]
    orders = await manager.list_tickets(kind="preventive")
    assert sorted(t.period or "" for t in orders) == [
        "2026-03", "2026-04", "2026-05", "2026-Q1", "2026-Q2"]


async def test_completing_a_work_order_records_its_checklist(manager: TicketManager) -> None:
    events = await manager.tick(local(2026, 3, 10))
    number = next(e.ticket for e in events if e.system == "cctv")
    with pytest.raises(ValueError, match=r"missing \['check_recording'\]"):
        await manager.complete_preventive(number, "王工", "王工", {
            "clean_lens": (True, ""), "check_image": (True, ""), "check_time": (True, "")})
    resolved = await manager.complete_preventive(number, "王工", "王工", {
        "clean_lens": (True, ""), "check_image": (True, "清晰"), "check_time": (False, "慢 40 s"),
        "check_recording": (True, "30 天")})
    assert resolved[0].kind.value == "resolved"
    assert resolved[0].note == "王工: checklist done; not ok: check_time"
    detail = await manager.get(number)
    assert [(r["item"], r["ok"], r["note"]) for r in detail.checklist_results] == [
        ("clean_lens", True, ""), ("check_image", True, "清晰"),
        ("check_time", False, "慢 40 s"), ("check_recording", True, "30 天")]
    with pytest.raises(IllegalTransition, match="it is resolved"):
        await manager.complete_preventive(number, "王工", "王工", {})
