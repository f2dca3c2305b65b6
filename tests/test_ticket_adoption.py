"""A camera that already has its own ticket when its switch fails: its ticket is resolved
onto the switch's ("attached to …"), and reopened if it is still down after the switch
recovers — the rule engine and the ticket manager together, on real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from elvwatch.rules.faults import FaultState, FaultTransition, fingerprint
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store
from tests.rulekit import engine
from tests.test_rules_topology import down, site, up
from tests.ticket_fixtures import SITE, T0, Clock, fault

FIRING = FaultState.FIRING


@pytest.fixture
async def manager(store_url: str) -> AsyncIterator[TicketManager]:
    async with await Store.open(store_url) as store:
        yield TicketManager(store, dict, Clock(T0), verify_after_polls=2)


async def by_device(manager: TicketManager) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in await manager.list_tickets(kind="fault"):
        assert t.device is not None
        out.setdefault(t.device, []).append(t.state)
    return out


async def notes(manager: TicketManager, device: str) -> list[tuple[str, str]]:
    (ticket,) = await manager.list_tickets(device=device)
    return [(e.kind, e.note) for e in (await manager.get(ticket.number)).events]


async def test_ticketed_cameras_are_attached_to_their_switch_ticket_when_it_fails(
        manager: TicketManager) -> None:
    eng, _ = engine(site(2))
    seen: list[FaultTransition] = []
    down(eng, ["cam-00", "cam-01"], seen)
    await manager.handle(seen)
    assert await by_device(manager) == {"cam-00": ["open"], "cam-01": ["open"]}
    cam1 = (await manager.list_tickets(device="cam-01"))[0].number
    await manager.acknowledge(cam1, "李四")  # someone was already on it

    seen.clear()
    down(eng, ["poe-1"], seen)
    events = await manager.handle(seen)
    (switch,) = await manager.list_tickets(device="poe-1")
    assert switch.state == "open" and switch.affected == ("cam-00", "cam-01")
    resolved = [(e.device, e.note) for e in events if e.kind.value == "resolved"]
    assert sorted(resolved) == [("cam-00", f"attached to {switch.number}"),
                                ("cam-01", f"attached to {switch.number}")]
    assert await by_device(manager) == {"poe-1": ["open"], "cam-00": ["resolved"],
                                        "cam-01": ["resolved"]}
    # Still failing: their resolved tickets are not verified by healthy polls of others,
    # and the same transitions handed over again (a restart replay) change nothing.
    assert await manager.handle(seen) == []

    # The switch comes back, cam-00 with it; cam-01 stays down: its ticket reopens
    # (the same fault, not a recurrence) and cam-00's stays resolved.
    seen.clear()
    up(eng, ["poe-1", "cam-00"], seen)
    await manager.handle(seen)
    states = await by_device(manager)
    assert states["poe-1"] == ["resolved"] and states["cam-00"] == ["resolved"]
    assert states["cam-01"] == ["open"]
    (cam01,) = await manager.list_tickets(device="cam-01")
    assert cam01.recurrences == 0
    assert (await notes(manager, "cam-01"))[-1] == (
        "reopened", "still failing after the parent fault cleared")

    # cam-00 healthy for two polls: its ticket is verified like any other (closing is
    # the site representative's).
    await manager.devices_healthy(["cam-00"], 2)
    assert (await by_device(manager))["cam-00"] == ["verified"]


async def test_adoption_of_a_fault_without_its_own_ticket_opens_nothing_new(
        manager: TicketManager) -> None:
    parent = fingerprint(SITE, "sw-01", "device_unreachable")
    await manager.handle([fault("sw-01", FIRING, T0, system="network")])
    events = await manager.handle([fault("cam-01", FIRING, T0 + 1, previous=FIRING,
                                         root_cause=parent)])
    assert events == []
    (ticket,) = await manager.list_tickets()
    assert ticket.device == "sw-01" and ticket.affected == ("cam-01",)
