"""Two site pollers for one community, a centre on PostgreSQL: one poller's results
count (the site's lease); a killed poller's site is taken over within two check
intervals, and the fault both pollers see is one ticket."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from elvwatch.lab.devices import Fault, LabFleet
from elvwatch.tickets.store import Store
from tests.helpers import until
from tests.multisite_peers import PORT, Daemon, Pki, centre_config, free_port, poller_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
INTERVAL = 1.0
TOKENS = {"gate-a": "gate-a-token-41c2", "gate-b": "gate-b-token-93d0"}


@pytest.fixture
async def fleet() -> AsyncIterator[LabFleet]:
    first = f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.1"
    async with LabFleet(2, first, [PORT]) as lab:
        yield lab


async def holder(centre: Daemon) -> str | None:
    held = [labels["poller"] for labels, value in
            await centre.samples("elvwatch_centre_site_lease") if labels.get("site") == "lab"
            and value == 1]
    return held[0] if len(held) == 1 else None


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_a_killed_poller_s_site_is_taken_over_within_two_intervals_with_one_ticket(
        tmp_path: Path, fleet: LabFleet, store_url: str) -> None:
    pki = Pki(tmp_path)
    port = free_port()
    centre = Daemon(centre_config(tmp_path / "centre", fleet, pki, port, TOKENS,
                                  interval=INTERVAL, storage=store_url),
                    f"https://127.0.0.1:{port}", pki.client_context())
    pollers = {}
    for name, token in TOKENS.items():
        config, own = poller_config(tmp_path / name, fleet, pki, port, name, token,
                                    interval=INTERVAL)
        pollers[name] = Daemon(config, f"http://127.0.0.1:{own}")
    cam, other = list(fleet)
    await centre.start()
    try:
        for poller in pollers.values():
            await poller.start()
        active = await until(lambda: holder(centre), "a poller to hold the site", 30)
        standby = next(name for name in pollers if name != active)
        await until(lambda: both_up(centre, fleet), "the devices up", 30)
        # Both pollers see the fault; one ticket.
        await cam.set_fault(Fault.DOWN)
        await until(lambda: centre.tickets(cam.id), "the fault's ticket", 30)
        await until(lambda: standby_counted(centre, standby), "the standby's results set aside")

        killed = time.monotonic()
        await pollers[active].stop(signal.SIGKILL)
        await until(lambda: is_holder(centre, standby), "the takeover", 30, every=0.05)
        takeover = time.monotonic() - killed
        assert takeover <= 2 * INTERVAL, f"takeover took {takeover:.2f}s"
        assert f"site lab: poller {standby} holds the lease (was {active})" in centre.text()

        await cam.set_fault(Fault.NONE)
        await until(lambda: both_up(centre, fleet), "the devices up again", 30)
        # The killed poller comes back and sends what it buffered: set aside, not applied.
        await pollers[active].start()
        await until(lambda: standby_counted(centre, active), "the returning poller set aside", 30)
        assert await holder(centre) == standby
        assert len(await centre.tickets(cam.id)) == 1
        assert await centre.tickets(other.id) == []
        assert (await centre.states())[cam.id] == "up"
    finally:
        for poller in pollers.values():
            await poller.stop()
        await centre.stop()
    # No check result applied twice: each device's history is one clean run of states.
    async with await Store.open(store_url) as store:
        assert [t.state.value for t in await store.transitions(cam.id)] == ["up", "down", "up"]
        assert [t.state.value for t in await store.transitions(other.id)] == ["up"]


async def both_up(centre: Daemon, fleet: LabFleet) -> bool:
    states = await centre.states()
    return all(states.get(d.id) == "up" for d in fleet)


async def is_holder(centre: Daemon, poller: str) -> bool:
    return await holder(centre) == poller


async def standby_counted(centre: Daemon, poller: str) -> bool:
    return (await centre.metric("elvwatch_centre_observations_standby_total",
                                poller=poller) or 0) > 0
