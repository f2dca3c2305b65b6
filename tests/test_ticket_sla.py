"""Honest SLA figures on real databases: no acknowledgement, no response time; a breach
stays a breach after the deadline is renegotiated; a reclassified severity shows both;
an emergency answered "immediately" (0 hours)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.exporters.reports import render
from elvwatch.exporters.reports.periods import whole_range
from elvwatch.exporters.reports.render import SiteInfo
from elvwatch.exporters.reports.sla import SlaReport, sla_report
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.events import TicketEvent
from elvwatch.tickets.lifecycle import IllegalTransition
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.records import ServiceRecord
from elvwatch.tickets.stats import ticket_stats
from elvwatch.tickets.store import Store
from elvwatch.web.page_text import MESSAGES
from elvwatch.web.server import HttpListener
from tests.test_daemon import free_port
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, fault

FIRING, CLEARED = FaultState.FIRING, FaultState.CLEARED
MARCH = whole_range(date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Asia/Shanghai"))
ZH = SiteInfo(SITE, "湖畔花园", "zh-CN")
EN = SiteInfo(SITE, "Lakeside Gardens", "en")
RECORD = ServiceRecord("王工", "重新敷设暗埋线路")


@pytest.fixture
def manager(store: Store, clock: Clock) -> TicketManager:
    terms = replace(TERMS, contract_start=None, escalation=("张经理",))
    return TicketManager(store, lambda: {SITE: terms}, clock)


def kinds(events: list[TicketEvent]) -> list[str]:
    return [e.kind.value for e in events]


async def report(store: Store, as_of: float) -> SlaReport:
    return await sla_report(store, SITE, MARCH, as_of=as_of)


async def test_ticket_nobody_acknowledged_has_no_response_time_and_breaches_once_past_due(
        manager: TicketManager, store: Store) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.handle([fault("cam-01", CLEARED, T0 + HOUR)])  # recovered on its own
    early = await report(store, T0 + 11 * HOUR)
    (times,) = early.tickets
    assert times.response_s is None and times.repair_s == HOUR
    (stats,) = early.by_severity
    assert (stats.tickets, stats.responded, stats.resolved) == (1, 0, 1)
    assert early.breaches == ()                     # not yet due
    late = await report(store, T0 + 15 * HOUR)
    (breach,) = late.breaches
    assert (breach.number, breach.which, breach.met_at, breach.late_s) == (
        number, "response", None, 3 * HOUR)
    assert render.breach_reason(breach, EN) == "response not met, 3:00:00 overdue"
    html = render.sla_html(late, ZH, T0 + 15 * HOUR)
    assert "未响应" in html


async def test_acknowledging_is_the_response_and_the_systems_resolution_is_not(
        manager: TicketManager, store: Store, clock: Clock) -> None:
    first = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    clock.now = T0 + 2 * HOUR
    await manager.acknowledge(first, "李四")
    second = (await manager.handle([fault("cam-02", FIRING, T0)]))[0].ticket
    clock.now = T0 + 3 * HOUR
    await manager.resolve(second, "王工", RECORD)  # an engineer fixed it unasked: a response
    times = {t.number: t for t in (await report(store, T0 + 4 * HOUR)).tickets}
    assert times[first].response_s == 2 * HOUR and times[second].response_s == 3 * HOUR


async def test_renegotiated_major_deadline_keeps_its_breach_and_the_new_one_applies(
        manager: TicketManager, store: Store, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0, severity="major")]))[0].ticket
    clock.now = T0 + HOUR
    await manager.acknowledge(number, "李四")
    await manager.set_resolve_due(number, "张经理", T0 + 24 * HOUR, "需订购硬盘")
    assert kinds(await manager.tick(T0 + 24 * HOUR)) == ["breached", "escalated"]
    clock.now = T0 + 30 * HOUR
    (renegotiated,) = await manager.set_resolve_due(number, "张经理", T0 + 72 * HOUR,
                                                    "厂家缺货")
    assert renegotiated.note == ("repair due 2026-03-05T08:00+00:00 (was due "
                                 "2026-03-03T08:00+00:00; breached): 厂家缺货")
    assert await manager.tick(T0 + 71 * HOUR) == []  # the new deadline, from now on
    ticket = (await manager.get(number)).ticket
    assert ticket.resolve_breached                   # a breach stays a breach
    # ... in /metrics too: the breach counter does not go back down.
    assert (await ticket_stats(store)).breaches == {(SITE, "major", "resolve"): 1}
    clock.now = T0 + 60 * HOUR
    await manager.resolve(number, "王工", RECORD)

    sla = await report(store, T0 + 80 * HOUR)
    (breach,) = sla.breaches
    assert (breach.which, breach.due, breach.met_at, breach.late_s) == (
        "resolve", T0 + 24 * HOUR, None, 6 * HOUR)
    assert (breach.recorded_at, breach.replaced_at) == (T0 + 24 * HOUR, T0 + 30 * HOUR)
    assert breach.replaced_why == "renegotiated: 厂家缺货"
    (stats,) = sla.by_severity
    assert (stats.severity, stats.resolve_breaches, stats.repair_worst_s) == (
        "major", 1, 60 * HOUR)
    assert render.breach_reason(breach, ZH) == (
        "修复期限届满未完成，超时 6:00:00 后改期；系统于 2026-03-03 16:00 记录超时；"
        "2026-03-03 22:00 改为新期限（重新商定：厂家缺货），超时仍计")
    detail = await manager.get(number)
    assert [d["due"] for d in detail.superseded_deadlines] == [T0 + 24 * HOUR]


async def test_a_renegotiated_deadline_missed_again_is_a_second_breach(
        manager: TicketManager, store: Store, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0, severity="major")]))[0].ticket
    await manager.acknowledge(number, "李四")
    await manager.set_resolve_due(number, "张经理", T0 + 24 * HOUR)
    await manager.tick(T0 + 24 * HOUR)
    clock.now = T0 + 25 * HOUR
    await manager.set_resolve_due(number, "张经理", T0 + 48 * HOUR)
    assert kinds(await manager.tick(T0 + 48 * HOUR)) == ["breached", "escalated"]
    sla = await report(store, T0 + 50 * HOUR)
    assert [(b.due, b.replaced_at) for b in sla.breaches] == [
        (T0 + 24 * HOUR, T0 + 25 * HOUR), (T0 + 48 * HOUR, None)]
    assert sla.by_severity[0].resolve_breaches == 2
    assert (await ticket_stats(store)).breaches == {(SITE, "major", "resolve"): 2}


async def test_reclassified_ticket_shows_both_severities_in_audit_and_report(
        manager: TicketManager, store: Store, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    clock.now = T0 + HOUR
    await manager.acknowledge(number, "李四")
    clock.now = T0 + 3 * HOUR
    (event,) = await manager.reclassify(number, "王工", "major", "暗埋线路故障，需开挖")
    assert event.note == ("general → major: 暗埋线路故障，需开挖; repair due to agree "
                          "(was due 2026-03-02T20:00+00:00)")
    ticket = (await manager.get(number)).ticket
    assert (ticket.severity, ticket.original_severity) == ("major", "general")
    assert ticket.resolve_to_agree and ticket.resolve_due is None
    assert ticket.response_due == T0 + 12 * HOUR    # answered already: unchanged
    assert await manager.tick(T0 + 13 * HOUR) == []  # "to agree" cannot be breached

    sla = await report(store, T0 + 20 * HOUR)
    (times,) = sla.tickets
    assert (times.severity, times.original_severity) == ("major", "general")
    assert [s.severity for s in sla.by_severity] == ["major"]
    assert "重大（原一般）" in render.sla_html(sla, ZH, T0 + 20 * HOUR)
    assert "major (was general)" in render.sla_html(sla, EN, T0 + 20 * HOUR)


async def test_reclassifying_an_unanswered_ticket_as_emergency_escalates_at_once(
        manager: TicketManager, clock: Clock) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    clock.now = T0 + HOUR
    events = await manager.reclassify(number, "值班员", "emergency", "机房漏水")
    assert kinds(events) == ["reclassified", "escalated"]
    assert events[1].note == "emergency, at once: escalated to 张经理"
    ticket = (await manager.get(number)).ticket
    assert (ticket.response_due, ticket.resolve_due) == (T0 + 0.5 * HOUR, T0 + 4 * HOUR)
    # Its half-hour is already gone: the next round reports the breach.
    assert kinds(await manager.tick(T0 + HOUR)) == ["breached", "escalated"]


@pytest.mark.parametrize(("severity", "reason", "message"), [
    ("general", "x", "is already general"),
    ("urgent", "x", "severity must be one of general, major, emergency"),
    ("major", " ", "reason is required"),
])
async def test_bad_reclassification_is_refused_and_changes_nothing(
        manager: TicketManager, severity: str, reason: str, message: str) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    before = await manager.get(number)
    with pytest.raises(ValueError, match=message):
        await manager.reclassify(number, "王工", severity, reason)
    assert await manager.get(number) == before


async def test_resolved_ticket_and_work_order_cannot_be_reclassified(
        store: Store, clock: Clock) -> None:
    manager = TicketManager(store, lambda: {SITE: TERMS}, clock)
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.resolve(number, "王工", RECORD)
    with pytest.raises(IllegalTransition, match=r"cannot reclassify ticket .*: it is resolved"):
        await manager.reclassify(number, "王工", "major", "late diagnosis")
    (order, *_) = await manager.tick(T0)
    with pytest.raises(ValueError, match="is a preventive ticket: it has no severity"):
        await manager.reclassify(order.ticket, "王工", "major", "x")


async def test_emergency_response_hours_zero_means_immediately(
        store: Store, clock: Clock) -> None:
    terms = replace(TERMS, contract_start=None, emergency_response_hours=0.0,
                    escalation=("张经理", "李总"))
    manager = TicketManager(store, lambda: {SITE: terms}, clock)
    events = await manager.handle([fault("cam-01", FIRING, T0, severity="emergency")])
    assert kinds(events) == ["opened", "escalated"]
    assert events[0].response_due == T0
    assert events[1].note == "emergency, at once: escalated to 张经理, 李总"
    # The breach is recorded, but the contacts were told when it opened: not twice.
    later = await manager.tick(T0 + 15)
    assert kinds(later) == ["breached"]
    assert later[0].note == "response deadline passed (due 2026-03-02T08:00+00:00)"


async def test_ticket_page_shows_an_unanswered_self_recovered_ticket_as_not_responded(
        manager: TicketManager, store: Store, store_url: str, tmp_path: Path) -> None:
    number = (await manager.handle([fault("cam-01", FIRING, T0)]))[0].ticket
    await manager.handle([fault("cam-01", CLEARED, T0 + HOUR)])  # recovered on its own
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": store_url}, "http": {"listen": f"127.0.0.1:{port}"},
        "sites": [{"id": SITE, "name": "湖畔花园", "contract": {"start": "2026-01-01"}}],
        "devices": [{"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1",
                     "checks": [{"type": "tcp", "port": free_port(), "interval": 60}]}],
    }, allow_unicode=True), encoding="utf-8")
    app = App(load_config(path), HttpListener())
    await app.start()
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/tickets/{number}") as resp:
            assert resp.status == 200
            page = await resp.text()
    finally:
        await app.stop()
    respond_by = MESSAGES["zh-CN"]["respond_by"]
    cell = re.search(rf"<dt>{re.escape(respond_by)}</dt><dd>(.*?)</dd>", page, re.S)
    assert cell is not None
    # Past due and nobody answered: overdue, not "met" by the system's own resolution.
    assert 'class="due due-late"' in cell.group(1) and "due-met" not in cell.group(1)
