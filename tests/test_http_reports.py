"""Reports served by the running daemon: /api/v1/sites/{site}/reports/{kind} and the site
page's links to them, fetched over HTTP from a daemon on loopback whose store holds the
constructed history of tests/test_reports.py."""

from __future__ import annotations

import html
import importlib.util
import json
import re
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.exporters.reports import tables
from elvwatch.tickets.store import Store
from elvwatch.web.api import openapi_document
from elvwatch.web.reports import contract_period
from elvwatch.web.server import HttpListener, access
from tests.test_daemon import free_port
from tests.test_page_links import _Remote
from tests.test_reports import DAY, SITE, seed_history
from tests.ticket_fixtures import HOUR

PATH = f"/api/v1/sites/{SITE}/reports"
HAS_PDF = importlib.util.find_spec("weasyprint") is not None


@pytest_asyncio.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[App, str]]:
    db = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    async with await Store.open(db) as store:
        await seed_history(store)
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": db}, "http": {"listen": f"127.0.0.1:{port}"},
        "sites": [{"id": SITE, "name": "湖畔花园", "contract": {"start": "2026-01-01"}}],
        "devices": [{"id": "cam-a", "site": SITE, "kind": "camera", "host": "127.0.0.1",
                     "checks": [{"type": "tcp", "port": free_port(), "interval": 60}]}],
    }, allow_unicode=True), encoding="utf-8")
    app = App(load_config(path), HttpListener())
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await app.stop()


async def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, dict(resp.headers), await resp.read()


RANGE = "from=2026-01-15&to=2026-03-10"


async def test_a_report_is_served_as_json_csv_and_html_with_the_stored_figures(
        daemon: tuple[App, str]) -> None:
    _, base = daemon
    status, headers, body = await fetch(f"{base}{PATH}/availability?{RANGE}")
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["report"] == "availability" and doc["period"]["label"] == "2026-01-15..2026-03-10"
    rows = {(m["label"][:7], d["device"]): d for m in doc["months"] for d in m["devices"]}
    jan, feb = rows[("2026-01", "cam-a")], rows[("2026-02", "cam-a")]
    assert (jan["down_seconds"], jan["up_seconds"], jan["faults"]) == (
        3 * HOUR, 17 * DAY - 3 * HOUR, 2)
    assert (feb["down_seconds"], feb["degraded_seconds"]) == (1.5 * HOUR, HOUR)

    status, headers, body = await fetch(f"{base}{PATH}/availability?{RANGE}&format=csv")
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == (
        f'attachment; filename="availability-{SITE}-2026-01-15-2026-03-10.csv"')
    csv_rows = tables.read_csv(body)
    assert [(r["期间"], r["设备编号"], float(r["故障时长(秒)"])) for r in csv_rows
            if r["设备编号"] == "cam-a"] == [("2026-01-15..2026-01-31", "cam-a", 3 * HOUR),
                                        ("2026-02", "cam-a", 1.5 * HOUR),
                                        ("2026-03-01..2026-03-10", "cam-a", 0.0)]

    status, headers, body = await fetch(f"{base}{PATH}/sla?from=2026-01-01&to=2026-03-31"
                                        "&format=html&lang=en")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src" not in headers["Content-Security-Policy"]   # no script may run
    page = body.decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "SLA report" in page and "湖畔花园" in page


async def test_without_dates_a_report_is_this_month_so_far(daemon: tuple[App, str]) -> None:
    _, base = daemon
    status, _, body = await fetch(f"{base}{PATH}/service")
    assert status == 200
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert json.loads(body)["period"]["label"] == (
        f"{today.replace(day=1).isoformat()}..{today.isoformat()}")


async def test_bad_report_requests_get_a_clear_error(daemon: tuple[App, str]) -> None:
    _, base = daemon
    for query, status, words in (
            (f"/api/v1/sites/nowhere/reports/sla?{RANGE}", 404, "no site 'nowhere'"),
            (f"{PATH}/uptime?{RANGE}", 404, "no report 'uptime'"),
            (f"{PATH}/sla?from=2026-02-30", 422, "YYYY-MM-DD"),
            (f"{PATH}/sla?from=2026-03-10&to=2026-03-01", 422, "before"),
            (f"{PATH}/sla?from=2000-01-01&to=2026-03-01", 422, "at most"),
            (f"{PATH}/sla?format=xlsx", 422, "format"),
            (f"{PATH}/sla?lang=fr", 422, "lang")):
        got, _, body = await fetch(base + query)
        assert got == status, query
        assert words in json.loads(body)["error"], query


@pytest.mark.skipif(not HAS_PDF, reason="weasyprint not installed (pdf extra)")
async def test_a_report_is_served_as_pdf(daemon: tuple[App, str]) -> None:
    _, base = daemon
    status, headers, body = await fetch(f"{base}{PATH}/availability?{RANGE}&format=pdf")
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert body.startswith(b"%PDF-") and headers["Content-Disposition"].startswith("inline;")


async def test_the_site_page_links_to_its_reports_for_this_month_and_the_contract(
        daemon: tuple[App, str]) -> None:
    _, base = daemon
    status, _, body = await fetch(f"{base}/sites/{SITE}")
    assert status == 200
    page = body.decode("utf-8")
    section = page[page.index('<section id="reports">'):]
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+/reports/[^"]+)"', section)]
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    first, last = contract_period(date(2026, 1, 1), 12)
    formats = ["html", "csv", "pdf"] if HAS_PDF else ["html", "csv"]
    assert hrefs == [
        f"{PATH}/{kind}?from={a.isoformat()}&to={b.isoformat()}&format={fmt}&lang=zh-CN"
        for a, b in ((today.replace(day=1), today), (first, last))
        for kind in ("availability", "sla", "service") for fmt in formats]
    assert "设备运行情况记录" in section and "合同期" in section
    for href in hrefs:
        if href.endswith("format=pdf&lang=zh-CN") and "availability" not in href:
            continue                          # one PDF is proof enough; each takes seconds
        status, _, _ = await fetch(base + href)
        assert status == 200, href


async def test_reports_need_the_token_from_afar_and_are_in_the_openapi_document(
        tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"sites": [{"id": SITE, "name": "x"}], "devices": []}),
                    encoding="utf-8")
    from elvwatch.web.server import build_web_app

    web_app = build_web_app(App(load_config(path)))

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="through")

    request = make_mocked_request("GET", f"{PATH}/sla", app=web_app, transport=_Remote())
    assert (await access(request, handler)).status == 401
    operation = openapi_document()["paths"]["/api/v1/sites/{site}/reports/{kind}"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"site", "kind", "from", "to",
                                                            "format", "lang"}
    assert set(operation["responses"]["200"]["content"]) == {
        "text/html", "text/csv", "application/pdf", "application/json"}
