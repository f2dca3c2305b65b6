"""Reading devices from the running daemon over HTTP: filters, pages, ETags, and a view
that follows state changes and reloads — lab devices on loopback, a real client."""

from __future__ import annotations

import asyncio
import re
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
from elvwatch.rules.state import DeviceState
from elvwatch.web import api, server
from elvwatch.web.device_api import cursor
from elvwatch.web.server import HttpListener
from tests.helpers import until
from tests.test_daemon import PORT, first_address, free_port

SITES = ("east", "north", "west")
COUNT = 12


@dataclass
class Reads:
    app: App
    fleet: LabFleet
    base: str
    http: aiohttp.ClientSession
    config: Path

    def site_of(self, device_id: str) -> str:
        return self.app.config.devices[device_id].config.site

    def state(self, device_id: str) -> DeviceState:
        return self.app.tracker.devices[device_id].state

    async def get(self, path: str, **headers: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, headers=headers) as resp:
            text = await resp.text()
            body = await resp.json(content_type=None) if text and \
                resp.content_type == "application/json" else text
            return resp.status, body, resp

    async def ids(self, path: str) -> list[str]:
        status, body, _ = await self.get(path)
        assert status == 200, body
        return [d["id"] for d in body["devices"]]

    def write(self, devices: list[dict[str, Any]]) -> None:
        data = {"http": {"listen": self.base.removeprefix("http://")}, "interval": 0.2,
                "timeout": 0.2, "scheduler": {"down_after": 1, "jitter": 0.0},
                "sites": [{"id": s, "name": s.title()} for s in SITES],
                "devices": devices}
        self.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _devices(fleet: LabFleet, count: int) -> list[dict[str, Any]]:
    """``count`` lab devices over the sites, and one checked once an hour (whose detail
    stays the same between two reads)."""
    entries = fleet.config_devices("east", "camera", [tcp_check(PORT)])[:count]
    for number, entry in enumerate(entries):
        entry["site"] = SITES[number % len(SITES)]
    still = {"id": "still-1", "site": "west", "kind": "camera", "host": fleet.devices[0].host,
             "checks": [{**tcp_check(PORT), "interval": 3600}]}
    return [*entries, still]


@pytest_asyncio.fixture
async def reads(tmp_path: Path) -> AsyncIterator[Reads]:
    port = free_port()
    async with LabFleet(COUNT, first_address(), [PORT]) as fleet, \
            aiohttp.ClientSession() as http:
        env = Reads(None, fleet, f"http://127.0.0.1:{port}", http,  # type: ignore[arg-type]
                    tmp_path / "c.yaml")
        env.write(_devices(fleet, COUNT))
        env.app = App(load_config(env.config), HttpListener())
        await env.app.start()
        try:
            await until(lambda: all(s.state is DeviceState.UP
                                    for s in env.app.tracker.devices.values()),
                        what="every device up")
            yield env
        finally:
            await env.app.stop()


async def _down(env: Reads, device_id: str) -> None:
    await env.fleet.set_fault(device_id, Fault.DOWN)
    await until(lambda: env.state(device_id) is DeviceState.DOWN, what=f"{device_id} down")


async def _up(env: Reads, device_id: str) -> None:
    await env.fleet.set_fault(device_id, Fault.NONE)
    await until(lambda: env.state(device_id) is DeviceState.UP, what=f"{device_id} up")


async def test_the_list_filters_by_site_and_state_in_id_order(reads: Reads) -> None:
    every = sorted(reads.app.config.devices)
    assert await reads.ids("/api/v1/devices") == every
    for site in SITES:
        assert await reads.ids(f"/api/v1/devices?site={site}") == [
            i for i in every if reads.site_of(i) == site]
    assert await reads.ids("/api/v1/devices?site=nowhere") == []
    victim = every[4]
    await _down(reads, victim)
    # Read at once: the view follows the state the checks just confirmed.
    assert await reads.ids("/api/v1/devices?state=down") == [victim]
    site = reads.site_of(victim)
    assert await reads.ids(f"/api/v1/devices?site={site}&state=down") == [victim]
    other = next(s for s in SITES if s != site)
    assert await reads.ids(f"/api/v1/devices?site={other}&state=down") == []
    assert victim not in await reads.ids("/api/v1/devices?state=up")
    # Each entry is the API's device summary, nothing more and nothing less.
    _, body, _ = await reads.get(f"/api/v1/devices?site={site}&state=down")
    assert body["next_cursor"] is None
    assert set(body["devices"][0]) == set(api.DeviceSummary.model_fields)
    assert body["devices"][0]["state"] == "down" and f"port {PORT}" in body["devices"][0][
        "cause"]
    await _up(reads, victim)
    assert await reads.ids("/api/v1/devices?state=down") == []


async def _walk(env: Reads, query: str, limit: int,
                between: list[str] | None = None) -> list[str]:
    """Every page of ``query`` at ``limit`` a page; a device of ``between`` goes down
    (or back up) after each page."""
    seen: list[str] = []
    path = f"/api/v1/devices?{query}&limit={limit}"
    for _ in range(COUNT + 3):
        status, body, _ = await env.get(path)
        assert status == 200, body
        assert len(body["devices"]) <= limit
        seen += [d["id"] for d in body["devices"]]
        if body["next_cursor"] is None:
            return seen
        if between:
            device = between.pop(0)
            if env.state(device) is DeviceState.UP:
                await _down(env, device)
            else:
                await _up(env, device)
        path = f"/api/v1/devices?{query}&limit={limit}&cursor={body['next_cursor']}"
    raise AssertionError(f"no last page after {COUNT + 3} pages: {seen}")


async def test_pages_walk_every_device_exactly_once_while_states_change(
        reads: Reads) -> None:
    every = sorted(reads.app.config.devices)
    assert await _walk(reads, "", 5) == every
    assert await _walk(reads, "", COUNT) == every
    # Devices before and after the cursor change state between pages.
    assert await _walk(reads, "", 3, between=[every[0], every[10], every[1]]) == every
    east = [i for i in every if reads.site_of(i) == "east"]
    assert await _walk(reads, "site=east", 1, between=[east[2], every[1]]) == east
    down = [i for i in every if reads.state(i) is DeviceState.DOWN]
    assert down and await _walk(reads, "state=down", 1) == down


async def test_a_bad_limit_cursor_or_state_is_a_400_naming_it(reads: Reads) -> None:
    first = sorted(reads.app.config.devices)[0]
    foreign = cursor("east", None, first)
    cases = [
        ("limit=0", "limit: '0' is not a whole number from 1 to 5000"),
        ("limit=5001", "limit: '5001' is not a whole number from 1 to 5000"),
        ("limit=-3", "limit: '-3' is not a whole number from 1 to 5000"),
        ("limit=ten", "limit: 'ten' is not a whole number from 1 to 5000"),
        ("limit=", "limit: '' is not a whole number from 1 to 5000"),
        ("cursor=not-a-cursor", "cursor: not a cursor this list gave out (pass "
                                "next_cursor unchanged)"),
        ("cursor=WzEsbnVsbF0", "cursor: not a cursor this list gave out (pass "
                               "next_cursor unchanged)"),  # [1,null]
        (f"site=west&cursor={foreign}", "cursor: it was given for another site or state; "
                                        "ask with the same site and state, or start again "
                                        "without a cursor"),
        (f"site=east&state=up&cursor={foreign}", "cursor: it was given for another site "
                                                 "or state; ask with the same site and "
                                                 "state, or start again without a cursor"),
        ("state=sideways", "state: 'sideways' is not one of up, degraded, down, unknown"),
    ]
    for query, message in cases:
        status, body, _ = await reads.get(f"/api/v1/devices?{query}")
        assert (status, body) == (400, {"error": message}), query
    status, body, _ = await reads.get(f"/api/v1/devices?site=east&cursor={foreign}")
    assert status == 200 and first not in [d["id"] for d in body["devices"]]


async def test_etags_answer_304_until_a_state_changes(reads: Reads) -> None:
    victim = sorted(reads.app.config.devices)[7]
    site = reads.site_of(victim)
    paths = ["/api/v1/devices", f"/api/v1/devices?site={site}",
             f"/api/v1/devices?site={site}&limit=2"]
    tags = {}
    for path in paths:
        status, _, resp = await reads.get(path)
        assert status == 200 and resp.headers["ETag"], path
        tags[path] = resp.headers["ETag"]
        status, body, resp = await reads.get(path, **{"If-None-Match": tags[path]})
        assert (status, body) == (304, ""), path
        assert resp.headers["ETag"] == tags[path]
        status, _, _ = await reads.get(path, **{"If-None-Match": '"other", ' + tags[path]})
        assert status == 304, path
        status, _, _ = await reads.get(path, **{"If-None-Match": '"other"'})
        assert status == 200, path
    _, _, resp = await reads.get(f"/api/v1/devices/{victim}")
    detail_tag = resp.headers["ETag"]
    _, still, resp = await reads.get("/api/v1/devices/still-1")
    assert still["checks"][0]["time"] is not None
    status, body, _ = await reads.get("/api/v1/devices/still-1",
                                      **{"If-None-Match": resp.headers["ETag"]})
    assert (status, body) == (304, "")

    await _down(reads, victim)
    for path in paths:
        status, body, resp = await reads.get(path, **{"If-None-Match": tags[path]})
        assert status == 200 and resp.headers["ETag"] != tags[path], path
        if "limit" not in path:
            assert {d["id"]: d["state"] for d in body["devices"]}[victim] == "down"
    # Another site's list did not change.
    other = next(s for s in SITES if s != site)
    _, _, resp = await reads.get(f"/api/v1/devices?site={other}")
    status, _, _ = await reads.get(f"/api/v1/devices?site={other}",
                                   **{"If-None-Match": resp.headers["ETag"]})
    assert status == 304
    status, body, resp = await reads.get(f"/api/v1/devices/{victim}",
                                         **{"If-None-Match": detail_tag})
    assert status == 200 and body["state"] == "down" and resp.headers["ETag"] != detail_tag


def _attention(html: str) -> str:
    match = re.search(r'<section id="attention".*?</section>', html, re.S)
    assert match, html[:500]
    return match.group(0)


def _site_total(html: str, site: str) -> str:
    match = re.search(rf'href="/sites/{site}">.*?</li>', html, re.S)
    assert match, html[:500]
    return match.group(0)


async def test_the_overview_follows_state_changes_and_reloads(reads: Reads) -> None:
    every = sorted(reads.app.config.devices)
    victim = every[5]
    status, html, _ = await reads.get("/?lang=en")
    assert status == 200 and victim not in _attention(html)
    await _down(reads, victim)
    _, html, _ = await reads.get("/?lang=en")
    assert victim in _attention(html)
    site = reads.site_of(victim)
    assert re.search(r'class="count s-down">[^<]*<b>1</b>', _site_total(html, site))
    _, html, _ = await reads.get(f"/sites/{site}?lang=en")
    assert victim in html

    # A reload that drops devices (the victim among them) drops them from every read.
    kept = [d for d in _devices(reads.fleet, COUNT) if d["id"] not in every[4:8]]
    reads.write(kept)
    assert await reads.app.reload()
    assert await reads.ids("/api/v1/devices") == sorted(d["id"] for d in kept)
    assert await reads.ids(f"/api/v1/devices?site={site}") == sorted(
        d["id"] for d in kept if d["site"] == site)
    assert await reads.ids("/api/v1/devices?state=down") == []
    status, _, _ = await reads.get(f"/api/v1/devices/{victim}")
    assert status == 404
    _, html, _ = await reads.get("/?lang=en")
    assert victim not in _attention(html)
    assert "s-down" not in _site_total(html, site)
    total = sum(1 for d in kept if d["site"] == site)
    assert f"Devices {total} ·" in _site_total(html, site)
    # And one that adds them back lists them again, in their places.
    reads.write(_devices(reads.fleet, COUNT))
    assert await reads.app.reload()
    assert await reads.ids("/api/v1/devices") == every


async def test_scrapes_that_arrive_while_one_renders_share_its_answer(
        reads: Reads, monkeypatch: pytest.MonkeyPatch) -> None:
    renders = 0
    real = server.metrics_body

    async def slow_render(*args: Any, **kwargs: Any) -> bytes:
        nonlocal renders
        renders += 1
        await asyncio.sleep(0.5)  # long enough for the other scrapes to arrive meanwhile
        return await real(*args, **kwargs)

    monkeypatch.setattr(server, "metrics_body", slow_render)
    answers = await asyncio.gather(*(reads.get("/metrics") for _ in range(4)))
    assert renders == 1
    assert {status for status, _, _ in answers} == {200}
    bodies = {body.split("# HELP process_")[0] for _, body, _ in answers}
    assert len(bodies) == 1 and 'elvwatch_device_up{site="east"' in bodies.pop()
    await reads.get("/metrics")
    assert renders == 2  # a later scrape renders afresh


def _tickets_section(html: str) -> str:
    match = re.search(r'<section id="tickets".*?</section>', html, re.S)
    assert match, html[:500]
    return match.group(0)


async def test_the_overview_lists_a_ticket_as_soon_as_it_opens(reads: Reads) -> None:
    status, html, _ = await reads.get("/?lang=en")
    assert status == 200
    before = _tickets_section(html)
    victim = sorted(reads.app.config.devices)[2]
    await _down(reads, victim)
    assert reads.app.tickets is not None
    opened = await until(lambda: _ticket_of(reads, victim), what="a ticket", timeout=20)
    assert opened not in before
    # Asked right after the ticket stage committed it: no waiting for a refresh.
    _, html, _ = await reads.get("/?lang=en")
    assert opened in _tickets_section(html)


async def _ticket_of(env: Reads, device: str) -> str | None:
    assert env.app.tickets is not None
    live = await env.app.tickets.list_tickets(state="live", device=device)
    return live[0].number if live else None
