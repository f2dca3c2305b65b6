"""An engineer's read link (``elvwatch link``) against the real daemon over HTTP.

The daemon watches two sites whose devices are down (TCP checks on closed loopback
ports), so each site has a fault ticket.  Every client here is on loopback, which the
daemon lets read anything; the ``from_afar`` fixture swaps the one loopback predicate
of web/server.py (``_is_loopback``, the seam test_page_links.py drives through a
mocked transport's peer address) so that this process's requests count as a phone's.
Everything else — routing, cookies, redirects, signatures, the store — is the daemon's.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from yarl import URL

import elvwatch.web.server
from elvwatch.cli.main import main
from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.web import read_links
from elvwatch.web.server import HttpListener, access, build_web_app
from tests.chromium import tickets_for
from tests.test_daemon import free_port

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class Env:
    app: App
    base: str
    token: str
    token_file: Path
    config: Path
    garden_ticket: str
    harbour_ticket: str


def _write_config(path: Path, listen: str, token_file: Path) -> Path:
    closed = free_port()   # nothing listens: every device is down, each site gets a ticket
    check = {"type": "tcp", "port": closed}
    path.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite+aiosqlite:///{path.parent / 'e.db'}"},
        "http": {"listen": listen, "token_file": str(token_file)},
        "interval": 0.2, "timeout": 0.2, "scheduler": {"down_after": 2, "jitter": 0.0},
        "sites": [{"id": "garden", "name": "阳光花园", "language": "zh-CN",
                   "contacts": [{"name": "王经理", "phone": "13800000000"}],
                   "contract": {"start": "2026-01-01"}},
                  {"id": "harbour", "name": "Harbour View", "language": "en",
                   "contract": {"start": "2026-01-01"}}],
        "devices": [
            {"id": "g-cam", "site": "garden", "kind": "camera", "host": "127.0.0.1",
             "name": "车库入口摄像机", "checks": [check]},
            {"id": "g-door", "site": "garden", "kind": "camera", "host": "127.0.0.1",
             "checks": [check]},
            {"id": "h-cam", "site": "harbour", "kind": "camera", "host": "127.0.0.1",
             "name": "Gate 2 camera", "checks": [check]}],
    }, allow_unicode=True), encoding="utf-8")
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("read-links")
    token = secrets.token_urlsafe(24)
    (tmp / "token").write_text(token + "\n", encoding="utf-8")
    port = free_port()
    config = _write_config(tmp / "config.yaml", f"127.0.0.1:{port}", tmp / "token")
    app = App(load_config(config), HttpListener())
    await app.start()
    try:
        tickets = await tickets_for(app, ("g-cam", "h-cam"))
        yield Env(app, f"http://127.0.0.1:{port}", token, tmp / "token", config,
                  tickets["g-cam"], tickets["h-cam"])
    finally:
        await app.stop()


@pytest.fixture
def from_afar(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's requests count as coming from another host."""
    monkeypatch.setattr(elvwatch.web.server, "_is_loopback", lambda remote: False)


def _session() -> aiohttp.ClientSession:
    # unsafe: keep cookies of an IP-address host (127.0.0.1), as a phone keeps a LAN IP's.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def _set_cookie(response: aiohttp.ClientResponse) -> Morsel[str]:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["Set-Cookie"])
    return cookie["elvwatch_grant"]


async def _open(http: aiohttp.ClientSession, env: Env, path: str, grant: str) -> None:
    """Open a link and check its redirect: the grant leaves the URL and goes in a cookie."""
    separator = "&" if "?" in path else "?"
    async with http.get(f"{env.base}{path}{separator}grant={grant}",
                        allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == path
        assert "grant" not in resp.headers["Location"]


async def test_a_site_link_opens_its_site_devices_tickets_brief_and_reports_by_cookie(
        env: Env, from_afar: None) -> None:
    grant = read_links.sign(env.token, "garden", hours=5)
    async with _session() as http:
        async with http.get(f"{env.base}/sites/garden?lang=en&grant={grant}",
                            allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/sites/garden?lang=en"
            assert resp.headers["Cache-Control"] == "no-store"
            cookie = _set_cookie(resp)
            assert cookie.value == grant
            assert cookie["httponly"] and cookie["samesite"] == "Lax"
            assert cookie["path"] == "/" and not cookie["secure"]
            assert 5 * 3600 - 60 <= int(cookie["max-age"]) <= 5 * 3600
        async with http.get(f"{env.base}/sites/garden?grant={grant}") as resp:
            assert resp.status == 200 and "grant" not in str(resp.url)
            assert [r.status for r in resp.history] == [303]
            body = await resp.text()
            assert "阳光花园" in body and "g-cam" in body and env.garden_ticket in body
        for path, expected in (("/devices/g-cam", "车库入口摄像机"),
                               ("/devices/g-door", "g-door"),
                               (f"/tickets/{env.garden_ticket}", "g-cam"),
                               ("/sites/garden/brief", "上门前简报"),
                               ("/api/v1/sites/garden/reports/availability?format=html",
                                "设备运行情况记录")):
            async with http.get(env.base + path, headers={"X-Live-Parts": "1"}) as resp:
                assert resp.status == 200, path
                assert expected in await resp.text(), path
        async with http.head(f"{env.base}/sites/garden") as resp:
            assert resp.status == 200
        # The overview is every site's: a one-site link is sent to its site page.
        async with http.get(f"{env.base}/", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/sites/garden"


async def test_a_site_link_refuses_other_sites_pages_with_a_403_page(
        env: Env, from_afar: None) -> None:
    async with _session() as http:
        await _open(http, env, "/sites/garden", read_links.sign(env.token, "garden"))
        for path in ("/sites/harbour", "/devices/h-cam", f"/tickets/{env.harbour_ticket}",
                     "/sites/harbour/brief", "/api/v1/sites/harbour/reports/sla?format=html",
                     "/silences", "/devices/no-such-device", "/tickets/T-1999-000001"):
            async with http.get(env.base + path) as resp:
                assert resp.status == 403, path
                assert resp.content_type == "text/html"
                body = await resp.text()
                assert "这个链接只能查看「阳光花园」的页面" in body, path
                assert 'href="/sites/garden"' in body
                assert "Gate 2 camera" not in body and "Harbour View" not in body
        # What no link opens still wants the bearer token.
        for path in ("/api/v1/devices", "/api/v1/devices/g-cam",
                     f"/api/v1/tickets/{env.garden_ticket}", "/api/v1/tickets", "/metrics",
                     "/healthz", "/probe?target=tcp://127.0.0.1:9"):
            async with http.get(env.base + path) as resp:
                assert resp.status == 401, path
                assert await resp.json() == {"error": "a bearer token is required"}


async def test_a_read_link_never_writes(env: Env, from_afar: None) -> None:
    grant = read_links.sign(env.token, "garden")
    number = env.garden_ticket
    async with _session() as http:
        await _open(http, env, "/sites/garden", grant)
        for path, data in ((f"/api/v1/tickets/{number}/ack", {"actor": "x"}),
                           (f"/api/v1/tickets/{number}/ack?grant={grant}", {"actor": "x"}),
                           ("/api/v1/silences", {"matchers": {"site": "garden"}}),
                           ("/api/v1/reload", {}),
                           (f"/tickets/{number}/signoff", {"name": "forged"}),
                           (f"/tickets/{number}/signoff?grant={grant}", {"name": "forged"})):
            async with http.post(env.base + path, json=data) as resp:
                assert resp.status == 401, path
        async with http.delete(f"{env.base}/sites/garden") as resp:
            assert resp.status == 401
    assert env.app.tickets is not None
    assert (await env.app.tickets.get(number)).ticket.state == "open"


async def test_an_every_site_link_opens_the_overview_and_every_site(
        env: Env, from_afar: None) -> None:
    async with _session() as http:
        await _open(http, env, "/", read_links.sign(env.token, None))
        for path, expected in (("/", "Harbour View"), ("/silences", "屏蔽"),
                               ("/sites/harbour", "Gate 2 camera"),
                               ("/devices/h-cam", "Gate 2 camera"),
                               (f"/tickets/{env.harbour_ticket}", "h-cam"),
                               ("/sites/garden", "阳光花园")):
            async with http.get(env.base + path) as resp:
                assert resp.status == 200, path
                assert expected in await resp.text(), path
        async with http.get(f"{env.base}/devices/no-such-device") as resp:
            assert resp.status == 404
        async with http.get(f"{env.base}/api/v1/devices") as resp:
            assert resp.status == 401


async def test_expired_and_tampered_links_get_a_401_page_saying_how_to_get_a_new_one(
        env: Env, from_afar: None) -> None:
    good = read_links.sign(env.token, "garden")
    expired = read_links.sign(env.token, "garden", hours=1, now=time.time() - 7200)
    _, expires, signature = good.split(".")
    cases = {
        "expired": (expired, "链接已过期", "Link expired"),
        "other site": (f"harbour.{expires}.{signature}", "链接无效", "Invalid link"),
        "later expiry": (f"garden.{int(expires) + 86400}.{signature}", "链接无效",
                         "Invalid link"),
        "altered signature": (good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
                              "链接无效", "Invalid link"),
        "other token": (read_links.sign("another-token", "garden"), "链接无效",
                        "Invalid link"),
        "garbage": ("garden", "链接无效", "Invalid link"),
    }
    async with _session() as http:
        for name, (grant, zh, en) in cases.items():
            async with http.get(f"{env.base}/sites/garden?grant={grant}",
                                allow_redirects=False) as resp:
                assert resp.status == 401, name
                assert "Set-Cookie" not in resp.headers, name
                body = await resp.text()
                assert zh in body and "elvwatch link" in body, name
                assert "车库入口摄像机" not in body, name
            async with http.get(f"{env.base}/sites/garden?grant={grant}",
                                headers={"Accept-Language": "en"},
                                allow_redirects=False) as resp:
                assert resp.status == 401 and en in await resp.text(), name
        # An expired link of an English site says so in English.
        old = read_links.sign(env.token, "harbour", hours=1, now=time.time() - 7200)
        async with http.get(f"{env.base}/sites/harbour?grant={old}") as resp:
            assert resp.status == 401 and "Link expired" in await resp.text()
        # A forged cookie is refused the same way, and the daemon clears it.
        http.cookie_jar.update_cookies({"elvwatch_grant": cases["other site"][0]},
                                       URL(env.base))
        async with http.get(f"{env.base}/devices/g-cam", allow_redirects=False) as resp:
            assert resp.status == 401 and "链接无效" in await resp.text()
            assert _set_cookie(resp)["max-age"] == "0"


async def test_rotating_the_token_revokes_every_link(env: Env, from_afar: None) -> None:
    async with _session() as http:
        await _open(http, env, "/sites/garden", read_links.sign(env.token, "garden"))
        async with http.get(f"{env.base}/devices/g-cam") as resp:
            assert resp.status == 200
        env.token_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
        try:
            async with http.get(f"{env.base}/devices/g-cam") as resp:
                assert resp.status == 401 and "链接无效" in await resp.text()
        finally:
            env.token_file.write_text(env.token + "\n", encoding="utf-8")


async def test_without_a_link_a_page_from_afar_says_how_to_get_one(
        env: Env, from_afar: None) -> None:
    async with _session() as http:
        async with http.get(f"{env.base}/sites/garden") as resp:
            assert resp.status == 401 and resp.content_type == "text/html"
            body = await resp.text()
            assert "需要查看链接" in body and "elvwatch link" in body
            assert "车库入口摄像机" not in body
        async with http.get(f"{env.base}/api/v1/sites/garden/reports/sla") as resp:
            assert resp.status == 401
            assert await resp.json() == {"error": "a bearer token is required"}
        async with http.get(f"{env.base}/sites/harbour",
                            headers={"Authorization": f"Bearer {env.token}"}) as resp:
            assert resp.status == 200      # the token still opens everything


async def test_the_cookie_is_secure_behind_a_tls_proxy(env: Env, from_afar: None) -> None:
    grant = read_links.sign(env.token, "garden")
    async with _session() as http, http.get(
            f"{env.base}/sites/garden?grant={grant}", allow_redirects=False,
            headers={"X-Forwarded-Proto": "https"}) as resp:
        assert resp.status == 303 and _set_cookie(resp)["secure"]


async def test_loopback_clients_read_as_before_and_ignore_links(env: Env) -> None:
    async with _session() as http:
        async with http.get(f"{env.base}/sites/harbour?grant=garden.1.x",
                            allow_redirects=False) as resp:
            assert resp.status == 200 and "Set-Cookie" not in resp.headers
        async with http.get(f"{env.base}/api/v1/devices") as resp:
            assert resp.status == 200
        async with http.post(f"{env.base}/api/v1/reload") as resp:
            assert resp.status == 401


class _Remote:
    """test_page_links.py's seam: a mocked request whose peer is not on loopback."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("203.0.113.7", 40000) if name == "peername" else default


async def test_a_remote_peer_goes_through_the_grant_check(env: Env) -> None:
    web_app = build_web_app(env.app)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="through")

    async def answer(path: str) -> web.StreamResponse:
        request = make_mocked_request("GET", path, app=web_app, transport=_Remote())
        return await access(request, handler)

    grant = read_links.sign(env.token, "garden")
    redirect = await answer(f"/sites/garden?grant={grant}")
    assert redirect.status == 303 and redirect.headers["Location"] == "/sites/garden"
    assert (await answer("/sites/garden")).status == 401


async def test_the_link_command_checks_its_arguments(
        env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(env.config)
    assert main(["link", "-c", config, "--site", "nowhere"]) == 2
    assert "no site 'nowhere'" in capsys.readouterr().err
    assert main(["link", "-c", config, "--site", "garden", "--hours", "745"]) == 2
    assert "744 hours" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["link", "-c", config, "--site", "garden", "--all"])
    with pytest.raises(SystemExit):
        main(["link", "-c", config])
    data = yaml.safe_load(env.config.read_text(encoding="utf-8"))
    del data["http"]["token_file"]
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["link", "-c", str(bare), "--all"]) == 1
    assert "token_file" in capsys.readouterr().err
    assert main(["link", "-c", config, "--all"]) == 0
    out, err = capsys.readouterr()
    assert urlsplit(out.strip()).path == "/" and "every site" in err
    assert "phone cannot reach" in err            # http.listen is loopback, no --url
    assert env.token not in out + err


async def test_the_link_command_prints_a_url_that_opens_the_site_page(
        env: Env, from_afar: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["link", "-c", str(env.config), "--site", "garden", "--hours", "2",
                 "--url", env.base + "/"]) == 0
    out, err = capsys.readouterr()
    url = out.strip()
    assert url.startswith(f"{env.base}/sites/garden?grant=garden.") and "\n" not in url
    assert "阳光花园" in err and "revokes" in err and "phone cannot reach" not in err
    async with _session() as http:
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 303
            assert 2 * 3600 - 60 <= int(_set_cookie(resp)["max-age"]) <= 2 * 3600
        async with http.get(url) as resp:
            assert resp.status == 200 and str(resp.url) == f"{env.base}/sites/garden"
            assert "车库入口摄像机" in await resp.text()


@pytest.mark.skipif(async_playwright is None, reason="playwright not installed (test extra)")
@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="chromium not installed (Debian package chromium)")
async def test_a_phone_opens_the_printed_link_and_taps_through_to_a_device(
        env: Env, from_afar: None, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.chromium import CHROMIUM_ARGS, PHONE
    from tests.test_pages import no_horizontal_scroll

    assert main(["link", "-c", str(env.config), "--site", "garden", "--url", env.base]) == 0
    url = capsys.readouterr().out.strip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=PHONE, locale="zh-CN")
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            response = await page.goto(url)
            assert response is not None and response.status == 200
            assert page.url == f"{env.base}/sites/garden"      # the grant left the URL
            assert "阳光花园" in await page.inner_text("h1")
            assert await no_horizontal_scroll(page)
            async with page.expect_navigation():
                await page.click("#systems a[href='/devices/g-cam']")
            assert page.url == f"{env.base}/devices/g-cam"
            assert "车库入口摄像机" in await page.inner_text("h1")
            cookies = {c["name"]: c for c in await context.cookies()}
            assert cookies["elvwatch_grant"]["httpOnly"]
            assert cookies["elvwatch_grant"]["sameSite"] == "Lax"
            assert errors == []
        finally:
            await browser.close()


async def test_loopback_reads_off_makes_loopback_clients_show_a_token_or_a_link(
        tmp_path: Path) -> None:
    # A reverse proxy on this host: everyone arrives from 127.0.0.1.
    token = secrets.token_urlsafe(24)
    (tmp_path / "token").write_text(token, encoding="utf-8")
    port = free_port()
    path = _write_config(tmp_path / "c.yaml", f"127.0.0.1:{port}", tmp_path / "token")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["http"]["loopback_reads"] = False
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    app = App(load_config(path), HttpListener())
    await app.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with _session() as http:
            async with http.get(f"{base}/api/v1/devices") as resp:
                assert resp.status == 401
            async with http.get(f"{base}/api/v1/devices",
                                headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200
            grant = read_links.sign(token, "garden")
            async with http.get(f"{base}/sites/garden?grant={grant}",
                                allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/sites/garden"
            async with http.get(f"{base}/sites/garden") as resp:
                assert resp.status == 200  # by the link's cookie
            async with http.get(f"{base}/sites/harbour") as resp:
                assert resp.status == 403
    finally:
        await app.stop()
