"""Reports from constructed histories in real stores: exact figures, CSV, PDF, handover."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from elvwatch.cli.main import main
from elvwatch.exporters.reports import render, tables
from elvwatch.exporters.reports.availability import AvailabilityReport, availability_report, tally
from elvwatch.exporters.reports.brief import Contact, build_brief
from elvwatch.exporters.reports.handover import collect, handover_zip
from elvwatch.exporters.reports.periods import months, whole_range
from elvwatch.exporters.reports.render import SiteInfo
from elvwatch.exporters.reports.service import service_report
from elvwatch.exporters.reports.sla import sla_report
from elvwatch.rules.faults import FaultState
from elvwatch.rules.state import DeviceState, StateTransition
from elvwatch.tickets.actions import PartReplaced, ServiceRecord, SignOff
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import ArchiveEntry, Store
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, archive, fault

SH = ZoneInfo("Asia/Shanghai")
UP, DOWN, DEGRADED, UNKNOWN = (DeviceState.UP, DeviceState.DOWN, DeviceState.DEGRADED,
                               DeviceState.UNKNOWN)
FIRING, CLEARED = FaultState.FIRING, FaultState.CLEARED
DAY = 86400.0
SITE_ZH = SiteInfo(SITE, "湖畔花园", "zh-CN")
SITE_EN = SiteInfo(SITE, "Lakeside Gardens", "en")


def local(*parts: int) -> float:
    return datetime(*parts, tzinfo=SH).timestamp()  # type: ignore[arg-type, misc]


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


CAM_A = ArchiveEntry("cam-a", SITE, "ipc", "cctv", "cam-a.lan", name="北门",
                     location="1栋 / 1F / 北门", vendor="Hikvision", model="DS-2CD2143",
                     warranty_until=date(2027, 1, 1))
CAM_B = ArchiveEntry("cam-b", SITE, "ipc", "cctv", "cam-b.lan", location="2栋 / B1",
                     vendor="Dahua", model="IPC-HFW", warranty_until=date(2025, 6, 30))


def step(device: str, previous: DeviceState, state: DeviceState, at: float) -> StateTransition:
    return StateTransition(device, previous, state, at, "test")


async def seed_history(store: Store) -> None:
    """cam-a is down when the report starts, fails again across the January/February
    boundary, degrades for an hour, restarts into unknown in March; cam-b is added on
    20 February, fails for six hours and is removed on 3 March."""
    await store.sync_archive([CAM_A], moment(local(2025, 12, 1, 9, 0, 0)))
    await store.record_transitions([
        step("cam-a", UNKNOWN, UP, local(2025, 12, 1, 10, 0, 0)),
        step("cam-a", UP, DOWN, local(2026, 1, 10, 8, 0, 0)),
        step("cam-a", DOWN, UP, local(2026, 1, 15, 2, 0, 0)),
        step("cam-a", UP, DOWN, local(2026, 1, 31, 23, 0, 0)),
        step("cam-a", DOWN, UP, local(2026, 2, 1, 1, 30, 0)),
        step("cam-a", UP, DEGRADED, local(2026, 2, 10, 12, 0, 0)),
        step("cam-a", DEGRADED, UP, local(2026, 2, 10, 13, 0, 0)),
        step("cam-a", UP, UNKNOWN, local(2026, 3, 5, 0, 0, 0)),
        step("cam-a", UNKNOWN, UP, local(2026, 3, 5, 0, 10, 0)),
        step("cam-a", UP, DOWN, local(2026, 3, 20, 0, 0, 0)),  # after the range: ignored
    ])
    await store.sync_archive([CAM_A, CAM_B], moment(local(2026, 2, 20, 9, 0, 0)))
    await store.record_transitions([
        step("cam-b", UNKNOWN, UP, local(2026, 2, 20, 9, 0, 30)),
        step("cam-b", UP, DOWN, local(2026, 2, 25, 0, 0, 0)),
        step("cam-b", DOWN, UP, local(2026, 2, 25, 6, 0, 0)),
    ])
    await store.sync_archive([CAM_A], moment(local(2026, 3, 3, 0, 0, 0)))
    manager = TicketManager(store, lambda: {SITE: TERMS}, Clock())
    await manager.handle([fault("cam-a", FIRING, local(2026, 1, 31, 23, 0, 0))])
    await manager.handle([fault("cam-b", FIRING, local(2026, 2, 25, 0, 0, 0))])


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as store:
        yield store


async def history_report(store: Store) -> AvailabilityReport:
    await seed_history(store)
    return await availability_report(store, SITE, months(date(2026, 1, 15),
                                                         date(2026, 3, 10), SH))


def test_range_splits_at_local_month_starts_and_is_clipped() -> None:
    periods = months(date(2026, 1, 15), date(2026, 3, 10), SH)
    assert [p.label for p in periods] == ["2026-01-15..2026-01-31", "2026-02",
                                          "2026-03-01..2026-03-10"]
    assert periods[0].start == datetime(2026, 1, 14, 16, tzinfo=UTC).timestamp()
    assert [p.seconds for p in periods] == [17 * DAY, 28 * DAY, 10 * DAY]
    assert periods[0].end == periods[1].start and periods[1].end == periods[2].start


async def test_availability_is_exact_to_the_second_from_stored_transitions(
        store_url: str) -> None:
    async with await Store.open(store_url) as store:
        report = await history_report(store)
    rows = {(r.period.label[:7], r.device): r for r in report.rows}
    jan, feb, mar = (rows[("2026-01", "cam-a")], rows[("2026-02", "cam-a")],
                     rows[("2026-03", "cam-a")])
    # Down from before the start until 02:00, and 23:00-24:00 on 31 January.
    assert (jan.down_s, jan.up_s, jan.degraded_s, jan.unknown_s) == (
        3 * HOUR, 17 * DAY - 3 * HOUR, 0, 0)
    assert jan.down_at_start and jan.down_episodes == 2
    assert jan.availability == pytest.approx(100 * (17 * DAY - 3 * HOUR) / (17 * DAY), abs=1e-12)
    assert (jan.fault_tickets, jan.tickets) == (1, ("T-2026-000001",))
    # The episode crossing midnight: 1h30m of it falls in February, which it also counts.
    assert (feb.down_s, feb.degraded_s, feb.up_s) == (1.5 * HOUR, HOUR,
                                                     28 * DAY - 2.5 * HOUR)
    assert feb.down_at_start and feb.down_episodes == 1 and feb.tickets == ()
    assert feb.availability == pytest.approx(100 * (28 * DAY - 1.5 * HOUR) / (28 * DAY))
    # Ten minutes unknown after a restart are out of the denominator: still 100 %.
    assert (mar.unknown_s, mar.up_s, mar.down_s, mar.availability) == (
        600, 10 * DAY - 600, 0, 100.0)
    assert not mar.down_at_start and mar.down_episodes == 0

    b_jan, b_feb, b_mar = (rows[("2026-01", "cam-b")], rows[("2026-02", "cam-b")],
                           rows[("2026-03", "cam-b")])
    assert b_jan.availability is None and b_jan.not_in_service_s == 17 * DAY
    added = local(2026, 2, 20, 9, 0, 0) - local(2026, 2, 1, 0, 0, 0)
    assert (b_feb.not_in_service_s, b_feb.unknown_s, b_feb.down_s) == (added, 30, 6 * HOUR)
    assert b_feb.up_s == 28 * DAY - added - 30 - 6 * HOUR
    assert b_feb.down_episodes == 1 and b_feb.fault_tickets == 1
    # Removed at midnight on 3 March: two days in service, the rest not counted.
    assert (b_mar.up_s, b_mar.not_in_service_s, b_mar.availability) == (
        2 * DAY, 8 * DAY, 100.0)


def test_tally_counts_a_change_into_down_at_the_start_once() -> None:
    t = tally(UP, [(100.0, DOWN), (160.0, UP)], 100.0, 200.0, 0.0, None)
    assert (t.down_us, t.up_us, t.down_at_start, t.down_episodes) == (60_000_000,
                                                                      40_000_000, True, 1)


async def test_availability_csv_round_trips_with_bom_and_chinese_headers(
        sqlite_store: Store) -> None:
    report = await history_report(sqlite_store)
    data = tables.availability_csv(report, "zh-CN")
    assert data.startswith(b"\xef\xbb\xbf")
    back = tables.read_csv(data)
    assert len(back) == len(report.rows) == 6
    for row, original in zip(back, report.rows, strict=True):
        assert row["设备编号"] == original.device
        assert row["名称"] == ("北门" if original.device == "cam-a" else "网络摄像机 · 2栋 / B1")
        assert row["系统"] == "视频监控"
        assert float(row["故障时长(秒)"]) == original.down_s
        assert float(row["正常(秒)"]) == original.up_s
        assert row["期间"] == original.period.label
        assert row["工单"].split() == list(original.tickets)
        expected = original.availability
        assert (row["可用率 %"] == "") if expected is None else \
            float(row["可用率 %"]) == pytest.approx(expected, abs=5e-5)
    assert back[0]["位置"] == "1栋 / 1F / 北门"


# -- SLA ---------------------------------------------------------------------------------

async def seed_tickets(store: Store) -> tuple[TicketManager, Clock, list[str]]:
    """Four faults in March: one in time, one late on both deadlines (escalated by the
    daemon), an emergency in time, a major fault nobody answered."""
    await store.sync_archive(archive(), moment(T0 - 30 * DAY))
    clock = Clock()
    terms = replace(TERMS, contract_start=None)
    manager = TicketManager(store, lambda: {SITE: terms}, clock)
    numbers = []
    for device, offset, severity in (("cam-01", 0, "general"), ("cam-02", 1, "general"),
                                     ("cam-03", 2, "emergency"), ("cam-04", 3, "major")):
        events = await manager.handle([fault(device, FIRING, T0 + offset * HOUR,
                                             severity=severity)])
        numbers.append(events[0].ticket)

    async def act(at: float, action: str, number: str) -> None:
        clock.now = at
        if action == "ack":
            await manager.acknowledge(number, "李四")
        else:
            await manager.resolve(number, "王工", ServiceRecord(
                "王工", "更换电源适配器", (PartReplaced("电源适配器"),)))

    await act(T0 + HOUR, "ack", numbers[0])
    await act(T0 + 5 * HOUR, "resolve", numbers[0])
    await act(T0 + 2 * HOUR + 600, "ack", numbers[2])
    await act(T0 + 5 * HOUR, "resolve", numbers[2])
    await manager.tick(T0 + 14 * HOUR)   # the daemon escalates cam-02 and cam-04
    await act(T0 + 15 * HOUR, "ack", numbers[1])
    await act(T0 + 20 * HOUR, "resolve", numbers[1])
    return manager, clock, numbers


async def test_sla_report_gives_exact_times_medians_and_breaches_with_reasons(
        sqlite_store: Store) -> None:
    _, _, numbers = await seed_tickets(sqlite_store)
    march = whole_range(date(2026, 3, 1), date(2026, 3, 31), SH)
    report = await sla_report(sqlite_store, SITE, march, as_of=T0 + 24 * HOUR)
    stats = {s.severity: s for s in report.by_severity}
    assert list(stats) == ["emergency", "major", "general"]
    general = stats["general"]
    assert (general.tickets, general.responded, general.resolved) == (2, 2, 2)
    assert (general.response_median_s, general.response_worst_s) == ((HOUR + 14 * HOUR) / 2,
                                                                     14 * HOUR)
    assert (general.repair_median_s, general.repair_worst_s) == ((5 * HOUR + 19 * HOUR) / 2,
                                                                 19 * HOUR)
    assert (general.response_breaches, general.resolve_breaches) == (1, 1)
    emergency = stats["emergency"]
    assert (emergency.response_worst_s, emergency.repair_worst_s) == (600, 3 * HOUR)
    assert emergency.response_breaches == emergency.resolve_breaches == 0
    major = stats["major"]
    assert (major.responded, major.response_breaches, major.resolve_breaches) == (0, 1, 0)

    breaches = {(b.number, b.which): b for b in report.breaches}
    assert set(breaches) == {(numbers[1], "response"), (numbers[1], "resolve"),
                             (numbers[3], "response")}
    late = breaches[(numbers[1], "response")]
    assert (late.late_s, late.met_at, late.recorded_at) == (2 * HOUR, T0 + 15 * HOUR,
                                                            T0 + 14 * HOUR)
    assert breaches[(numbers[1], "resolve")].late_s == 7 * HOUR
    unanswered = breaches[(numbers[3], "response")]
    assert (unanswered.met_at, unanswered.late_s) == (None, 9 * HOUR)
    assert render.breach_reason(late, SITE_EN) == (
        "response met 2:00:00 late; escalated at 2026-03-03 06:00")
    assert render.breach_reason(unanswered, SITE_ZH).startswith(
        "截至报告时未响应，已超时 9:00:00")

    html = render.sla_html(report, SITE_ZH, T0 + 24 * HOUR)
    assert "服务水平报告" in html and "湖畔花园" in html and "14:00:00" in html
    back = tables.read_csv(tables.sla_csv(report, "en", "Asia/Shanghai"))
    assert [r["Ticket"] for r in back] == numbers
    assert float(back[1]["Response time (s)"]) == 14 * HOUR and back[1]["Repair breaches"] == "1"


async def test_service_records_receipts_and_feedback_come_from_the_tickets(
        sqlite_store: Store) -> None:
    manager, clock, numbers = await seed_tickets(sqlite_store)
    await manager.handle([fault("cam-01", CLEARED, T0 + 6 * HOUR)])
    clock.now = T0 + 7 * HOUR
    await manager.sign_off(numbers[0], "张经理", SignOff("张经理", "图像正常"))
    clock.now = T0 + 3 * DAY
    await manager.add_feedback(numbers[0], "客服小刘", 4, "响应及时")
    march = whole_range(date(2026, 3, 1), date(2026, 3, 31), SH)
    report = await service_report(sqlite_store, SITE, march)
    assert [e.number for e in report.entries] == [numbers[0], numbers[2], numbers[1]]
    first = report.entries[0]
    assert first.records[0].engineer == "王工" and first.records[0].parts[0].coverage == "warranty"
    assert [(r.name, r.comment) for r in first.receipts] == [("张经理", "图像正常")]
    assert [(f.number, f.rating, f.comment) for f in report.feedback] == [
        (numbers[0], 4, "响应及时")]
    html = render.service_html(report, SITE_ZH, T0)
    assert "服务回执单" in html and "用户回访反馈信息表" in html and "响应及时" in html
    assert html.count("未签字") == 2   # the two tickets nobody signed yet
    feedback = tables.read_csv(tables.feedback_csv(report, "zh-CN", "Asia/Shanghai"))
    assert feedback == [{"工单号": numbers[0], "设备": "网络摄像机 · 1栋 / 1F",
                         "内容": "网络摄像机 · 1栋 / 1F 设备离线",
                         "时间": "2026-03-05T16:00:00+08:00", "被访人": "", "满意度(1-5)": "4",
                         "意见": "响应及时", "是否工程质量问题": "未判定", "处理方案": "",
                         "处理结果": "", "回访人": "客服小刘"}]
    february = whole_range(date(2026, 2, 1), date(2026, 2, 28), SH)
    assert (await service_report(sqlite_store, SITE, february)).entries == ()


# -- PDF and handover ---------------------------------------------------------------------

needs_pdf = pytest.mark.skipif(shutil.which("pdftotext") is None,
                               reason="pdftotext (poppler-utils) not installed")


def pdf_pages(data: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "r.pdf"
    path.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, timeout=60).stdout.decode("utf-8")
    return text.rstrip("\f").split("\f")


@needs_pdf
async def test_availability_pdf_has_one_page_per_month_in_chinese(
        sqlite_store: Store, tmp_path: Path) -> None:
    report = await history_report(sqlite_store)
    pages = pdf_pages(render.to_pdf(render.availability_html(report, SITE_ZH, T0)), tmp_path)
    assert len(pages) == 3
    for page, label in zip(pages, ["2026-01-15..2026-01-31", "2026-02",
                                   "2026-03-01..2026-03-10"], strict=True):
        assert "设备运行情况记录" in page and "湖畔花园" in page and label in page
        assert "北门" in page and "网络摄像机 · 2栋 / B1" in page   # by name, not id
        assert "cam-a" not in page and "cctv" not in page
    assert "3:00:00" in pages[0] and "1:30:00" in pages[1]


@needs_pdf
async def test_handover_zip_holds_every_record_with_a_checked_manifest(
        sqlite_store: Store, tmp_path: Path) -> None:
    await seed_history(sqlite_store)
    contents = await collect(sqlite_store, SITE_ZH, date(2026, 1, 1), date(2026, 3, 31),
                             T0 + 30 * DAY)
    data = handover_zip(contents, SITE_ZH, T0 + 30 * DAY, pdf=True)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = sorted(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
        for entry in manifest["files"]:
            assert hashlib.sha256(z.read(entry["name"])).hexdigest() == entry["sha256"]
        archive_rows = tables.read_csv(z.read("04-archive.csv"))
        state_log = tables.read_csv(z.read("06-state-log.csv"))
        archive_pdf = z.read("04-archive.pdf")
        cover = pdf_pages(z.read("00-cover.pdf"), tmp_path)
    stems = ["01-availability", "02-sla", "03-service", "04-archive", "05-audit",
             "06-state-log"]
    assert names == sorted([f"{s}.{e}" for s in ["00-cover", *stems] for e in ("html", "pdf")]
                           + [f"{s}.csv" for s in stems] + ["03-feedback.csv",
                                                            "manifest.json"])
    assert {f["name"] for f in manifest["files"]} == set(names) - {"manifest.json"}
    assert manifest["period"]["label"] == "2026-01-01..2026-03-31"
    assert manifest["counts"]["devices"] == 2 and manifest["counts"]["fault_tickets"] == 2
    assert manifest["counts"]["state_changes"] == len(state_log) == 12
    # The removed camera stays in the archive a handover gives away.
    assert [(r["设备编号"], r["系统"], r["保修"]) for r in archive_rows] == [
        ("cam-a", "视频监控", "保修索赔"), ("cam-b", "视频监控", "按成本收费")]
    assert archive_rows[1]["移除时间"].startswith("2026-03-02T16:00:00")
    assert "Hikvision" in pdf_pages(archive_pdf, tmp_path)[0]
    assert [(r["设备"], r["原状态"], r["新状态"]) for r in state_log[:2]] == [
        ("北门", "正常", "故障"), ("北门", "故障", "正常")]
    # The cover lists every document and leaves room for both parties' signatures.
    assert len(cover) == 1
    for words in ("维护资料移交清单", "湖畔花园", "设备运行情况记录", "服务记录",
                  "工单处理记录", "设备状态变化记录", "移交方（维护单位）签字",
                  "接收方（甲方）签字", "05-audit.pdf"):
        assert words in cover[0], words


async def test_device_supplied_text_is_escaped_in_html_and_inert_in_csv(
        sqlite_store: Store) -> None:
    await sqlite_store.sync_archive([CAM_A], moment(T0))
    await sqlite_store.update_device_facts(
        "cam-a", {"vendor": "<script>alert(1)</script>", "model": '=HYPERLINK("http://x")'},
        moment(T0))
    contents = await collect(sqlite_store, SITE_EN, date(2026, 3, 1), date(2026, 3, 2), T0)
    html = render.archive_html(list(contents.archive), SITE_EN, T0)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    (row,) = tables.read_csv(tables.archive_csv(contents.archive, "en"))
    assert row["Model"] == "'=HYPERLINK(\"http://x\")" and row["Vendor"].startswith("<script>")


# -- pre-visit brief ------------------------------------------------------------------------

VISIT_ARCHIVE = [
    ArchiveEntry("sw-01", SITE, "poe_switch", "network", "sw-01.lan", vendor="H3C",
                 model="S5120", location="1栋 / B1 / 弱电间", warranty_until=date(2025, 6, 30)),
    *(ArchiveEntry(f"cam-0{i}", SITE, "ipc", "cctv", f"cam-0{i}.lan", vendor="Hikvision",
                   model="DS-2CD", location=where, warranty_until=date(2027, 1, 1))
      for i, where in ((1, "1栋 / 1F"), (2, "1栋 / 2F"), (5, "2栋 / 1F / 大门"),
                       (9, "2栋 / 2F"))),
    ArchiveEntry("cam-07", SITE, "ipc", "cctv", "cam-07.lan", vendor="Dahua", model="IPC",
                 location="2栋 / 3F"),
    ArchiveEntry("gate-01", SITE, "door_controller", "access_control", "gate-01.lan"),
]
CONTACTS = (Contact("张经理", "物业经理", "13800000000"),)


async def seed_visit(store: Store, *, keep: tuple[ArchiveEntry, ...] = ()) -> TicketManager:
    """Faults of several kinds and deadlines at T0; a work order due in March."""
    await store.sync_archive([*keep, *VISIT_ARCHIVE], moment(T0 - 30 * DAY))
    await store.record_transitions(
        [step(d, UP, DOWN, T0) for d in ("sw-01", "cam-01", "cam-02", "gate-01")]
        + [step("cam-05", UP, DEGRADED, T0 + HOUR)])
    clock = Clock()
    manager = TicketManager(store, lambda: {SITE: TERMS}, clock)
    await manager.handle([fault("sw-01", FIRING, T0)])
    await manager.handle([fault("cam-05", FIRING, T0 + HOUR, severity="emergency")])
    major = (await manager.handle([fault("cam-07", FIRING, T0, severity="major")]))[0]
    clock.now = T0 + 0.5 * HOUR
    await manager.acknowledge(major.ticket, "李四")
    fixed = (await manager.handle([fault("cam-09", FIRING, T0 - DAY)]))[0]
    clock.now = T0 - DAY + HOUR
    await manager.resolve(fixed.ticket, "王工", ServiceRecord("王工", "重启"))
    await manager.tick(T0 + 1.5 * HOUR)   # opens March's preventive work orders
    return manager


async def test_brief_orders_by_deadline_groups_by_location_and_prices_parts(
        sqlite_store: Store) -> None:
    await seed_visit(sqlite_store)
    brief = await build_brief(sqlite_store, SITE, site_name="湖畔花园", language="zh-CN",
                              contacts=CONTACTS, now=T0 + 2 * HOUR)
    order = [(t.device or t.title_en, t.deadline_kind, t.overdue) for t in brief.tickets]
    assert order == [
        ("cam-05", "response", True),           # emergency: answer within 30 min
        ("sw-01", "response", False),
        ("Preventive maintenance, alarm, 2026-Q1", "resolve", False),
        ("Preventive maintenance, CCTV, 2026-03", "resolve", False),
        ("Preventive maintenance, network, 2026-03", "resolve", False),
        ("cam-07", "to_agree", False),          # major, acknowledged: deadline to agree
    ]
    assert [(g.building, g.floor, [d.entry.id for d in g.devices]) for g in brief.groups] == [
        ("1栋", "1F", ["cam-01"]), ("1栋", "2F", ["cam-02"]), ("1栋", "B1", ["sw-01"]),
        ("2栋", "1F", ["cam-05"]), ("2栋", "3F", ["cam-07"]), ("", "", ["gate-01"])]
    assert [(p.vendor, p.model, p.warranty, p.devices) for p in brief.parts] == [
        ("", "", "unknown", ("gate-01",)), ("Dahua", "IPC", "unknown", ("cam-07",)),
        ("H3C", "S5120", "at_cost", ("sw-01",)),
        ("Hikvision", "DS-2CD", "warranty", ("cam-01", "cam-02", "cam-05"))]
    assert [(w.system, [i.id for i in w.items]) for w in brief.preventive] == [
        ("alarm", ["walk_test", "test_battery", "test_communicator"]),
        ("cctv", ["clean_lens", "check_image", "check_time", "check_recording"]),
        ("network", ["check_links", "check_cabinet", "check_labels"])]
    assert [t.device for t in brief.awaiting_sign_off] == ["cam-09"]

    text = tables.brief_text(brief)
    assert text.index("cam-05") < text.index("sw-01") < text.index("cam-07")
    for words in ("上门前简报 · 湖畔花园", "紧急", "已超时", "按成本收费",
                  "[ ] 清洁镜头及防护罩", "张经理  物业经理  13800000000", "[未登记位置]"):
        assert words in text
    html = render.brief_html(brief, SITE_ZH)
    assert "需上门设备（按位置）" in html and "2栋 / 1F / 大门" in html


# -- the command line -------------------------------------------------------------------

@pytest.fixture
def config(tmp_path: Path) -> Path:
    db = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": db},
        "sites": [{"id": SITE, "name": "湖畔花园",
                   "contacts": [{"name": "张经理", "phone": "13800000000"}],
                   "contract": {"start": "2026-01-01", "preventive": "monthly"}}],
        "devices": [{"id": "cam-a", "site": SITE, "kind": "camera", "host": "127.0.0.1"}],
    }, allow_unicode=True), encoding="utf-8")

    async def seed() -> None:
        async with await Store.open(db) as store:
            await seed_history(store)
            await seed_visit(store, keep=(CAM_A,))

    asyncio.run(seed())
    return path


def test_report_commands_write_csv_html_and_handover_with_a_clean_stderr(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config), "--site", SITE]
    out = tmp_path / "a.csv"
    assert main(["report", "availability", *c, "--from", "2026-01-15", "--to", "2026-03-10",
                 "--format", "csv", "-o", str(out)]) == 0
    # Off a terminal progress is silent: stderr says only what was written.
    assert capsys.readouterr().err == f"wrote {out} ({out.stat().st_size} bytes)\n"
    rows = tables.read_csv(out.read_bytes())
    jan_a = next(r for r in rows if r["设备编号"] == "cam-a")
    assert (jan_a["期间"], float(jan_a["故障时长(秒)"])) == ("2026-01-15..2026-01-31", 3 * HOUR)

    assert main(["report", "sla", *c, "--from", "2026-03-01", "--to", "2026-03-31"]) == 0
    html = capsys.readouterr().out
    assert html.startswith("<!DOCTYPE html>") and "服务水平报告" in html and "紧急" in html

    bundle = tmp_path / "h.zip"
    assert main(["report", "handover", *c, "--from", "2026-01-01", "--to", "2026-12-31",
                 "--no-pdf", "-o", str(bundle)]) == 0
    with zipfile.ZipFile(bundle) as z:
        assert "manifest.json" in z.namelist() and "04-archive.csv" in z.namelist()
    assert main(["report", "sla", *c, "--from", "2026-03-31", "--to", "2026-03-01"]) == 2
    assert main(["report", "sla", "-c", str(config), "--site", "nowhere", "--from",
                 "2026-03-01", "--to", "2026-03-31"]) == 2
    assert "no site 'nowhere'" in capsys.readouterr().err


def test_brief_command_prints_the_brief_and_writes_the_printable_page(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "brief.html"
    assert main(["brief", "-c", str(config), "--site", SITE, "--html", str(page)]) == 0
    text = capsys.readouterr().out
    assert "上门前简报 · 湖畔花园" in text and "张经理" in text and "sw-01" in text
    assert "<h2>联系人</h2>" in page.read_text(encoding="utf-8")
