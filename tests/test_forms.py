"""The plan's forms from field records in real stores: 服务回执单 one sheet per visit with
arrival, departure, cause, parts and charges; 用户回访反馈信息表 with the plan's fields,
after tickets and as periodic visits of the site; the PDFs portrait for forms and
landscape for tables, every box inside its page, and nothing for the renderer to warn
about."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from elvwatch.exporters.reports import render, tables
from elvwatch.exporters.reports.periods import whole_range
from elvwatch.exporters.reports.render import SiteInfo
from elvwatch.exporters.reports.service import service_report
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.actions import PartReplaced, ServiceRecord, SignOff
from elvwatch.tickets.field_work import Dispatch, FieldWork, ReturnVisit
from elvwatch.tickets.lifecycle import IllegalTransition
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import ArchiveEntry, Store
from tests.test_reports import sqlite_store  # noqa: F401  (fixture)
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, fault

SH = ZoneInfo("Asia/Shanghai")
DAY = 86400.0
SITE_ZH = SiteInfo(SITE, "湖畔花园", "zh-CN", address="滨江路 88 号")
LONG = "X" * 300     # an unbroken serial or part number: must not push a table off the page
ARCHIVE = [
    ArchiveEntry("cam-01", SITE, "ipc", "cctv", "cam-01.lan", name="北门摄像机",
                 location="1栋 / 1F / 北门", warranty_until=date(2027, 1, 1)),
    ArchiveEntry("cam-02", SITE, "ipc", "cctv", "cam-02.lan", location="2栋 / B1",
                 warranty_until=date(2025, 6, 30), serial=LONG),
]


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Month:
    store: Store
    manager: TicketManager
    field: FieldWork
    clock: Clock
    one_visit: str      # cam-01: dispatched, one visit, repaired, signed
    two_visits: str     # cam-02: diagnosed on a first visit, repaired on the second


async def seed(store: Store) -> Month:
    await store.sync_archive(ARCHIVE, moment(T0 - 30 * DAY))
    clock = Clock()
    manager = TicketManager(store, lambda: {SITE: replace(TERMS, contract_start=None)}, clock)
    field = FieldWork(manager)
    one = (await manager.handle([fault("cam-01", FaultState.FIRING, T0)]))[0].ticket
    two = (await manager.handle([fault("cam-02", FaultState.FIRING, T0)]))[0].ticket

    async def at(offset: float) -> None:
        clock.now = T0 + offset

    await at(HOUR)
    await field.dispatch(one, "调度小陈", Dispatch("更换电源适配器", "王工", T0 + 2 * HOUR))
    await at(2 * HOUR)
    await field.arrive(one, "王工 (wang)", "王工")
    await at(3 * HOUR)
    await manager.resolve(one, "王工 (wang)", ServiceRecord(
        "王工", "更换电源适配器，重新做网线水晶头", cause="电源适配器老化",
        parts=(PartReplaced("12V 电源适配器", unit_price_cents=8500),
               PartReplaced("超五类网线（米）", quantity=20, unit_price_cents=150,
                            consumable=True))))
    await at(3.5 * HOUR)
    await field.depart(one, "王工 (wang)", "王工")
    await manager.handle([fault("cam-01", FaultState.CLEARED, T0 + 4 * HOUR)])
    await at(5 * HOUR)
    await manager.verify(one, "张经理", SignOff("张经理", "图像恢复正常"))

    await field.dispatch(two, "调度小陈", Dispatch("现场检查线路", "李工"))
    await at(6 * HOUR)
    await field.arrive(two, "李工 (li)", "李工", "需要更换摄像机")
    await at(7 * HOUR)
    await field.depart(two, "李工 (li)", "李工")
    await at(DAY)
    await field.arrive(two, "李工 (li)", "李工")
    await at(DAY + HOUR)
    await manager.resolve(two, "李工 (li)", ServiceRecord(
        "李工", "更换摄像机", cause="摄像机进水", parts=(PartReplaced(f"摄像机 {LONG}"),)))
    await field.depart(two, "李工 (li)", "李工")
    return Month(store, manager, field, clock, one, two)


@pytest.fixture
async def month(store_url: str) -> AsyncIterator[Month]:
    async with await Store.open(store_url) as store:
        yield await seed(store)


MARCH = whole_range(date(2026, 3, 1), date(2026, 3, 31), SH)


async def test_a_receipt_per_visit_with_arrival_departure_cause_parts_and_charges(
        month: Month) -> None:
    report = await service_report(month.store, SITE, MARCH)
    entries = {e.number: e for e in report.entries}
    (sheet,) = entries[month.one_visit].sheets
    assert (sheet.engineer, sheet.arrived_at, sheet.departed_at) == (
        "王工", T0 + 2 * HOUR, T0 + 3.5 * HOUR)
    (record,) = sheet.records
    assert (record.cause, record.work_done) == ("电源适配器老化",
                                                "更换电源适配器，重新做网线水晶头")
    adapter, cable = record.parts
    # The camera is under warranty: the adapter is claimed; the cable is a consumable and
    # is charged whatever the camera's warranty says.
    assert (adapter.coverage, adapter.charge_cents) == ("warranty", 0)
    assert (cable.coverage, cable.consumable, cable.charge_cents) == ("at_cost", True, 3000)
    assert sheet.charge_cents == 3000
    assert [(r.name, r.comment) for r in sheet.receipts] == [("张经理", "图像恢复正常")]

    first, second = entries[month.two_visits].sheets
    assert (first.arrived_at, first.departed_at, first.records) == (
        T0 + 6 * HOUR, T0 + 7 * HOUR, ())
    assert second.arrived_at == T0 + DAY and second.records[0].cause == "摄像机进水"
    # Out of warranty, not priced: the receipt says the charge is not known yet.
    assert second.parts[0].coverage == "at_cost" and second.charge_cents is None
    assert first.receipts == second.receipts == ()

    html = render.service_html(report, SITE_ZH, T0 + 2 * DAY)
    assert html.count('<section class="sheet">') == 3
    for words in ("服务回执单", "滨江路 88 号", "到场时间", "2026-03-02 18:00", "离场时间",
                  "2026-03-02 19:30", "电源适配器老化", "保修索赔", "耗材 · 按成本收费", "30.00",
                  "85.00", "未定价", "第 1 / 2 张", "第 2 / 2 张", "工程师签字", "北门摄像机"):
        assert words in html, words
    assert "cam-01" not in html and "warranty" not in html and "at_cost" not in html
    rows = tables.read_csv(tables.service_csv(report, "zh-CN", "Asia/Shanghai"))
    one = next(r for r in rows if r["工单号"] == month.one_visit)
    assert (one["到场时间"], one["离场时间"], one["收费合计(元)"]) == (
        "2026-03-02T18:00:00+08:00", "2026-03-02T19:30:00+08:00", "30.00")
    assert one["更换配件"] == ("12V 电源适配器 ×1 保修索赔 85.00; "
                           "超五类网线（米） ×20 耗材 · 按成本收费 1.50")


async def test_field_records_are_audit_events_with_the_actor(month: Month) -> None:
    detail = await month.manager.get(month.one_visit)
    kinds = [(e.kind, e.actor) for e in detail.events]
    assert ("acknowledged", "调度小陈") in kinds
    assert ("arrived", "王工 (wang)") in kinds and ("departed", "王工 (wang)") in kinds
    assert (detail.ticket.solution, detail.ticket.assignee, detail.ticket.eta) == (
        "更换电源适配器", "王工", T0 + 2 * HOUR)
    with pytest.raises(ValueError, match="王工 has no visit in progress"):
        await month.field.depart(month.one_visit, "王工 (wang)", "王工")
    month.clock.now = T0 + 10 * HOUR
    await month.field.arrive(month.one_visit, "王工 (wang)", "王工")
    with pytest.raises(ValueError, match="already on site"):
        await month.field.arrive(month.one_visit, "王工 (wang)", "王工")


async def test_return_visits_carry_the_plans_fields_per_ticket_and_per_site(
        month: Month) -> None:
    month.clock.now = T0 + 3 * DAY
    await month.field.return_visit(SITE, "客服小刘", ReturnVisit(
        2, "夜间图像仍偏暗", contact="张经理", quality_issue=True,
        solution="加装补光灯，费用由我方承担"), month.one_visit)
    month.clock.now = T0 + 10 * DAY
    await month.field.return_visit(SITE, "客服小刘", ReturnVisit(
        5, "整体运行良好", contact="物业王经理", quality_issue=False))   # periodic, no ticket
    report = await service_report(month.store, SITE, MARCH)
    ticket_visit, periodic = report.feedback
    assert (ticket_visit.number, ticket_visit.contact, ticket_visit.quality_issue,
            ticket_visit.solution, ticket_visit.outcome) == (
        month.one_visit, "张经理", True, "加装补光灯，费用由我方承担", "")
    assert (periodic.number, periodic.rating, periodic.quality_issue) == (None, 5, False)

    rows = tables.read_csv(tables.feedback_csv(report, "zh-CN", "Asia/Shanghai"))
    assert [(r["工单号"], r["被访人"], r["是否工程质量问题"], r["处理方案"]) for r in rows] == [
        (month.one_visit, "张经理", "是", "加装补光灯，费用由我方承担"),
        ("定期回访", "物业王经理", "否", "")]
    html = render.service_html(report, SITE_ZH, T0 + 11 * DAY)
    for words in ("用户回访反馈信息表", "是否工程质量问题", "处理方案", "处理结果", "定期回访",
                  "夜间图像仍偏暗"):
        assert words in html, words
    # The fault comes back: its ticket is open again, and a return visit waits for the
    # service to be done.
    await month.manager.handle([fault("cam-01", FaultState.FIRING, T0 + 11 * DAY)])
    with pytest.raises(IllegalTransition, match="the return visit follows the service"):
        await month.field.return_visit(SITE, "客服小刘", ReturnVisit(3), month.one_visit)
    with pytest.raises(ValueError, match="rating must be 1 to 5"):
        await month.field.return_visit(SITE, "客服小刘", ReturnVisit(6))


async def test_a_workmanship_problem_gets_its_outcome_written_later(month: Month) -> None:
    month.clock.now = T0 + 3 * DAY
    await month.field.return_visit(SITE, "客服小刘", ReturnVisit(
        2, "夜间偏暗", quality_issue=True, solution="加装补光灯"), month.one_visit)
    month.clock.now = T0 + 6 * DAY
    report = await service_report(month.store, SITE, MARCH)
    assert report.feedback[0].outcome == ""
    async with month.store.transaction("find the feedback") as session:
        from sqlalchemy import select

        from elvwatch.tickets.schema import FeedbackRow
        feedback_id = await session.scalar(select(FeedbackRow.id))
    assert feedback_id is not None
    await month.field.settle_return_visit(feedback_id, "客服小刘", "已加装补光灯，用户满意")
    (line,) = (await service_report(month.store, SITE, MARCH)).feedback
    assert (line.outcome, line.outcome_at) == ("已加装补光灯，用户满意", T0 + 6 * DAY)


# -- PDF ---------------------------------------------------------------------------------

needs_pdf = pytest.mark.skipif(shutil.which("pdftotext") is None,
                               reason="pdftotext (poppler-utils) not installed")


@dataclass
class Laid:
    width: float
    height: float
    overflow: float     # how far the widest box reaches past the page's content box (px)
    text: str


def lay_out(html: str, caplog: pytest.LogCaptureFixture) -> list[Laid]:
    """Lay the HTML out as weasyprint prints it; any renderer warning fails the test."""
    import weasyprint  # type: ignore[import-untyped]

    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        document = weasyprint.HTML(string=html).render()
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("weasyprint")]
    assert warnings == []
    pages = []
    for page in document.pages:
        box = page._page_box
        right = box.content_box_x() + box.width
        reach = max((b.border_box_x() + b.border_width() for b in box.descendants()
                     if hasattr(b, "border_width")), default=right)
        texts = [b.text for b in box.descendants() if hasattr(b, "text")]
        pages.append(Laid(page.width, page.height, max(0.0, reach - right), "".join(texts)))
    return pages


@needs_pdf
async def test_receipts_print_portrait_one_per_page_and_tables_landscape_inside_the_page(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    month = await seed(sqlite_store)
    month.clock.now = T0 + 3 * DAY
    await month.field.return_visit(SITE, "客服小刘", ReturnVisit(
        4, LONG, contact=LONG, quality_issue=True, solution=LONG, outcome=LONG),
        month.one_visit)
    report = await service_report(sqlite_store, SITE, MARCH)
    pages = lay_out(render.service_html(report, SITE_ZH, T0 + 4 * DAY), caplog)
    shapes = ["landscape" if p.width > p.height else "portrait" for p in pages]
    assert shapes == ["landscape", "portrait", "portrait", "portrait", "landscape"]
    assert [p.text.count("服务回执单") for p in pages[1:4]] == [1, 1, 1]
    assert all(p.overflow == 0 for p in pages), [p.overflow for p in pages]
    # The PDF itself is written without a warning too.
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        render.to_pdf(render.service_html(report, SITE_ZH, T0 + 4 * DAY))
    assert [r for r in caplog.records if r.name.startswith("weasyprint")] == []
