"""One month of a maintenance contract, as the plan has it, through a real daemon watching
lab devices on loopback and its pages in headless Chromium at phone width.

The contract starts on the first of this month.  In it:

* a camera fails → the daemon opens a ticket → the engineer dispatches himself from his
  phone, arrives, photographs, writes the service record (cause, parts with prices, a
  consumable) and leaves → the camera recovers and the daemon confirms it → the site
  representative signs off through the link the engineer sent (用户已验收) → the
  engineer records the return visit → closed;
* a resident phones in a request, written down on the site page;
* a second camera fails, is diagnosed as buried cabling (major) and gets a repair
  deadline agreed on the page; it passes, the daemon records the breach, and the
  deadline is renegotiated — the SLA report keeps the breach;
* the network work order is done with one checklist item not ok, which opens a
  follow-up ticket linked to it;
* a periodic return visit of the site;
* the handover package, downloaded from the site page, holds every record the plan
  lists (availability, SLA, service records with one receipt per visit and the return
  visits, the archive, the audit trails, the state changes, a cover to sign), every
  file matching the manifest, and the client-facing documents in Chinese throughout.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
import secrets
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import yaml
from PIL import Image

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.lab.devices import Fault, LabFleet, tcp_check
from elvwatch.web.server import HttpListener
from tests.chromium import NEEDS_CHROMIUM, PHONE, cli, launched
from tests.helpers import until
from tests.test_daemon import PORT, first_address, free_port

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

pytestmark = [
    *NEEDS_CHROMIUM,
    pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext not installed"),
    pytest.mark.asyncio(loop_scope="module"),
]
SH = ZoneInfo("Asia/Shanghai")
SHOTS = Path(__file__).parent.parent / "test-output" / "screenshots"
# Words that must not reach the client in English: states, coverage, systems, kinds,
# the rule language and the system's own notes.
ENGLISH = re.compile(r"\b(open|acknowledged|resolved|verified|closed|warranty|at_cost|"
                     r"cctv|network|camera|switch|preventive|deadline|escalated|recovered|"
                     r"checklist|signed off|state ==|status ==)\b")
IDS = ("cam-gate", "cam-garage", "sw-core")


@dataclass
class Month:
    app: App
    base: str
    config: Path
    tmp: Path
    fleet: LabFleet
    gate: str            # the lab devices behind the configured ids
    garage: str


def _config(path: Path, fleet: LabFleet, listen: str, token_file: Path) -> Path:
    gate, garage, core = fleet.devices
    first = datetime.now(SH).date().replace(day=1)
    path.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite+aiosqlite:///{path.parent / 'month.db'}",
                    "photos_dir": "photos"},
        "http": {"listen": listen, "token_file": str(token_file)},
        "interval": 0.2, "timeout": 0.2, "scheduler": {"down_after": 2, "jitter": 0.0},
        "tickets": {"verify_after_polls": 3},
        "sites": [{"id": "garden", "name": "阳光花园", "language": "zh-CN",
                   "address": "滨江路 88 号",
                   "contacts": [{"name": "王经理", "role": "物业经理", "phone": "13800000000"}],
                   "escalation": [{"name": "李总", "phone": "13800000001"}],
                   "contract": {"start": first.isoformat(), "preventive": "monthly"}}],
        "engineers": [{"id": "wang", "name": "王工", "phone": "13900000001",
                       "sites": ["garden"]}],
        "devices": [
            {"id": "cam-gate", "site": "garden", "kind": "camera", "host": gate.host,
             "name": "北门摄像机", "location": {"building": "1栋", "place": "北门"},
             "vendor": "Hikvision", "model": "DS-2CD2143G2-I", "serial": "HK-0042",
             "installed": "2025-03-01", "warranty_until": "2099-12-31",
             "depends_on": ["sw-core"], "checks": [tcp_check(PORT)]},
            {"id": "cam-garage", "site": "garden", "kind": "camera", "host": garage.host,
             "name": "车库入口摄像机", "location": {"building": "2栋", "floor": "B1",
                                                   "place": "车库入口"},
             "depends_on": ["sw-core"], "checks": [tcp_check(PORT)]},
            {"id": "sw-core", "site": "garden", "kind": "switch", "host": core.host,
             "name": "弱电间交换机", "location": {"building": "1栋", "floor": "B1",
                                                 "place": "弱电间"},
             "checks": [tcp_check(PORT)]}],
    }, allow_unicode=True), encoding="utf-8")
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def month(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Month]:
    tmp = tmp_path_factory.mktemp("month")
    (tmp / "token").write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
    port = free_port()
    async with LabFleet(3, first_address(), [PORT]) as fleet:
        config = _config(tmp / "config.yaml", fleet, f"127.0.0.1:{port}", tmp / "token")
        app = App(load_config(config), HttpListener())
        await app.start()
        try:
            await until(lambda: all(d in app.tracker.devices and
                                    app.tracker.devices[d].state.value == "up" for d in IDS),
                        what="lab devices up")
            yield Month(app, f"http://127.0.0.1:{port}", config, tmp, fleet,
                        fleet.devices[0].id, fleet.devices[1].id)
        finally:
            await app.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with launched() as chromium:
        yield chromium


async def submit(page: Page, form: str, expect_done: str) -> None:
    async with page.expect_navigation():
        await page.click(f"{form} button[type=submit]")
    assert expect_done in await page.inner_text("#done"), await page.inner_text("main")


async def ticket_of(app: App, device: str) -> str:
    assert app.tickets is not None

    async def find() -> str | None:
        live = await app.tickets.list_tickets(state="live")  # type: ignore[union-attr]
        return next((t.number for t in live if t.device == device), None)

    return str(await until(find, what=f"a ticket for {device}"))


def local_input(moment: datetime) -> str:
    return moment.astimezone(SH).strftime("%Y-%m-%dT%H:%M:%S")


def latin_words(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    found = [m.group(0) for m in ENGLISH.finditer(text)]
    return [w for w in found if w not in allowed]


async def test_one_contract_month_through_the_daemon_and_the_pages(
        month: Month, browser: Browser, tmp_path: Path) -> None:
    app, base = month.app, month.base
    assert app.tickets is not None
    code, out = await cli("link", "-c", str(month.config), "--engineer", "wang", "--url", base)
    assert code == 0
    engineer: BrowserContext = await browser.new_context(viewport=PHONE, locale="zh-CN",
                                                         accept_downloads=True)
    page = await engineer.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(out.strip())
    assert page.url == f"{base}/sites/garden"

    # -- a fault, from the daemon's ticket to the client's sign-off ----------------------
    await month.fleet.set_fault(month.gate, Fault.DOWN)
    fault = await ticket_of(app, "cam-gate")
    await page.goto(f"{base}/tickets/{fault}")
    await page.fill("#dispatch-form textarea[name=solution]", "检查供电并更换电源适配器")
    await page.fill("#dispatch-form input[name=eta]",
                    local_input(datetime.now(SH) + timedelta(hours=1))[:16])
    await submit(page, "#dispatch-form", "已派工")
    await submit(page, "#arrive-form", "已登记到场")
    photo = tmp_path / "adapter.jpg"
    Image.new("RGB", (800, 600), (200, 60, 40)).save(photo, "JPEG")
    await page.set_input_files("#photo-form input[name=photo]", str(photo))
    await page.fill("#photo-form input[name=caption]", "烧毁的电源适配器")
    await submit(page, "#photo-form", "照片已上传")
    await page.fill("#record-form textarea[name=cause]", "电源适配器老化烧毁")
    await page.fill("#record-form textarea[name=work]", "更换电源适配器，重做水晶头")
    await page.fill("#record-form input[name=part_1]", "12V 2A 电源适配器")
    await page.fill("#record-form input[name=price_1]", "85")
    await page.fill("#record-form input[name=part_2]", "RJ45 水晶头")
    await page.fill("#record-form input[name=qty_2]", "2")
    await page.fill("#record-form input[name=price_2]", "1.50")
    await page.check("#record-form input[name=consumable_2]")
    await submit(page, "#record-form", "服务记录已提交")
    await month.fleet.set_fault(month.gate, Fault.NONE)
    await submit(page, "#depart-form", "已登记离场")

    async def confirmed() -> bool:
        return (await app.tickets.get(fault)).ticket.state == "verified"  # type: ignore[union-attr]

    # A few polls at 0.2 s; the generous bound is for a loaded CI host (the browser, the
    # daemon and its lab share the test process).
    await until(confirmed, what="the daemon confirming the recovery", timeout=30)
    await page.goto(f"{base}/tickets/{fault}")
    async with page.expect_navigation():
        await page.click("#signoff-link-form button")
    signoff_url = await page.inner_text("#signoff-url")

    client = await browser.new_context(viewport=PHONE, locale="zh-CN")
    rep = await client.new_page()
    await rep.goto(signoff_url)
    assert "系统确认恢复" in await rep.inner_text("#ticket-status")
    await rep.fill("input[name=name]", "王经理")
    await rep.fill("textarea[name=comment]", "北门图像恢复正常")
    async with rep.expect_navigation():
        await rep.click("#signoff-form button")
    seen = await rep.inner_text("main")
    assert "用户已验收" in seen and "王经理" in seen and "电源适配器老化烧毁" in seen
    assert latin_words(seen) == [] and not any(i in seen for i in IDS), seen
    await rep.screenshot(path=str(SHOTS / "month-client-signed-phone.png"), full_page=True)
    await client.close()

    await page.goto(f"{base}/tickets/{fault}")
    await page.fill("#return-visit-form input[name=contact]", "王经理")
    await page.check("#return-visit-form input[name=rating][value='5']")
    await page.check("#return-visit-form input[name=quality_issue][value=no]")
    await page.fill("#return-visit-form textarea[name=comment]", "维修及时")
    await submit(page, "#return-visit-form", "回访已登记")
    done = await app.tickets.get(fault)
    assert (done.ticket.state, done.ticket.close_reason) == ("closed", "signed_off")
    assert [f["rating"] for f in done.feedback] == [5]

    # -- a request taken by phone ----------------------------------------------------------
    await page.goto(f"{base}/sites/garden")
    await page.select_option("#new-ticket-form select[name=channel]", "phone")
    await page.fill("#new-ticket-form input[name=reporter]", "业主李女士")
    await page.fill("#new-ticket-form input[name=contact]", "13900000002")
    await page.fill("#new-ticket-form input[name=location]", "3栋电梯厅")
    await page.fill("#new-ticket-form textarea[name=description]", "电梯厅对讲屏黑屏")
    async with page.expect_navigation():
        await page.click("#new-ticket-form button")
    call = page.url.split("/tickets/", 1)[1].split("?", 1)[0]
    assert "电话 · 业主李女士" in await page.inner_text("main")
    assert (await app.tickets.get(call)).ticket.channel == "phone"

    # -- a major fault whose agreed deadline passes and is renegotiated ----------------------
    await month.fleet.set_fault(month.garage, Fault.DOWN)
    major = await ticket_of(app, "cam-garage")
    await page.goto(f"{base}/tickets/{major}")
    await page.select_option("#reclassify-form select[name=severity]", "major")
    await page.fill("#reclassify-form textarea[name=reason]", "暗埋线路故障，需开挖")
    await submit(page, "#reclassify-form", "故障级别已调整")
    await page.fill("#deadline-form input[name=due]",
                    local_input(datetime.now(SH) + timedelta(seconds=2)))
    await page.fill("#deadline-form input[name=note]", "与王经理商定")
    await submit(page, "#deadline-form", "修复期限已商定")

    async def breached() -> bool:
        return (await app.tickets.get(major)).ticket.resolve_breached  # type: ignore[union-attr]

    await until(breached, timeout=40, what="the daemon recording the repair breach")
    await page.goto(f"{base}/tickets/{major}")
    await page.fill("#deadline-form input[name=due]",
                    local_input(datetime.now(SH) + timedelta(days=2)))
    await page.fill("#deadline-form input[name=note]", "材料到货延迟")
    await submit(page, "#deadline-form", "修复期限已商定")

    # -- the network work order, one item not ok ----------------------------------------------
    order = next(t for t in await app.tickets.list_tickets(kind="preventive")
                 if t.system == "network")
    await page.goto(f"{base}/tickets/{order.number}")
    await submit(page, "#dispatch-form", "已派工")
    await submit(page, "#arrive-form", "已登记到场")
    for item in order.checklist:
        verdict = "fail" if item == "check_links" else "ok"
        await page.check(f"#checklist-form input[name=item_{item}][value={verdict}]")
    await page.fill("#checklist-form input[name=note_check_links]", "3 口误码率高")
    await page.select_option("#checklist-form select[name=device_check_links]", "sw-core")
    await submit(page, "#checklist-form", "保养结果已提交")
    await submit(page, "#depart-form", "已登记离场")
    follow = (await app.tickets.get(order.number)).checklist_results
    follow_up = next(str(r["follow_up"]) for r in follow if r["item"] == "check_links")
    assert (await app.tickets.get(follow_up)).ticket.follow_up_of == order.number
    assert f"/tickets/{follow_up}" in await page.inner_html("main")

    # -- a periodic return visit of the site ----------------------------------------------------
    await page.goto(f"{base}/sites/garden")
    await page.fill("#return-visit-form input[name=contact]", "王经理")
    await page.check("#return-visit-form input[name=rating][value='4']")
    await page.check("#return-visit-form input[name=quality_issue][value=yes]")
    await page.fill("#return-visit-form textarea[name=comment]", "车库摄像机夜间偏暗")
    await page.fill("#return-visit-form textarea[name=solution]", "加装补光灯")
    await submit(page, "#return-visit-form", "回访已登记")

    # -- the SLA report from the site page keeps the renegotiated breach -------------------------
    async with page.expect_navigation():
        await page.click("#reports li.report-sla a:text('HTML')")
    sla = await page.inner_text("body")
    assert major in sla and "超时仍计" in sla and "重大（原一般）" in sla
    assert "未到期" in sla and "按期完成" in sla and follow_up in sla
    assert latin_words(sla) == [], latin_words(sla)
    await page.screenshot(path=str(SHOTS / "month-sla-phone.png"), full_page=True)

    # -- the handover package, from the site page ---------------------------------------------
    await page.goto(f"{base}/sites/garden")
    async with page.expect_download(timeout=120_000) as download_info:
        await page.click("#handover a")
    download = await download_info.value
    bundle = tmp_path / "handover.zip"
    await download.save_as(bundle)
    check_handover(bundle, tmp_path, fault=fault, call=call, major=major,
                   order=order.number, follow_up=follow_up)
    assert errors == []
    await engineer.close()


def pdf_text(data: bytes, tmp: Path) -> str:
    path = tmp / "doc.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, timeout=60).stdout.decode("utf-8")


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def check_handover(bundle: Path, tmp: Path, *, fault: str, call: str, major: str, order: str,
                   follow_up: str) -> None:
    with zipfile.ZipFile(bundle) as z:
        files = {name: z.read(name) for name in z.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    assert {f["name"] for f in manifest["files"]} == set(files)
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]
        assert len(files[entry["name"]]) == entry["bytes"]
    stems = ("00-cover", "01-availability", "02-sla", "03-service", "04-archive", "05-audit",
             "06-state-log")
    assert {f"{s}.html" for s in stems} | {f"{s}.pdf" for s in stems} <= set(files)
    # The engineer's photo, as kept (the manifest says whose ticket it is).
    (photo,) = manifest["photos"]
    assert photo["ticket"] == fault and files[photo["name"]][:3] == b"\xff\xd8\xff"
    # The cover lists every document, with room for both parties to sign.
    cover = pdf_text(files["00-cover.pdf"], tmp)
    for words in ("维护资料移交清单", "阳光花园", "滨江路 88 号", "设备运行情况记录",
                  "服务水平报告", "服务回执单", "用户回访反馈信息表", "设备档案", "工单处理记录",
                  "设备状态变化记录", "移交方（维护单位）签字", "接收方（甲方）签字"):
        assert words in cover, words
    # 服务记录 and one 服务回执单 per visit: the fault's visit with its times, parts and
    # the client's signature; the work order's visit with its checklist.
    service = files["03-service.html"].decode("utf-8")
    assert service.count('<section class="sheet">') == 2
    for words in ("服务回执单", "到场时间", "离场时间", "王工", "电源适配器老化烧毁",
                  "12V 2A 电源适配器", "保修索赔", "耗材 · 按成本收费", "3.00", "王经理",
                  "北门图像恢复正常", "检查链路及端口状态", "不合格", "3 口误码率高"):
        assert words in service, words
    receipts = pdf_text(files["03-service.pdf"], tmp)
    assert receipts.count("服务回执单") >= 2 and "工程师签字" in receipts
    feedback = rows(files["03-feedback.csv"])
    assert [(r["工单号"], r["是否工程质量问题"], r["满意度(1-5)"]) for r in feedback] == [
        (fault, "否", "5"), ("定期回访", "是", "4")]
    assert feedback[1]["处理方案"] == "加装补光灯"
    sla = rows(files["02-sla.csv"])
    by_ticket = {r["工单号"]: r for r in sla}
    assert {fault, call, major, follow_up} <= set(by_ticket)
    assert by_ticket[major]["修复超时"] == "1" and "超时仍计" not in by_ticket[major]["原因"]
    assert "改期" in files["02-sla.html"].decode("utf-8") or \
        "超时仍计" in files["02-sla.html"].decode("utf-8")
    audit = rows(files["05-audit.csv"])
    fault_events = [r["事件"] for r in audit if r["工单号"] == fault]
    for event in ("开单", "派工", "到场", "上传照片", "修复", "离场", "系统确认恢复",
                  "用户已验收", "关闭", "回访"):
        assert event in fault_events, (event, fault_events)
    assert any(r["工单号"] == order and r["事件"] == "开后续工单" for r in audit)
    changes = rows(files["06-state-log.csv"])
    gate = [(r["原状态"], r["新状态"]) for r in changes if r["设备编号"] == "cam-gate"]
    assert ("正常", "故障") in gate and ("故障", "正常") in gate
    archive = rows(files["04-archive.csv"])
    assert {r["设备编号"] for r in archive} == set(IDS)
    # What the client reads is in Chinese: no English states, systems, kinds or rule
    # expressions, devices by name (the archive's own id column aside); the records
    # hold no English word at all but the camera's maker and PoE.
    for name, data in files.items():
        if not name.endswith(".html"):
            continue
        text = html.unescape(re.sub(r"<style.*?</style>|<[^>]+>", " ", data.decode("utf-8"),
                                    flags=re.S))
        assert latin_words(text) == [], (name, latin_words(text))
        if name != "04-archive.html":
            assert not any(i in text for i in IDS), name
        if name not in ("00-cover.html", "04-archive.html"):
            english = set(re.findall(r"[A-Za-z]{3,}", text)) - {"Hikvision", "PoE"}
            assert english == set(), (name, english)
    assert date.today().year >= 2026
