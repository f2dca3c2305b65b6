"""The web pages in headless Chromium against a daemon watching lab devices on loopback.

One daemon, lab fleet and browser serve the whole module (they take a few seconds to
start); each test opens its own browser context.  Screenshots of the main pages, at
phone and desktop width, go to test-output/screenshots/ for review.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.lab.devices import Fault, LabFleet, tcp_check
from elvwatch.lab.onvif import DeviceInfo, OnvifSimulator
from elvwatch.web import links
from elvwatch.web.server import HttpListener
from tests.chromium import NEEDS_CHROMIUM, launched
from tests.helpers import until
from tests.test_daemon import PORT, first_address, free_port

with contextlib.suppress(ImportError):  # the test extra installs it; else skipped
    from playwright.async_api import Browser, BrowserContext, Page, expect

pytestmark = [*NEEDS_CHROMIUM, pytest.mark.asyncio(loop_scope="module")]
SHOTS = Path(__file__).parent.parent / "test-output" / "screenshots"
XSS = "<script>alert(1)</script>"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


@dataclass
class Env:
    app: App
    base: str
    token: str
    fleet: LabFleet
    switch: str
    broken: str        # the camera that is down, with a fault ticket
    spare: str         # a camera of the English site, taken down by the refresh test
    fault_ticket: str
    work_order: str    # a preventive work order (no device), for the sign-off


def _config(path: Path, fleet: LabFleet, camera: OnvifSimulator, listen: str,
            token_file: Path, password_file: Path) -> Path:
    switch, broken, healthy, spare = fleet.devices
    devices: list[dict[str, Any]] = [
        {"id": switch.id, "site": "garden", "kind": "switch", "host": switch.host,
         "name": "3号楼弱电井交换机", "location": {"building": "3号楼", "floor": "1F",
                                                  "place": "弱电井"},
         "checks": [tcp_check(PORT)]},
        {"id": broken.id, "site": "garden", "kind": "camera", "host": broken.host,
         "name": "车库入口摄像机", "vendor": "Hikvision", "model": "DS-2CD2143G2-I",
         "serial": "HK-0042", "installed": "2025-03-01", "warranty_until": "2028-02-28",
         "location": {"building": "3号楼", "floor": "B1", "place": "车库入口"},
         "depends_on": [switch.id], "checks": [tcp_check(PORT)]},
        {"id": healthy.id, "site": "garden", "kind": "camera", "host": healthy.host,
         "depends_on": [switch.id], "location": "南门", "checks": [tcp_check(PORT)]},
        {"id": spare.id, "site": "harbour", "kind": "camera", "host": spare.host,
         "location": "Gate 2", "checks": [tcp_check(PORT)]},
        {"id": "cam-onvif", "site": "garden", "kind": "camera", "host": camera.host,
         "credentials": "cam", "location": "东门",
         "checks": [{"type": "onvif", "port": camera.port, "interval": 5, "timeout": 4,
                     "params": {"stream": False, "recording": False}}]},
    ]
    path.write_text(yaml.safe_dump({
        "http": {"listen": listen, "token_file": str(token_file)},
        "interval": 0.2, "timeout": 0.2,
        "scheduler": {"down_after": 2, "jitter": 0.0},
        "credentials": {"cam": {"username": "admin", "password_file": str(password_file)}},
        "sites": [
            {"id": "garden", "name": "阳光花园", "language": "zh-CN", "address": "滨江路 88 号",
             "contacts": [{"name": "王经理", "role": "物业", "phone": "13800000000"}],
             "contract": {"start": "2026-01-01", "resolve_hours": {"general": 12}}},
            {"id": "harbour", "name": "Harbour View", "language": "en",
             "contract": {"start": "2026-01-01"}}],
        "devices": devices}, allow_unicode=True), encoding="utf-8")
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("pages")
    token = secrets.token_urlsafe(24)
    (tmp / "token").write_text(token + "\n", encoding="utf-8")
    (tmp / "cam-password").write_text("secret", encoding="utf-8")
    port = free_port()
    info = DeviceInfo(manufacturer=XSS, model="DS-2CD<b>bold</b>")
    async with LabFleet(4, first_address(), [PORT]) as fleet, \
            OnvifSimulator(first_address(), info=info) as camera:
        config = load_config(_config(tmp / "config.yaml", fleet, camera, f"127.0.0.1:{port}",
                                     tmp / "token", tmp / "cam-password"))
        app = App(config, HttpListener())
        await app.start()
        try:
            switch, broken, _, spare = (d.id for d in fleet.devices)
            await until(lambda: all(app.tracker.devices[d.id].state.value == "up"
                                       for d in fleet.devices), what="lab devices up")
            await until(lambda: "vendor" in app.tracker.devices["cam-onvif"].info,
                        timeout=20, what="ONVIF identity")
            await fleet.set_fault(broken, Fault.DOWN)
            fault = work_order = None
            for _ in range(150):
                live = await app.tickets.list_tickets(state="live")  # type: ignore[union-attr]
                fault = next((t for t in live if t.device == broken), None)
                work_order = next((t for t in live if t.kind == "preventive"
                                   and t.site == "garden"), None)
                if fault and work_order:
                    break
                await asyncio.sleep(0.1)
            assert fault is not None and work_order is not None
            yield Env(app, f"http://127.0.0.1:{port}", token, fleet, switch, broken, spare,
                      fault.number, work_order.number)
        finally:
            await app.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with launched() as chromium:
        yield chromium


@dataclass
class Opened:
    page: Page
    errors: list[str]
    dialogs: list[str]


async def visit(context: BrowserContext, url: str, status: int = 200) -> Opened:
    page = await context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: dialogs.append(d.message))
    response = await page.goto(url)
    assert response is not None and response.status == status, url
    return Opened(page, errors, dialogs)


async def no_horizontal_scroll(page: Page) -> bool:
    return bool(await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"))


async def test_every_page_renders_the_lab_data_without_errors_at_phone_and_desktop_width(
        env: Env, browser: Browser) -> None:
    pages = {
        "overview": ("/", ["阳光花园", "Harbour View", "车库入口摄像机", env.fault_ticket]),
        "site": ("/sites/garden", ["车库入口摄像机", "3号楼 / B1 / 车库入口", "3号楼弱电井交换机",
                                   env.fault_ticket, "王经理", "13800000000"]),
        "device": (f"/devices/{env.broken}", ["HK-0042", "2028-02-28", "剩余",
                                              env.fault_ticket, "3号楼弱电井交换机", "tcp_18554"]),
        "ticket": (f"/tickets/{env.fault_ticket}", ["车库入口摄像机", "3号楼 / B1 / 车库入口",
                                                    "剩余", "开单"]),
        "silences": ("/silences", ["门禁改造", "site=harbour"]),
    }
    async with aiohttp.ClientSession() as http, http.post(f"{env.base}/api/v1/silences",
                         headers={"Authorization": f"Bearer {env.token}"},
                         json={"matchers": {"site": "harbour"}, "who": "李工",
                               "why": "门禁改造 access control upgrade",
                               "until": "2099-01-01T00:00:00+08:00"}) as resp:
        assert resp.status == 201
    for width, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await browser.new_context(viewport=viewport, locale="zh-CN")
        try:
            for name, (path, expected) in pages.items():
                opened = await visit(context, env.base + path)
                text = await opened.page.inner_text("body")
                for item in expected:
                    assert item in text, f"{name}: {item!r} missing"
                assert await no_horizontal_scroll(opened.page), f"{name} scrolls sideways"
                await opened.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"),
                                             full_page=True)
                assert opened.errors == [], f"{name}: {opened.errors}"
        finally:
            await context.close()


async def test_site_page_lists_faults_first_with_location_and_dependency(
        env: Env, browser: Browser) -> None:
    context = await browser.new_context(viewport=PHONE, locale="zh-CN")
    try:
        opened = await visit(context, f"{env.base}/sites/garden")
        first = opened.page.locator("#systems li.device").first
        assert env.broken in (await first.inner_html())
        assert "故障" in await first.inner_text()
        assert await first.locator(f"a[href='/devices/{env.switch}']").count() == 1
        assert await first.locator(f"a[href='/tickets/{env.fault_ticket}']").count() == 1
    finally:
        await context.close()


async def test_device_supplied_markup_shows_as_text_and_never_runs(
        env: Env, browser: Browser) -> None:
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    try:
        opened = await visit(context, f"{env.base}/devices/cam-onvif")
        vendor = opened.page.locator(".fact-vendor .reported-value")
        assert await vendor.inner_text() == XSS
        assert await opened.page.locator(".fact-model .reported-value").inner_text() == (
            "DS-2CD<b>bold</b>")
        scripts = await opened.page.evaluate(
            "[...document.scripts].map(s => s.textContent).join('\\n')")
        assert "alert(1)" not in scripts
        assert await opened.page.locator(".fact-model b").count() == 0
        assert await no_horizontal_scroll(opened.page)   # long serials and values wrap
        await opened.page.wait_for_timeout(200)
        assert opened.dialogs == [] and opened.errors == []
    finally:
        await context.close()


async def test_sign_off_link_lets_the_site_representative_sign_off_the_ticket_once(
        env: Env, browser: Browser) -> None:
    assert env.app.tickets is not None
    detail = await env.app.tickets.get(env.work_order)
    await env.app.tickets.complete_preventive(
        env.work_order, "张工", "张工", {item: (True, "") for item in detail.ticket.checklist})
    link = links.sign(env.token, env.work_order)
    url = f"{env.base}/tickets/{env.work_order}"
    context = await browser.new_context(viewport=PHONE, locale="zh-CN")
    try:
        plain = await visit(context, url)   # no link: no form, a hint for the engineer
        assert await plain.page.locator("#signoff-form").count() == 0
        assert "signoff-link" in await plain.page.inner_text("body")

        opened = await visit(context, f"{url}?link={link}")
        await opened.page.fill("input[name=name]", "王经理")
        await opened.page.fill("textarea[name=comment]", "巡检完成，确认")
        async with opened.page.expect_navigation():
            await opened.page.click("#signoff-form button")
        body = await opened.page.inner_text("body")
        assert "已验收" in body and "王经理" in body and "巡检完成，确认" in body
        await opened.page.screenshot(path=str(SHOTS / "ticket-signed-phone.png"),
                                     full_page=True)
        assert opened.errors == []
    finally:
        await context.close()
    final = await env.app.tickets.get(env.work_order)
    # A work order has no technical verification: the client's acceptance closes it.
    assert (final.ticket.state, final.ticket.close_reason) == ("closed", "signed_off")
    assert [(s["name"], s["channel"]) for s in final.sign_offs] == [("王经理", "link")]
    async with aiohttp.ClientSession() as http:
        signoff = f"{url}/signoff"
        async with http.post(f"{signoff}?link={link}", data={"name": "again"}) as resp:
            assert resp.status == 409          # spent: the ticket is closed now
        async with http.post(f"{signoff}?link=9{link}", data={"name": "forged"}) as resp:
            assert resp.status == 401
        other = links.sign(env.token, env.fault_ticket)
        async with http.post(f"{signoff}?link={other}", data={"name": "forged"}) as resp:
            assert resp.status == 401          # a link is good for its own ticket only
    assert len((await env.app.tickets.get(env.work_order)).sign_offs) == 1


async def test_status_parts_refresh_in_place_without_reloading_the_page(
        env: Env, browser: Browser) -> None:
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    try:
        opened = await visit(context, f"{env.base}/sites/harbour?refresh=2")
        page = opened.page
        assert "Harbour View" in await page.inner_text("h1")
        await page.evaluate("window.stillHere = true")
        row = page.locator("#systems li.device").first
        assert "up" in await row.locator(".badge").inner_text()
        await env.fleet.set_fault(env.spare, Fault.DOWN)
        try:
            # A locator wait: the page's CSP forbids the string eval wait_for_function uses.
            await expect(page.locator("#systems li.device .badge").first).to_have_text(
                "down", timeout=8000)
        finally:
            await env.fleet.set_fault(env.spare, Fault.NONE)
        assert await page.evaluate("window.stillHere === true")
        await page.screenshot(path=str(SHOTS / "site-en-refreshed-phone.png"), full_page=True)
        assert opened.errors == []
    finally:
        await context.close()


async def test_language_follows_the_site_unless_the_browser_cannot_read_it(
        env: Env, browser: Browser) -> None:
    for locale, expected, unexpected in (("zh-CN", "视频监控", "CCTV"),
                                         ("en-US", "CCTV", "视频监控")):
        context = await browser.new_context(viewport=PHONE, locale=locale)
        try:
            opened = await visit(context, f"{env.base}/sites/garden")
            text = await opened.page.inner_text("#systems")
            assert expected in text and unexpected not in text
        finally:
            await context.close()
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    try:   # an explicit choice is remembered across pages
        await visit(context, f"{env.base}/sites/garden?lang=zh-CN")
        opened = await visit(context, f"{env.base}/devices/{env.broken}")
        assert await opened.page.get_attribute("html", "lang") == "zh-CN"
    finally:
        await context.close()


async def test_unknown_page_is_a_404_page(env: Env, browser: Browser) -> None:
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    try:
        opened = await visit(context, f"{env.base}/devices/no-such-device", status=404)
        assert "no-such-device" in await opened.page.inner_text("main")
    finally:
        await context.close()


async def test_site_page_links_open_the_site_reports_in_the_browser(
        env: Env, browser: Browser) -> None:
    context = await browser.new_context(viewport=PHONE, locale="zh-CN")
    try:
        opened = await visit(context, f"{env.base}/sites/garden")
        links = opened.page.locator("#reports a")
        assert await links.count() >= 12          # 3 reports x (HTML, CSV[, PDF]) x 2 spans
        report = opened.page.locator("#reports li.report-availability a", has_text="HTML")
        async with opened.page.expect_navigation():
            await report.first.click()
        assert "/api/v1/sites/garden/reports/availability" in opened.page.url
        body = await opened.page.inner_text("body")
        assert "设备运行情况记录" in body and "阳光花园" in body and "车库入口摄像机" in body
        await opened.page.screenshot(path=str(SHOTS / "report-availability-phone.png"),
                                     full_page=True)
        assert opened.errors == []                # the report's CSP allows its own style
        # Wide tables scroll in their own box: the page is no wider than the phone.
        assert await opened.page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        await context.close()
