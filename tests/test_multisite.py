"""Many communities, one centre: a centre and a site poller as separate processes on
loopback (HTTPS, the poller's own token), lab devices behind the poller."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from elvwatch.lab.devices import Fault, LabFleet
from elvwatch.rules.state import StateTransition
from elvwatch.tickets.store import Store
from tests.helpers import until
from tests.multisite_peers import (
    INTERVAL,
    PORT,
    Daemon,
    Pki,
    centre_config,
    free_port,
    poller_config,
)

pytestmark = pytest.mark.slow
TOKEN = "gate-box-token-7f3a"


def first_address() -> str:
    return f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.1"


@pytest.fixture
async def fleet() -> AsyncIterator[LabFleet]:
    async with LabFleet(2, first_address(), [PORT]) as lab:
        yield lab


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def start_pair(tmp_path: Path, fleet: LabFleet, pki: Pki,
                     **buffer: object) -> tuple[Daemon, Daemon]:
    port = free_port()
    centre = Daemon(centre_config(tmp_path / "centre", fleet, pki, port, {"gate": TOKEN}),
                    f"https://127.0.0.1:{port}", pki.client_context())
    config, poller_port = poller_config(tmp_path / "poller", fleet, pki, port, "gate", TOKEN,
                                        **buffer)
    poller = Daemon(config, f"http://127.0.0.1:{poller_port}")
    await centre.start()
    await poller.start()
    return centre, poller


async def all_up(daemon: Daemon, fleet: LabFleet) -> bool:
    states = await daemon.states()
    return all(states.get(d.id) == "up" for d in fleet)


async def test_a_fault_at_the_poller_opens_exactly_one_ticket_at_the_centre(
        tmp_path: Path, fleet: LabFleet, pki: Pki) -> None:
    centre, poller = await start_pair(tmp_path, fleet, pki)
    try:
        await until(lambda: all_up(centre, fleet), "the centre to see the devices up", 30)
        cam, other = list(fleet)
        await cam.set_fault(Fault.DOWN)
        await until(lambda: centre.tickets(cam.id), "a ticket at the centre", 30)
        await asyncio.sleep(10 * INTERVAL)  # more failed polls reach the centre meanwhile
        tickets = await centre.tickets(cam.id)
        assert len(tickets) == 1, tickets
        assert tickets[0]["rule"] == "device_unreachable"
        assert (await centre.states())[cam.id] == "down"
        assert await centre.tickets(other.id) == []
        # The poller rules on nothing: its own store has no ticket.
        assert await poller.tickets(cam.id) == []
        assert "not this poller's" not in centre.text()
    finally:
        await poller.stop()
        await centre.stop()


async def transitions(url: str, device: str) -> list[StateTransition]:
    async with await Store.open(url) as store:
        return await store.transitions(device)


async def test_a_centre_outage_is_buffered_and_caught_up_in_order_with_original_times(
        tmp_path: Path, fleet: LabFleet, pki: Pki) -> None:
    centre, poller = await start_pair(tmp_path, fleet, pki)
    cam = next(iter(fleet))
    try:
        await until(lambda: all_up(centre, fleet), "the centre to see the devices up", 30)
        assert await centre.stop() == 0
        await cam.set_fault(Fault.DOWN)
        await until(lambda: poller_state(poller, cam.id, "down"), "the poller to see it down", 30)
        await cam.set_fault(Fault.NONE)
        await until(lambda: poller_state(poller, cam.id, "up"), "the poller to see it up", 30)
        waiting = await poller.metric("elvwatch_poller_buffer_observations")
        assert waiting is not None and waiting > 0
        assert (await poller.metric("elvwatch_poller_forward_failures_total") or 0) > 0
        assert "cannot forward, buffering" in poller.text()

        await centre.start()
        await until(lambda: buffer_empty(poller), "the buffer to drain", 60)
        # The fault of the outage reached the rule engine: ticketed, and resolved as
        # recovered (the up state came after it).
        await until(lambda: centre.tickets(cam.id), "the outage's ticket", 30)
        assert len(await centre.tickets(cam.id)) == 1
        assert await poller.metric("elvwatch_poller_buffer_dropped_total") == 0
    finally:
        await poller.stop()
        await centre.stop()
    centre_store = f"sqlite+aiosqlite:///{tmp_path / 'centre' / 'elvwatch.db'}"
    poller_store = f"sqlite+aiosqlite:///{tmp_path / 'poller' / 'elvwatch.db'}"
    for device in fleet:
        at_centre = await transitions(centre_store, device.id)
        at_site = await transitions(poller_store, device.id)
        # Every transition the site saw, in order, at the time it happened there.
        assert at_centre == at_site
    states = [(t.state.value, t.at) for t in await transitions(centre_store, cam.id)]
    assert [s for s, _ in states] == ["up", "down", "up"]
    assert states == sorted(states, key=lambda s: s[1])


async def poller_state(poller: Daemon, device: str, state: str) -> bool:
    return (await poller.states()).get(device) == state


async def buffer_empty(poller: Daemon) -> bool:
    return await poller.metric("elvwatch_poller_buffer_observations") == 0


def batch(*items: tuple[int, str, str, float], poller: str = "gate") -> dict[str, object]:
    return {"poller": poller, "observations": [
        {"seq": seq, "device": device, "check": "tcp_18554", "status": status, "time": at}
        for seq, device, status, at in items]}


async def test_a_batch_sent_again_is_not_applied_twice_even_after_a_restart(
        tmp_path: Path, fleet: LabFleet, pki: Pki) -> None:
    port = free_port()
    centre = Daemon(centre_config(tmp_path / "centre", fleet, pki, port, {"gate": TOKEN},
                                  down_after=3),
                    f"https://127.0.0.1:{port}", pki.client_context())
    cam = next(iter(fleet)).id
    t0 = 1_780_000_000.0
    await centre.start()
    try:
        # The centre probes nothing of a poller's site: its devices wait for the poller.
        await asyncio.sleep(5 * INTERVAL)
        assert (await centre.states())[cam] == "unknown"
        ok = batch((1, cam, "ok", t0))
        code, answer = await centre.request("POST", "/api/v1/ingest", ok, TOKEN)
        assert (code, answer) == (200, {
            "applied": 1, "duplicates": 0, "last_seq": 1, "skipped": [], "standby": 0,
            "active": ["lab"], "renew_seconds": pytest.approx(INTERVAL / 3)})
        # Two failed polls, sent twice (the first answer lost): three would be down.
        twice = batch((2, cam, "down", t0 + 1), (3, cam, "down", t0 + 2))
        assert (await centre.request("POST", "/api/v1/ingest", twice, TOKEN))[1][
            "applied"] == 2
        code, answer = await centre.request("POST", "/api/v1/ingest", twice, TOKEN)
        assert (code, answer["applied"], answer["duplicates"]) == (200, 0, 2)
        assert (await centre.states())[cam] == "up"
        assert await centre.metric("elvwatch_centre_observations_duplicate_total",
                                   poller="gate") == 2

        await centre.stop()
        await centre.start()
        code, answer = await centre.request("POST", "/api/v1/ingest", twice, TOKEN)
        assert (code, answer["applied"], answer["duplicates"]) == (200, 0, 2)
        third = batch((4, cam, "down", t0 + 3))
        assert (await centre.request("POST", "/api/v1/ingest", third, TOKEN))[1][
            "applied"] == 1
        _, body = await centre.get(f"/api/v1/devices/{cam}")
        assert body["state"] == "down"
    finally:
        await centre.stop()


async def test_the_ingest_takes_only_a_poller_s_own_token_sites_and_batches(
        tmp_path: Path, fleet: LabFleet, pki: Pki) -> None:
    port = free_port()
    centre = Daemon(centre_config(tmp_path / "centre", fleet, pki, port,
                                  {"gate": TOKEN, "other": "other-token-1"}),
                    f"https://127.0.0.1:{port}", pki.client_context())
    cam = next(iter(fleet)).id
    await centre.start()
    try:
        ok = batch((1, cam, "ok", 1_780_000_000.0))
        assert (await centre.request("POST", "/api/v1/ingest", ok))[0] == 401
        assert (await centre.request("POST", "/api/v1/ingest", ok, "not-a-token"))[0] == 401
        code, answer = await centre.request("POST", "/api/v1/ingest", ok, "other-token-1")
        assert code == 403 and "not the one of the poller" in answer["error"]
        unknown = batch((1, "cam-nowhere", "ok", 1_780_000_000.0))
        code, answer = await centre.request("POST", "/api/v1/ingest", unknown, TOKEN)
        assert (code, answer["applied"]) == (200, 0)
        assert answer["skipped"] == ["cam-nowhere: not configured at the centre"]
        backwards = batch((5, cam, "ok", 1_780_000_000.0), (4, cam, "ok", 1_780_000_001.0))
        code, answer = await centre.request("POST", "/api/v1/ingest", backwards, TOKEN)
        assert code == 400 and "sequence numbers must increase" in answer["error"]
        assert TOKEN not in centre.text()
    finally:
        assert await centre.stop(signal.SIGTERM) == 0


async def test_a_silent_poller_makes_its_site_not_reporting_and_tickets_the_link(
        tmp_path: Path, fleet: LabFleet, pki: Pki) -> None:
    centre, poller = await start_pair(tmp_path, fleet, pki)
    try:
        await until(lambda: all_up(centre, fleet), "the centre to see the devices up", 30)
        assert await centre.metric("elvwatch_site_reporting", site="lab") == 1
        await poller.stop(signal.SIGKILL)  # the box loses power, or the WAN goes
        await until(lambda: link_tickets(centre), "a ticket for the site's link", 30)
        states = await centre.states()
        # Not known, not down: nobody can see the devices.
        assert {states[d.id] for d in fleet} == {"unknown"}
        _, body = await centre.get(f"/api/v1/devices/{next(iter(fleet)).id}")
        assert "site lab not reporting (was up)" in str(body)
        assert await centre.metric("elvwatch_site_reporting", site="lab") == 0
        assert await centre.metric("elvwatch_device_up", device=next(iter(fleet)).id) is None
        await asyncio.sleep(5 * INTERVAL)
        for device in fleet:
            assert await centre.tickets(device.id) == []
        assert len(await link_tickets(centre)) == 1
        assert "lab:link: not reporting: no observations from poller gate" in centre.text()

        await poller.start()
        await until(lambda: all_up(centre, fleet), "the devices up again", 30)
        assert await centre.metric("elvwatch_site_reporting", site="lab") == 1
        await until(lambda: link_resolved(centre), "the link's ticket resolved", 30)
    finally:
        await poller.stop()
        await centre.stop()


async def link_tickets(centre: Daemon) -> list[dict[str, object]]:
    return [t for t in await centre.tickets("lab:link") if t["rule"] == "site_not_reporting"]


async def link_resolved(centre: Daemon) -> bool:
    tickets = await link_tickets(centre)
    return len(tickets) == 1 and tickets[0]["state"] == "resolved"
