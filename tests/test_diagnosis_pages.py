"""What an engineer finds out on site, recorded from the ticket page on a phone: the
severity after diagnosis and a manufacturer warranty claim (RMA); and the client's
sign-off that comes after the system closed the ticket.  Through a real daemon (which
notifies a webhook receiver on loopback), its pages in headless Chromium, and the
engineer's personal link — each action goes through the ticket stage's one path:
audit trail, notification, the SLA report and the receipt show it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio

from elvwatch.daemon.app import App
from elvwatch.tickets.events import TicketEventKind
from elvwatch.tickets.records import NewTicket, ServiceRecord
from elvwatch.web import links
from tests.chromium import NEEDS_CHROMIUM, launched
from tests.helpers import until
from tests.notify_peers import WEBHOOK_SECRET, Receiver, http_receiver
from tests.test_field_pages import Env as FieldEnv
from tests.test_field_pages import engineer_url, field_daemon, phone_page

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [*NEEDS_CHROMIUM, pytest.mark.asyncio(loop_scope="module")]
SECRET_ENV = "ELVWATCH_TEST_DIAGNOSIS_HOOK"
# A ticket with nothing to verify closes this long after its service record (≈ 9 s).
AUTO_CLOSE_DAYS = 0.0001


@dataclass
class Env:
    daemon: FieldEnv
    receiver: Receiver

    @property
    def app(self) -> App:
        return self.daemon.app

    @property
    def base(self) -> str:
        return self.daemon.base

    @property
    def token(self) -> str:
        return self.daemon.token

    @property
    def ticket(self) -> str:
        """The garden camera's fault ticket."""
        return self.daemon.garden_ticket


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    os.environ[SECRET_ENV] = WEBHOOK_SECRET
    try:
        async with http_receiver() as receiver, field_daemon(
                tmp_path_factory.mktemp("diagnosis-pages"), {
                    "tickets": {"auto_close_days": AUTO_CLOSE_DAYS},
                    "credentials": {"hook": {"password_env": SECRET_ENV}},
                    "notify": {"receivers": {"noc": {
                        "type": "webhook", "credentials": "hook",
                        "options": {"url": f"{receiver.url}/hook"}}},
                        "routes": [{"receivers": ["noc"],
                                    "events": [k.value for k in TicketEventKind]}]}}) as daemon:
            yield Env(daemon, receiver)
    finally:
        os.environ.pop(SECRET_ENV, None)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched() as chromium:
        yield chromium


def told(env: Env, number: str) -> list[tuple[str, str, str]]:
    """What the webhook receiver was told about ticket ``number``: (kind, actor, note)."""
    return [(e["kind"], e["actor"], e.get("note") or "")
            for r in env.receiver.accepted("/hook") for e in r.json()["events"]
            if e["ticket"] == number]


async def submit(page: Page, form: str, done: str) -> None:
    async with page.expect_navigation():
        await page.click(f"{form} button")
    assert done in await page.inner_text("#done")


async def rma_form(page: Page, **fields: str) -> str:
    """Fill the warranty-claim form with ``fields``, post it, and what the page says."""
    for name, value in fields.items():
        await page.fill(f"#rma-form input[name={name}]", value)
    async with page.expect_navigation():
        await page.click("#rma-form button")
    return (await page.inner_text("#done, [role=alert]")).strip()


async def test_the_engineer_reclassifies_a_fault_from_the_ticket_page(
        env: Env, browser: Browser, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = await engineer_url(env.daemon, "wang", capsys)
    page, errors = await phone_page(browser, url)
    await page.goto(f"{env.base}/tickets/{env.ticket}")
    assert "与甲方商定" not in await page.inner_text("#ticket-status")
    options = await page.locator("#reclassify-form select[name=severity] option").all_inner_texts()
    assert options == ["重大", "紧急"]                # the words, never the ids; not "一般"

    # The reason is required: the browser stops an empty form, the server too.
    form = await page.get_attribute("#reclassify-form", "action")
    response = await page.request.post(env.base + (form or ""), form={"severity": "major"})
    assert response.status == 422 and "请填写：诊断结果（调整原因）" in await response.text()
    response = await page.request.post(env.base + (form or ""),
                                       form={"severity": "urgent", "reason": "x"})
    assert response.status == 422

    await page.select_option("#reclassify-form select[name=severity]", "major")
    await page.fill("#reclassify-form textarea[name=reason]", "暗埋线路故障，需开挖")
    await submit(page, "#reclassify-form", "故障级别已调整。")
    status = await page.inner_text("#ticket-status")
    assert "重大" in status and "（原一般）" in status and "与甲方商定" in status
    timeline = await page.inner_text("#ticket-timeline")
    assert "级别调整" in timeline and "级别由一般调整为重大：暗埋线路故障，需开挖" in timeline
    assert "修复期限待商定" in timeline and "原期限" in timeline
    assert "reclassified" not in timeline and "major" not in timeline

    assert env.app.tickets is not None
    detail = await env.app.tickets.get(env.ticket)
    t = detail.ticket
    assert (t.severity, t.original_severity, t.resolve_due, t.resolve_to_agree) == (
        "major", "general", None, True)
    last = detail.events[-1]
    assert (last.kind, last.actor, last.via) == ("reclassified", "王工 (wang)", "page")
    assert [d["which"] for d in detail.superseded_deadlines] == ["resolve"]
    await until(lambda: any(k == "reclassified" and a == "王工 (wang)"
                            for k, a, _ in told(env, env.ticket)),
                timeout=15, what="the reclassification notified")

    # The SLA report the site page links to shows both severities.
    await page.goto(f"{env.base}/sites/garden")
    async with page.expect_navigation():
        await page.click("#reports li.report-sla a:text('HTML')")
    sla = await page.inner_text("body")
    assert env.ticket in sla and "重大（原一般）" in sla

    # Reclassified, the repair deadline is agreed on the same page.
    await page.goto(f"{env.base}/tickets/{env.ticket}")
    assert await page.locator("#deadline-form").count() == 1
    assert errors == []
    await page.context.close()


async def test_the_engineer_records_and_updates_a_warranty_claim_from_the_ticket_page(
        env: Env, browser: Browser, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = await engineer_url(env.daemon, "li", capsys)
    page, errors = await phone_page(browser, url)
    await page.goto(f"{env.base}/tickets/{env.ticket}")

    claim = "RMA-2026-0042"
    contact = "海康售后 400-700-5998"
    # A new claim needs the part and the vendor's contact, said in the site's words.
    said = await rma_form(page, claim_number=claim, vendor_contact=contact)
    assert said == "请填写：索赔部件"
    said = await rma_form(page, claim_number=claim, part="摄像机主板", vendor="海康威视",
                          vendor_contact=contact, sent_on="2026-03-05")
    assert said == "厂商保修索赔已登记。"
    claims = await page.inner_text("#rma-claims-list")
    assert claim in claims and "摄像机主板" in claims and "未返回" in claims

    # Back from the vendor: the same claim number adds the date; a date before it was
    # sent is refused and changes nothing.
    said = await rma_form(page, claim_number=claim, returned_on="2026-03-01")
    assert said == "返回日期 2026-03-01 早于寄出日期 2026-03-05。"
    assert await rma_form(page, claim_number=claim, returned_on="2026-03-19") == \
        "厂商保修索赔已登记。"
    assert "2026-03-19" in await page.inner_text("#rma-claims-list")
    timeline = await page.inner_text("#ticket-timeline")
    assert "厂商保修索赔 RMA-2026-0042：摄像机主板，厂商联系人 海康售后 400-700-5998" in timeline
    assert "厂商保修索赔 RMA-2026-0042 已更新；寄出 2026-03-05；返回 2026-03-19" in timeline

    assert env.app.tickets is not None
    detail = await env.app.tickets.get(env.ticket)
    (claim,) = detail.rma_claims
    assert (claim["part"], claim["vendor"], claim["sent_on"], claim["returned_on"]) == (
        "摄像机主板", "海康威视", "2026-03-05", "2026-03-19")
    rma = [(e.actor, e.via) for e in detail.events if e.kind == "rma"]
    assert rma == [("李工 (li)", "page"), ("李工 (li)", "page")]
    await until(lambda: [k for k, _, _ in told(env, env.ticket)].count("rma") == 2,
                timeout=15, what="both claim events notified")
    assert errors == []
    await page.context.close()


async def test_a_forged_or_foreign_form_cannot_reclassify(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """The forms' protection is the link's: no engineer cookie or a wrong form token is
    refused, and the ticket keeps its severity."""
    assert env.app.tickets is not None
    before = (await env.app.tickets.get(env.ticket)).ticket.severity
    url, _ = await engineer_url(env.daemon, "wang", capsys)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url) as resp:
            assert resp.status == 200
        async with http.get(f"{env.base}/tickets/{env.ticket}") as resp:
            form = (await resp.text()).split("?form=", 1)[1].split('"', 1)[0]
        target = f"{env.base}/tickets/{env.ticket}/act/reclassify"
        async with http.post(f"{target}?form=x{form}", data={
                "severity": "emergency", "reason": "x"}) as resp:
            assert resp.status == 403
    async with aiohttp.ClientSession() as http, http.post(f"{target}?form={form}", data={
            "severity": "emergency", "reason": "x"}) as resp:
        assert resp.status == 401
    assert (await env.app.tickets.get(env.ticket)).ticket.severity == before


async def test_the_client_signs_off_after_the_system_closed_the_ticket(
        env: Env, browser: Browser) -> None:
    """A request by phone is resolved; nobody signs; the daemon closes it ("no sign-off
    within N days").  The representative's sign-off link still takes the signature: it
    is recorded, the ticket stays closed, and the receipt shows it."""
    app = env.app
    assert app.tickets is not None
    (opened, *_) = await app.tickets.create(NewTicket(
        "garden", "3栋电梯厅对讲屏黑屏", "业主李女士", "phone", location="3栋电梯厅"), "客服小刘")
    number = opened.ticket
    await app.tickets.resolve(number, "王工", ServiceRecord("王工", "更换对讲屏排线"))

    async def closed() -> Any:
        t = (await app.tickets.get(number)).ticket  # type: ignore[union-attr]
        return t.close_reason == "no_sign_off" and t

    await until(closed, timeout=45, what="the daemon's auto-close")
    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    response = await page.goto(f"{env.base}/tickets/{number}?link={links.sign(env.token, number)}")
    assert response is not None and response.status == 200
    assert "已由系统自动关闭" in await page.inner_text(".signoff-box")
    await page.fill("#signoff-form input[name=name]", "王经理")
    await page.fill("#signoff-form textarea[name=comment]", "对讲已恢复")
    async with page.expect_navigation():
        await page.click("#signoff-form button")
    assert "用户已验收" in await page.inner_text("main")
    assert "此工单用户已验收。" in await page.inner_text(".signoff-box")   # no second form
    assert "王经理 验收签字（系统自动关闭后补签，工单不重开）：对讲已恢复" in \
        await page.inner_text("#ticket-timeline")

    detail = await app.tickets.get(number)
    assert (detail.ticket.state, detail.ticket.close_reason) == ("closed", "no_sign_off")
    assert [(e.kind, e.actor, e.via) for e in detail.events][-2:] == [
        ("closed", "system", "system"), ("signed_off", "王经理", "link")]
    await until(lambda: ("signed_off", "王经理", "signed off by 王经理 after the auto-close: "
                         "对讲已恢复") in told(env, number), timeout=15,
                what="the late sign-off notified")

    # The service receipt (服务回执单) carries the signature, marked as given late.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    query = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    headers = {"Authorization": f"Bearer {env.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        service = f"{env.base}/api/v1/sites/garden/reports/service"
        async with http.get(service, params=query | {"format": "json"}) as resp:
            assert resp.status == 200, await resp.text()
            doc = await resp.json()
        async with http.get(service, params=query | {"format": "html"}) as resp:
            sheet = (await resp.text()).split(number, 1)[1]
    (entry,) = [e for e in doc["entries"] if e["ticket"] == number]
    assert [(r["signed_by"], r["after_close"]) for r in entry["receipts"]] == [("王经理", True)]
    assert "王经理 <span class=\"note\">（系统自动关闭后补签）</span>" in sheet
    await context.close()
