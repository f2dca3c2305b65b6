"""Preventive maintenance work orders: periods across month and quarter boundaries,
checklists per system and device kind from the config, follow-ups of failed items, and
the SLA report telling late orders from those not yet due."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from elvwatch.config.loading import load_config
from elvwatch.config.terms import checklist_words, site_terms
from elvwatch.exporters.reports import render
from elvwatch.exporters.reports.periods import whole_range
from elvwatch.exporters.reports.render import SiteInfo
from elvwatch.exporters.reports.sla import sla_report
from elvwatch.tickets import silence_store
from elvwatch.tickets.core import VISIT_SILENCE_SECONDS
from elvwatch.tickets.field_work import Dispatch, FieldWork
from elvwatch.tickets.lifecycle import IllegalTransition
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.notes import local_note
from elvwatch.tickets.preventive import due_work_orders, item_names, period_at
from elvwatch.tickets.records import Actor
from elvwatch.tickets.store import Store
from tests.ticket_fixtures import SITE, TERMS, Clock, archive

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


async def test_the_visit_silence_runs_while_an_engineer_is_on_site(
        manager: TicketManager) -> None:
    """Dispatched with an ETA: the silence waits for it; the arrival moves it to now; the
    order completed while one engineer is still there keeps it until the last leaves;
    completed with nobody on site, or closed, ends it at once."""
    clock = manager.clock
    assert isinstance(clock, Clock)
    clock.now = local(2026, 3, 10, 8)
    events = await manager.tick(clock.now)
    number = next(e.ticket for e in events if e.system == "cctv")
    field = FieldWork(manager)

    async def visit() -> tuple[float, float]:
        (silence,) = [s for s in await silence_store.load(manager.store)
                      if s.id == f"visit-{number}"]
        assert silence.matchers == {"site": {SITE}, "system": {"cctv"}}
        return silence.starts, silence.until

    await field.dispatch(number, "李四", Dispatch("定期保养", "王工", local(2026, 3, 10, 14)))
    assert await visit() == (local(2026, 3, 10, 14), local(2026, 3, 10, 22))   # from the ETA
    clock.now = local(2026, 3, 10, 9, 30)
    await field.arrive(number, "王工", "王工")                                # early
    assert await visit() == (clock.now, clock.now + VISIT_SILENCE_SECONDS)
    await field.arrive(number, "刘工", "刘工")
    clock.now = local(2026, 3, 10, 11)
    await manager.complete_preventive(number, "王工", "王工", {
        item: (True, "") for item in (await manager.get(number)).ticket.checklist})
    await field.depart(number, "王工", "王工")
    assert (await visit())[1] == local(2026, 3, 10, 9, 30) + VISIT_SILENCE_SECONDS  # 刘工
    clock.now = local(2026, 3, 10, 11, 20)
    await field.depart(number, "刘工", "刘工")
    assert await visit() == (local(2026, 3, 10, 9, 30), clock.now)          # the last left
    clock.now = local(2026, 3, 10, 12)
    await field.arrive(number, "王工", "王工", "回来取梯子")                  # order done:
    assert await visit() == (local(2026, 3, 10, 9, 30), local(2026, 3, 10, 11, 20))  # no mute


def test_every_system_gets_work_orders_with_its_kinds_items_and_the_configs_lists(
        tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "sites": [{"id": SITE, "name": "湖畔花园", "contract": {"start": "2026-01-01",
                                                              "preventive": "monthly"}}],
        "checklists": {"kinds": {"ups": [
            {"id": "ups_runtime", "zh": "测试 UPS 后备时间", "en": "test UPS runtime"}]},
                       "systems": {"alarm": []}},
        "devices": [
            {"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1"},
            {"id": "nvr-01", "site": SITE, "kind": "nvr", "host": "127.0.0.1"},
            {"id": "sw-01", "site": SITE, "kind": "switch", "host": "127.0.0.1"},
            {"id": "ups-01", "site": SITE, "kind": "ups", "host": "127.0.0.1"},
            {"id": "panel-01", "site": SITE, "kind": "alarm_panel", "host": "127.0.0.1"}],
    }, allow_unicode=True), encoding="utf-8")
    terms = site_terms(load_config(path, environ={}))[SITE]
    orders = {o.system: [i.id for i in o.checklist]
              for o in due_work_orders(terms, local(2026, 3, 10))}
    assert orders == {
        # The system's items, then those of its kinds at the site (NVR: disks, retention).
        "cctv": ["clean_lens", "check_image", "check_time", "check_recording", "nvr_disks",
                 "nvr_retention"],
        "network": ["check_links", "check_cabinet", "check_labels", "switch_poe_budget"],
        # The config's list replaces the UPS kind's; its empty alarm list drops the system
        # (the panel's own kind items remain).
        "power": ["check_mains", "check_breakers", "ups_runtime"],
        "alarm": ["alarm_panel_zones"]}
    names = item_names("zh-CN", checklist_words(load_config(path, environ={})))
    assert names["ups_runtime"] == "测试 UPS 后备时间" and names["nvr_disks"] == "检查硬盘状态"


async def test_a_failed_item_opens_a_follow_up_ticket_linked_to_the_order(
        store_url: str) -> None:
    terms = replace(TERMS, systems=("cctv",))
    async with await Store.open(store_url) as store:
        await store.sync_archive(archive(), datetime.fromtimestamp(local(2026, 3, 1), UTC))
        clock = Clock(local(2026, 3, 10))
        manager = TicketManager(store, lambda: {SITE: terms}, clock)
        order = (await manager.tick(local(2026, 3, 10)))[0].ticket
        clock.now = local(2026, 3, 12, 10)
        events = await manager.complete_preventive(
            order, Actor("王工 (wang)", "page"), "王工",
            {"clean_lens": (True, ""), "check_image": (True, ""),
             "check_time": (False, "快 3 分钟，无法校时"), "check_recording": (True, "")},
            devices={"check_time": "cam-03"})
        assert [e.kind.value for e in events] == ["resolved", "opened", "follow_up"]
        follow = await manager.get(events[1].ticket)
        assert (follow.ticket.follow_up_of, follow.ticket.device, follow.ticket.channel,
                follow.ticket.reporter) == (order, "cam-03", "schedule", "王工")
        assert follow.ticket.title_zh == "cam-03 保养项目不合格：核对设备时间"
        assert follow.ticket.response_due == local(2026, 3, 12, 22)   # the contract's 12 h
        detail = await manager.get(order)
        (failed,) = [r for r in detail.checklist_results if not r["ok"]]
        assert (failed["follow_up"], failed["device"]) == (events[1].ticket, "cam-03")
        note = local_note(detail.events[-1].note, "zh-CN", "Asia/Shanghai",
                          item_names("zh-CN").get)
        assert note == f"开后续工单 {events[1].ticket}：核对设备时间 不合格"
        report = await sla_report(store, SITE, whole_range(date(2026, 3, 1),
                                                           date(2026, 3, 31), SHANGHAI),
                                  as_of=local(2026, 3, 20))
        (work_order,) = report.work_orders
        assert (work_order.status, work_order.follow_ups) == ("done_in_time",
                                                              (events[1].ticket,))


async def test_the_sla_report_tells_late_work_orders_from_those_not_yet_due(
        store_url: str) -> None:
    async with await Store.open(store_url) as store:
        manager = TicketManager(store, lambda: {SITE: TERMS}, Clock(local(2026, 3, 10)))
        await manager.tick(local(2026, 3, 10))   # March (cctv, network), Q1 (alarm)
        march = whole_range(date(2026, 3, 1), date(2026, 3, 31), SHANGHAI)

        async def statuses(as_of: float) -> dict[str, str]:
            report = await sla_report(store, SITE, march, as_of=as_of)
            return {w.system or "": w.status for w in report.work_orders}

        assert await statuses(local(2026, 3, 20)) == {
            "alarm": "not_yet_due", "cctv": "not_yet_due", "network": "not_yet_due"}
        cctv = next(t for t in await manager.list_tickets(kind="preventive")
                    if t.system == "cctv")
        manager.clock = Clock(local(2026, 4, 2))
        await manager.complete_preventive(cctv.number, "王工", "王工", {
            item: (True, "") for item in cctv.checklist})
        after = await statuses(local(2026, 4, 5))
        assert after == {"alarm": "late", "cctv": "done_late", "network": "late"}
        report = await sla_report(store, SITE, march, as_of=local(2026, 4, 5))
        html = render.sla_html(report, SiteInfo(SITE, "湖畔花园"), local(2026, 4, 5))
        assert "逾期未完成 2 张" in html and "逾期完成 1 张" in html and "未到期 0 张" in html
