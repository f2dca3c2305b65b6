"""Engineers acting from the pages on a phone, through a real daemon and headless Chromium.

The daemon watches two sites whose cameras are down (TCP checks on a closed loopback
port), so each has a fault ticket.  An engineer's personal link (``elvwatch link
--engineer``) opens their site's pages with the forms: dispatch, arrival and departure,
the service record with parts, prices and consumables, a photo from the phone's camera
input, the client's sign-off link; every action is the engineer's in the audit trail.
The link ends when it expires, when it is revoked, or outside the engineer's sites, and
it never opens the JSON API's writes.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
import pytest_asyncio
import yaml
from PIL import Image

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.web import engineer_links
from elvwatch.web.server import HttpListener
from tests.chromium import NEEDS_CHROMIUM, PHONE, cli, launched, tickets_for
from tests.test_daemon import free_port
from tests.test_photos import gps_of, phone_exif

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [*NEEDS_CHROMIUM, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Env:
    app: App
    base: str
    token: str
    config: Path
    tmp: Path
    garden_ticket: str
    harbour_ticket: str


def _write_config(path: Path, listen: str, token_file: Path) -> Path:
    closed = free_port()
    check = {"type": "tcp", "port": closed}
    path.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite+aiosqlite:///{path.parent / 'e.db'}",
                    "photos_dir": "photos"},
        "http": {"listen": listen, "token_file": str(token_file)},
        "interval": 0.2, "timeout": 0.2, "scheduler": {"down_after": 2, "jitter": 0.0},
        "sites": [{"id": "garden", "name": "阳光花园", "language": "zh-CN",
                   "address": "滨江路 88 号",
                   "contacts": [{"name": "王经理", "phone": "13800000000"}]},
                  {"id": "harbour", "name": "Harbour View", "language": "en"}],
        "engineers": [{"id": "wang", "name": "王工", "phone": "13900000001",
                       "sites": ["garden"]},
                      {"id": "li", "name": "李工", "sites": ["garden"]}],
        "devices": [
            {"id": "g-cam", "site": "garden", "kind": "camera", "host": "127.0.0.1",
             "name": "北门摄像机", "location": "1栋 / 1F / 北门",
             "warranty_until": "2099-12-31", "checks": [check]},
            {"id": "h-cam", "site": "harbour", "kind": "camera", "host": "127.0.0.1",
             "name": "Gate 2 camera", "checks": [check]}],
    }, allow_unicode=True), encoding="utf-8")
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with field_daemon(tmp_path_factory.mktemp("field-pages")) as running:
        yield running


@asynccontextmanager
async def field_daemon(tmp: Path, extra: dict[str, object] | None = None
                       ) -> AsyncIterator[Env]:
    """A daemon on the two sites' config (with ``extra`` top-level keys), once both
    cameras have their tickets."""
    token = secrets.token_urlsafe(24)
    (tmp / "token").write_text(token + "\n", encoding="utf-8")
    port = free_port()
    config = _write_config(tmp / "config.yaml", f"127.0.0.1:{port}", tmp / "token")
    if extra:
        model = yaml.safe_load(config.read_text(encoding="utf-8")) | extra
        config.write_text(yaml.safe_dump(model, allow_unicode=True), encoding="utf-8")
    app = App(load_config(config), HttpListener())
    await app.start()
    try:
        tickets = await tickets_for(app, ("g-cam", "h-cam"))
        yield Env(app, f"http://127.0.0.1:{port}", token, config, tmp, tickets["g-cam"],
                  tickets["h-cam"])
    finally:
        await app.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched() as chromium:
        yield chromium


async def engineer_url(env: Env, engineer: str, capsys: pytest.CaptureFixture[str],
                       *extra: str) -> tuple[str, str]:
    """``elvwatch link --engineer``: the URL it prints and the link's id."""
    code, out = await cli("link", "-c", str(env.config), "--engineer", engineer, "--url",
                          env.base, *extra)
    assert code == 0
    err = capsys.readouterr().err
    link = err.split("link ", 1)[1].split(" ", 1)[0]
    return out.strip(), link


def jpeg(tmp: Path, name: str = "photo.jpg") -> Path:
    """A photo as a phone takes it: with the engineer's position in its EXIF."""
    path = tmp / name
    Image.new("RGB", (640, 480), (40, 120, 200)).save(path, "JPEG", quality=80,
                                                      exif=phone_exif())
    return path


async def phone_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = await page.goto(url)
    assert response is not None and response.status == 200, url
    return page, errors


async def test_an_engineer_dispatches_visits_records_and_photographs_from_a_phone(
        env: Env, browser: Browser, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = await engineer_url(env, "wang", capsys)
    assert url.startswith(f"{env.base}/sites/garden?grant=E~wang~")
    page, errors = await phone_page(browser, url)
    assert "grant" not in page.url                     # kept in a cookie, out of history
    await page.goto(f"{env.base}/tickets/{env.garden_ticket}")
    assert "王工" in await page.inner_text("header")

    await page.fill("#dispatch-form textarea[name=solution]", "更换电源适配器")
    await page.select_option("#dispatch-form select[name=assignee]", "wang")
    await page.fill("#dispatch-form input[name=eta]", "2099-01-01T10:30")
    async with page.expect_navigation():
        await page.click("#dispatch-form button")
    assert "已派工" in await page.inner_text("#done")
    async with page.expect_navigation():
        await page.click("#arrive-form button")
    assert "已登记到场" in await page.inner_text("#done")

    await page.set_input_files("#photo-form input[name=photo]", str(jpeg(env.tmp)))
    await page.fill("#photo-form input[name=caption]", "电源适配器烧毁")
    async with page.expect_navigation():
        await page.click("#photo-form button")
    assert "照片已上传" in await page.inner_text("#done")
    image = page.locator(".photos img").first
    await image.scroll_into_view_if_needed()   # loading="lazy": fetched once in view
    for _ in range(50):
        if await image.evaluate("img => img.complete && img.naturalWidth") == 640:
            break
        await asyncio.sleep(0.1)
    assert await image.evaluate("img => img.naturalWidth") == 640

    await page.fill("#record-form textarea[name=cause]", "电源适配器老化")
    await page.fill("#record-form textarea[name=work]", "更换电源适配器，重做水晶头")
    await page.fill("#record-form input[name=part_1]", "12V 电源适配器")
    await page.fill("#record-form input[name=price_1]", "85")
    await page.fill("#record-form input[name=part_2]", "水晶头")
    await page.fill("#record-form input[name=qty_2]", "4")
    await page.fill("#record-form input[name=price_2]", "0.5")
    await page.check("#record-form input[name=consumable_2]")
    async with page.expect_navigation():
        await page.click("#record-form button")
    assert "服务记录已提交" in await page.inner_text("#done")
    async with page.expect_navigation():
        await page.click("#depart-form button")
    body = await page.inner_text("main")
    assert "电源适配器老化" in body and "耗材 · 按成本收费" in body and "¥0.50" in body
    assert errors == []

    assert env.app.tickets is not None
    detail = await env.app.tickets.get(env.garden_ticket)
    assert (detail.ticket.assignee, detail.ticket.solution) == ("王工", "更换电源适配器")
    mine = [(e.kind, e.actor, e.via) for e in detail.events if e.actor.startswith("王工")]
    assert mine == [("acknowledged", "王工 (wang)", "page"), ("arrived", "王工 (wang)", "page"),
                    ("photo", "王工 (wang)", "page"), ("resolved", "王工 (wang)", "page"),
                    ("departed", "王工 (wang)", "page")]
    (record,) = detail.service_records
    assert record["engineer"] == "王工" and record["visit_id"] == detail.visits[0]["id"]
    assert [(p["part"], p["quantity"], p["unit_price_cents"], p["coverage"], p["consumable"])
            for p in record["parts"]] == [  # type: ignore[union-attr]
        ("12V 电源适配器", 1, 8500, "warranty", False), ("水晶头", 4, 50, "at_cost", True)]
    (photo,) = detail.photos
    assert photo["content_type"] == "image/jpeg" and photo["visit_id"] == detail.visits[0]["id"]
    stored = list((env.tmp / "photos").iterdir())
    assert [p.name for p in stored] == [f"{photo['sha256'][:40]}.jpg"]
    # Kept and served without the position the phone wrote into it.
    assert gps_of(jpeg(env.tmp).read_bytes()) != {}
    assert gps_of(stored[0].read_bytes()) == {} and b"PhoneMaker" not in stored[0].read_bytes()
    served = await page.request.get(env.base + (await image.get_attribute("src") or ""))
    assert gps_of(await served.body()) == {}
    await page.context.close()


async def test_a_photo_that_is_not_an_image_or_too_big_is_refused_and_not_kept(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = await engineer_url(env, "li", capsys)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(url) as resp:
            assert resp.status == 200
            page = await resp.text()
        ticket = f"{env.base}/tickets/{env.garden_ticket}"
        async with http.get(ticket) as resp:
            form = (await resp.text()).split('id="photo-form"')[0].rsplit('action="', 1)[1]
        action = env.base + form.split('"', 1)[0].replace("&amp;", "&")
        before = sorted(p.name for p in (env.tmp / "photos").iterdir()) \
            if (env.tmp / "photos").exists() else []
        for body, status in ((b"<svg onload=alert(1)></svg>", 415),
                             (b"\xff\xd8\xff" + b"not really a jpeg", 415),
                             (b"\xff\xd8\xff" + b"\0" * (11 * 1024 * 1024), 413)):
            data = aiohttp.FormData()
            data.add_field("photo", io.BytesIO(body), filename="x.jpg",
                           content_type="image/jpeg")
            async with http.post(action, data=data) as resp:
                assert resp.status == status
        after = sorted(p.name for p in (env.tmp / "photos").iterdir()) \
            if (env.tmp / "photos").exists() else []
        assert after == before
    assert "阳光花园" in page


async def test_the_link_works_only_on_its_sites_and_never_writes_the_api(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = await engineer_url(env, "wang", capsys)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url) as resp:
            assert resp.status == 200
        async with http.get(f"{env.base}/tickets/{env.harbour_ticket}") as resp:
            assert resp.status == 403
            assert "您的链接只能处理这些小区的工单：garden" in await resp.text()
        async with http.get(f"{env.base}/tickets/{env.garden_ticket}") as resp:
            page = await resp.text()
        form = page.split("?form=", 1)[1].split('"', 1)[0]
        harbour = f"{env.base}/tickets/{env.harbour_ticket}/act/arrive?form={form}"
        async with http.post(harbour, data={}) as resp:
            assert resp.status == 403
        forged = f"{env.base}/tickets/{env.garden_ticket}/act/arrive?form=x{form}"
        async with http.post(forged, data={}) as resp:
            assert resp.status == 403 and "表单已失效" in await resp.text()
        # The JSON API's writes still want the bearer token, whatever cookie is sent.
        async with http.post(f"{env.base}/api/v1/tickets/{env.garden_ticket}/ack",
                             json={"actor": "王工"}) as resp:
            assert resp.status == 401
    assert env.app.tickets is not None
    harbour_detail = await env.app.tickets.get(env.harbour_ticket)
    assert not any(e.kind == "arrived" for e in harbour_detail.events)


async def test_a_revoked_or_expired_link_gets_a_401_page_and_loses_its_cookie(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    url, link = await engineer_url(env, "li", capsys)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(url) as resp:
            assert resp.status == 200
        assert (await cli("link", "-c", str(env.config), "--revoke", link))[0] == 0
        assert f"revoked {link} (li)" in capsys.readouterr().err
        async with http.get(f"{env.base}/tickets/{env.garden_ticket}") as resp:
            assert resp.status == 401
            assert "这个工程师链接已被停用" in await resp.text()
            assert "elvwatch_engineer=\"\"" in resp.headers.get("Set-Cookie", "")
    assert env.app.store is not None
    grant, _ = await engineer_links.issue(env.app.store, env.token, "li", 0.5,
                                          time.time() - 3600)
    async with aiohttp.ClientSession() as http, \
            http.get(f"{env.base}/sites/garden?grant={grant}") as resp:
        assert resp.status == 401 and "这个工程师链接已过期" in await resp.text()
    code, listed = await cli("link", "-c", str(env.config), "--list")
    assert code == 0
    assert f"{link}  li  until" in listed and "revoked" in listed and "expired" in listed
    assert (await cli("link", "-c", str(env.config), "--engineer", "nobody"))[0] == 2
