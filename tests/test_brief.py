"""The pre-visit brief an engineer opens on a phone: every ticket and device linked, the
site's address, contacts to tap and call, each ticket's dispatch and who reported it,
each device's repair history; in headless Chromium at phone width the column naming
the row stays in view while a wide table scrolls under it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from elvwatch.exporters.reports import render, tables
from elvwatch.exporters.reports.brief import Brief, Contact, build_brief
from elvwatch.exporters.reports.render import SiteInfo
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.actions import ServiceRecord, SignOff
from elvwatch.tickets.field_work import Dispatch, FieldWork
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.records import NewTicket
from elvwatch.tickets.store import ArchiveEntry, Store
from tests.chromium import NEEDS_CHROMIUM, PHONE, launched
from tests.test_reports import sqlite_store  # noqa: F401  (fixture)
from tests.ticket_fixtures import HOUR, SITE, T0, TERMS, Clock, fault

DAY = 86400.0
SITE_ZH = SiteInfo(SITE, "湖畔花园", "zh-CN", address="滨江路 88 号")
ARCHIVE = [
    ArchiveEntry("cam-01", SITE, "ipc", "cctv", "cam-01.lan", name="北门摄像机",
                 vendor="Hikvision", model="DS-2CD2143G2-I", firmware="V5.7.3",
                 location="1栋 / 1F / 北门", warranty_until=date(2027, 1, 1)),
    ArchiveEntry("cam-02", SITE, "ipc", "cctv", "cam-02.lan", name="车库摄像机",
                 location="2栋 / B1 / 车库"),
]
CONTACTS = (Contact("张经理", "物业经理", "13800000000", "zhang@example.com"),)


async def seed(store: Store) -> tuple[Brief, dict[str, str]]:
    await store.sync_archive(ARCHIVE, datetime.fromtimestamp(T0 - 60 * DAY, UTC))
    clock = Clock(T0 - 20 * DAY)
    manager = TicketManager(store, lambda: {SITE: replace(TERMS, contract_start=None)}, clock)
    field = FieldWork(manager)
    # Last month: cam-01's power adapter failed and was replaced.
    old = (await manager.handle([fault("cam-01", FaultState.FIRING, T0 - 20 * DAY)]))[0]
    await manager.resolve(old.ticket, "王工", ServiceRecord(
        "王工", "更换电源适配器", cause="电源适配器老化"))
    await manager.handle([fault("cam-01", FaultState.CLEARED, T0 - 20 * DAY + HOUR)])
    await manager.devices_healthy(["cam-01"], 3)
    await manager.sign_off(old.ticket, "张经理", SignOff("张经理"))
    # Now: it fails again and is dispatched; a resident phones about the garage camera.
    clock.now = T0
    now = (await manager.handle([fault("cam-01", FaultState.FIRING, T0)]))[0]
    clock.now = T0 + HOUR
    await field.dispatch(now.ticket, "调度小陈", Dispatch("带电源适配器备件到场更换", "王工",
                                                      T0 + 3 * HOUR))
    call = (await manager.create(NewTicket(
        SITE, "车库摄像机画面发黑", "业主李女士", "phone", device="cam-02",
        reporter_contact="13900000000"), "调度小陈"))[0]
    brief = await build_brief(store, SITE, site_name="湖畔花园", language="zh-CN",
                              contacts=CONTACTS, now=T0 + 2 * HOUR,
                              address="滨江路 88 号")
    return brief, {"old": old.ticket, "now": now.ticket, "call": call.ticket}


async def test_the_brief_carries_dispatch_reporters_and_each_devices_repair_history(
        sqlite_store: Store) -> None:  # noqa: F811
    brief, numbers = await seed(sqlite_store)
    tickets = {t.number: t for t in brief.tickets}
    dispatched = tickets[numbers["now"]]
    assert (dispatched.solution, dispatched.assignee, dispatched.eta) == (
        "带电源适配器备件到场更换", "王工", T0 + 3 * HOUR)
    called = tickets[numbers["call"]]
    assert (called.channel, called.reporter, called.reporter_contact) == (
        "phone", "业主李女士", "13900000000")
    devices = {d.entry.id: d for g in brief.groups for d in g.devices}
    history = devices["cam-01"].history
    assert [(r.number, r.cause, r.work_done) for r in history] == [
        (numbers["now"], "", ""), (numbers["old"], "电源适配器老化", "更换电源适配器")]
    assert brief.address == "滨江路 88 号"

    html = render.brief_html(brief, SITE_ZH)
    for href in (f'href="/tickets/{numbers["now"]}"', f'href="/tickets/{numbers["call"]}"',
                 f'href="/tickets/{numbers["old"]}"', 'href="/devices/cam-01"',
                 'href="/devices/cam-02"', 'href="tel:13800000000"',
                 'href="tel:13900000000"'):
        assert href in html, href
    for words in ("滨江路 88 号", "北门摄像机", "带电源适配器备件到场更换", "预计到场",
                  "电话 · 业主李女士", "维修记录", "故障原因: 电源适配器老化"):
        assert words in html, words
    assert ">cam-01<" not in html    # devices by name
    text = tables.brief_text(brief)
    assert "派工: 王工 · 预计到场" in text and "电话 · 业主李女士  13900000000" in text
    assert f"{numbers['old']} 更换电源适配器 (故障原因: 电源适配器老化)" in text


@NEEDS_CHROMIUM[0]
@NEEDS_CHROMIUM[1]
async def test_on_a_phone_the_first_column_stays_in_view_while_the_table_scrolls(
        sqlite_store: Store, tmp_path: Path) -> None:  # noqa: F811
    brief, numbers = await seed(sqlite_store)
    page_file = tmp_path / "brief.html"
    page_file.write_text(render.brief_html(brief, SITE_ZH), encoding="utf-8")
    async with launched() as browser:
        page = await browser.new_page(viewport=PHONE)
        await page.goto(page_file.as_uri())
        assert await page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth")
        positions = await page.evaluate("""() => {
            const table = document.querySelector('table.brief');
            const first = table.querySelector('tr:nth-child(2) > td:first-child');
            const third = table.querySelector('tr:nth-child(2) > td:nth-child(3)');
            const before = [first.getBoundingClientRect().left,
                            third.getBoundingClientRect().left];
            table.scrollLeft = 300;
            return {wide: table.scrollWidth > table.clientWidth, scrolled: table.scrollLeft,
                    before, after: [first.getBoundingClientRect().left,
                                    third.getBoundingClientRect().left],
                    text: first.innerText};
        }""")
        assert positions["wide"] and positions["scrolled"] > 0
        first_before, third_before = positions["before"]
        first_after, third_after = positions["after"]
        assert abs(first_after - first_before) <= 1  # the ticket number stays put
        assert third_after < third_before - 100     # the rest scrolled under it
        assert positions["text"] in numbers.values()
        call = page.locator('a[href="tel:13800000000"]')
        assert await call.count() == 1 and await call.is_visible()
        box = await call.bounding_box()
        assert box is not None and box["height"] >= 24   # a finger can hit it
        await page.screenshot(path=str(tmp_path / "brief-phone.png"), full_page=True)
