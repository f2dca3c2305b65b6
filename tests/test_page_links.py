"""Pure parts of the web pages: language choice and signed sign-off links."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from elvwatch.cli.main import main
from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.rules.faults import FaultState
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import ArchiveEntry, Store
from elvwatch.web import links
from elvwatch.web.page_text import MESSAGES, choose
from elvwatch.web.server import access, build_web_app
from tests.ticket_fixtures import SITE, T0, fault


def test_language_choice() -> None:
    assert choose("zh-CN", None, None) == "zh-CN"
    assert choose("zh-CN", "en-US,en;q=0.9", None) == "en"
    assert choose("zh-CN", "en-US,zh;q=0.5", None) == "zh-CN"
    assert choose("en", "zh-CN,zh;q=0.9", None) == "zh-CN"
    assert choose("en", "zh-CN,en;q=0.1", None) == "en"
    assert choose("zh-CN", "fr-FR", None) == "zh-CN"
    assert choose("zh-CN", "en", "zh-CN") == "zh-CN"
    assert choose("en", "en", "xx") == "en"


def test_sign_off_link_is_bound_to_ticket_token_and_time() -> None:
    now = time.time()
    link = links.sign("tok", "T-2026-000001", hours=1, now=now)
    assert links.valid("tok", "T-2026-000001", link, now=now)
    assert not links.valid("tok", "T-2026-000002", link, now=now)
    assert not links.valid("other", "T-2026-000001", link, now=now)
    assert not links.valid("tok", "T-2026-000001", link, now=now + 3601)
    assert not links.valid("tok", "T-2026-000001", link.replace(".", ".x"), now=now)
    assert not links.valid(None, "T-2026-000001", link, now=now)
    with pytest.raises(ValueError):
        links.sign("tok", "T-2026-000001", hours=0)


def test_both_languages_have_every_message() -> None:
    assert set(MESSAGES["zh-CN"]) == set(MESSAGES["en"])


def _config(tmp_path: Path, token_file: Path | None, seed: bool = True) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    http: dict[str, str] = {"listen": "127.0.0.1:9780"}
    if token_file is not None:
        http["token_file"] = str(token_file)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": url}, "http": http,
        "sites": [{"id": SITE, "name": "湖畔花园", "contract": {"start": "2026-01-01"}}],
        "devices": [{"id": "cam-01", "site": SITE, "kind": "camera", "host": "127.0.0.1"}],
    }, allow_unicode=True), encoding="utf-8")

    async def seed_store() -> None:
        async with await Store.open(url) as store:
            await store.sync_archive([ArchiveEntry("cam-01", SITE, "camera", "cctv",
                                                   "127.0.0.1")],
                                     datetime.fromtimestamp(T0, UTC))
            await TicketManager(store, dict).handle([fault("cam-01", FaultState.FIRING, T0)])

    if seed:
        asyncio.run(seed_store())
    return path


def test_signoff_link_command_prints_a_link_the_daemon_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "token").write_text("s3cret-token\n", encoding="utf-8")
    config = _config(tmp_path, tmp_path / "token")
    assert main(["tickets", "list", "-c", str(config)]) == 0
    number = next(w for w in capsys.readouterr().out.split() if w.startswith("T-"))
    assert main(["tickets", "signoff-link", "-c", str(config), number, "--hours", "2",
                 "--base", "https://elv.example.com/"]) == 0
    out, err = capsys.readouterr()
    url = urlsplit(out.strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "elv.example.com",
                                                  f"/tickets/{number}")
    link = parse_qs(url.query)["link"][0]
    assert links.valid("s3cret-token", number, link)
    assert not links.valid("s3cret-token", number, link, now=time.time() + 2 * 3600 + 1)
    assert "s3cret-token" not in out + err
    assert "once it is resolved" in err          # the ticket is still open
    assert main(["tickets", "signoff-link", "-c", str(config), "T-1999-000001"]) == 1


def test_signoff_link_command_needs_the_token_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, None)
    assert main(["tickets", "list", "-c", str(config)]) == 0
    number = next(w for w in capsys.readouterr().out.split() if w.startswith("T-"))
    assert main(["tickets", "signoff-link", "-c", str(config), number]) == 1
    assert "token_file" in capsys.readouterr().err


class _Remote:
    """The transport seam of a mocked request: a client that is not on loopback."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("203.0.113.7", 40000) if name == "peername" else default


async def test_a_sign_off_link_opens_its_ticket_page_and_form_from_afar_and_nothing_else(
        tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token", encoding="utf-8")
    web_app = build_web_app(App(load_config(_config(tmp_path, tmp_path / "token",
                                                              seed=False))))
    link = links.sign("s3cret-token", "T-2026-000001")

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="through")

    async def status(method: str, path: str) -> int:
        request = make_mocked_request(method, path, app=web_app, transport=_Remote())
        return (await access(request, handler)).status

    assert await status("GET", f"/tickets/T-2026-000001?link={link}") == 200
    assert await status("POST", f"/tickets/T-2026-000001/signoff?link={link}") == 200
    assert await status("GET", "/tickets/T-2026-000001") == 401
    assert await status("GET", f"/tickets/T-2026-000002?link={link}") == 401
    assert await status("POST", f"/tickets/T-2026-000002/signoff?link={link}") == 401
    assert await status("GET", f"/devices/cam-01?link={link}") == 401
    assert await status("GET", f"/api/v1/tickets/T-2026-000001?link={link}") == 401
    assert await status("POST", f"/api/v1/tickets/T-2026-000001/verify?link={link}") == 401
    assert await status("POST", f"/tickets/T-2026-000001?link={link}") == 401
