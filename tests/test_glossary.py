"""The site's language throughout: every note the ticket stage writes on its own reads in
Chinese with local times, and pages, reports and messages name each state, severity,
event and system with the same word."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest

from elvwatch.exporters.notify.messages import render
from elvwatch.exporters.reports.words import word
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.actions import PartReplaced, ServiceRecord, SignOff
from elvwatch.tickets.events import TicketEvent, TicketEventKind
from elvwatch.tickets.field_work import Dispatch, FieldWork, ReturnVisit
from elvwatch.tickets.glossary import GLOSSARY, state_term, term
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.notes import event_note, local_note
from elvwatch.tickets.preventive import item_names
from elvwatch.tickets.records import NewTicket, Replacement, RmaClaim
from elvwatch.tickets.store import Store
from elvwatch.web.page_text import text
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, fault

DAY = 86400.0
# What may stay Latin in a Chinese note: ticket numbers and the few words people typed in
# this test.  Device ids are named by the archive.
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
NAMES = {f"cam-{i:02d}": f"{i}号摄像机" for i in range(1, 13)} | {"sw-01": "弱电间交换机"}


async def drive_every_note(store: Store, clock: Clock) -> TicketManager:
    """A month of the ticket stage on its own and with people: escalations, a recovery
    waiting for the record, a renegotiated and a reclassified deadline, a replacement, a
    warranty claim, a paper receipt, a closing without sign-off, a phone call, a work
    order with a failed item."""
    terms = replace(TERMS, escalation=("王经理",), emergency_response_hours=0.5)
    manager = TicketManager(store, lambda: {SITE: terms}, clock, close_after=2 * DAY)
    field = FieldWork(manager)
    one = (await manager.handle([fault("cam-01", FaultState.FIRING, T0)]))[0].ticket
    clock.now = T0 + HOUR
    await field.dispatch(one, "调度", Dispatch("更换电源", "王工", T0 + 2 * HOUR))
    await field.arrive(one, "王工 (wang)", "王工")
    await manager.handle([fault("cam-01", FaultState.CLEARED, T0 + 2 * HOUR)])  # awaits
    clock.now = T0 + 3 * HOUR
    await manager.resolve(one, "王工 (wang)", ServiceRecord(
        "王工", "更换摄像机", (PartReplaced("电源"),), replacements=(Replacement(
            serial="HK-0099", model="DS-2CD2143G2-I", warranty_until=date(2029, 1, 1)),),
        cause="进水"))
    await field.depart(one, "王工 (wang)", "王工")
    await manager.record_rma(one, "王工", RmaClaim("RMA-7", "摄像机", "海康售后 400-700"))
    await manager.devices_healthy(["cam-01"], 3)
    await manager.sign_off(one, "王工", SignOff("张经理", "好", channel="paper",
                                              receipt="HZ-1"))
    await field.return_visit(SITE, "客服", ReturnVisit(5, "满意"), one)

    major = (await manager.handle([fault("cam-02", FaultState.FIRING, T0,
                                         severity="major")]))[0].ticket
    await manager.set_resolve_due(major, "张经理", T0 + 4 * HOUR, "开挖")
    await manager.tick(T0 + 13 * HOUR)                       # response and repair breached
    clock.now = T0 + 14 * HOUR
    await manager.set_resolve_due(major, "张经理", T0 + 3 * DAY, "等材料")
    cabling = (await manager.handle([fault("cam-03", FaultState.FIRING, T0)]))[0].ticket
    await manager.reclassify(cabling, "王工", "major", "暗埋线路")
    emergency = (await manager.handle([fault("cam-04", FaultState.FIRING, T0,
                                             severity="emergency")]))[0].ticket
    await manager.handle([fault("cam-04", FaultState.CLEARED, T0 + 14 * HOUR)])
    await manager.devices_healthy(["cam-04"], 3)
    await manager.tick(T0 + 14 * HOUR + 3 * DAY)             # closes without sign-off
    await manager.create(NewTicket(SITE, "电梯厅黑屏", "业主", "phone", device="cam-05",
                                   reporter_contact="13900000000"), "调度")
    order = next(t.number for t in await manager.list_tickets(kind="preventive")
                 if t.system == "cctv")
    checklist = (await manager.get(order)).ticket.checklist
    await manager.complete_preventive(
        order, "王工 (wang)", "王工", {i: (i != "check_time", "") for i in checklist},
        devices={"check_time": "cam-06"})
    assert emergency
    return manager


async def test_every_note_the_ticket_stage_writes_reads_in_chinese_with_local_times(
        store: Store, clock: Clock) -> None:
    manager = await drive_every_note(store, clock)
    items = item_names("zh-CN")
    seen: set[str] = set()
    for ticket in await manager.list_tickets(limit=100):
        for event in (await manager.get(ticket.number)).events:
            shown = event_note(event.kind, event.actor, event.note, "zh-CN", "Asia/Shanghai",
                               items.get, lambda device: NAMES.get(device, device))
            seen.add(event.kind)
            latin = [w for w in LATIN_WORD.findall(shown) if w not in ("HZ", "RMA", "DS")]
            assert latin == [], (event.kind, event.note, shown)
            assert "+00:00" not in shown and "T0" not in shown
    assert {"opened", "acknowledged", "arrived", "departed", "resolved", "device_replaced",
            "rma", "verified", "signed_off", "closed", "feedback", "deadline_set",
            "breached", "escalated", "reclassified", "preventive_due", "follow_up"} <= seen


def test_a_note_nobody_wrote_a_pattern_for_is_kept_with_its_times_local() -> None:
    assert local_note("换了 2 个接头 at 2026-03-02T08:00+00:00", "zh-CN", "Asia/Shanghai") == \
        "换了 2 个接头 at 2026-03-02 16:00"
    assert local_note("recovered without intervention", "en", "Asia/Shanghai") == \
        "recovered without intervention"


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_pages_reports_and_messages_use_one_word_per_concept(language: str) -> None:
    for state in GLOSSARY["state"]:
        expected = state_term(state, "fault", language)
        assert text(language, f"ts_{state}") == expected
        assert word(state, language) == expected
    for severity in GLOSSARY["severity"]:
        assert text(language, f"sev_{severity}") == word(severity, language) == \
            term("severity", severity, language)
    for system in GLOSSARY["system"]:
        assert text(language, f"sys_{system}") == term("system", system, language)
    for coverage in GLOSSARY["coverage"]:
        assert text(language, f"cov_{coverage}") == word(f"cov_{coverage}", language)
    event = TicketEvent(id="e", kind=TicketEventKind.PREVENTIVE_DUE, ticket="T-2026-000001",
                        at=T0, site=SITE, site_name="湖畔花园", language=language,
                        severity="general", title_zh="视频监控系统定期保养 2026-03",
                        title_en="Preventive maintenance, CCTV, 2026-03", state="open",
                        system="cctv", ticket_kind="preventive", note="due 2026-03")
    message = render(event)
    if language == "zh-CN":
        # 定期保养 throughout: never 巡检 or 预防性维护.
        assert "定期保养到期" in message.subject and "待保养" in message.plain
        assert "保养周期 2026-03，期末前完成" in message.plain
        for page_or_report in (text(language, "checklist"), word("preventive_title", language),
                               term("ticket_kind", "preventive", language)):
            assert "保养" in page_or_report and "巡检" not in page_or_report
        assert "巡检" not in message.plain and "预防性" not in message.plain
