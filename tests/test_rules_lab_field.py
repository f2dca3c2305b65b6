"""Each built-in rule of the field devices fires and clears through the real daemon.

The daemon (``tests/rules_daemon.py``: the App as wired, its rule engine's transitions
recorded) polls lab peers over loopback: the Modbus gateway (``lab/modbus.py``: an alarm
panel and a UPS behind it) and snmpsim (``lab/snmp.py``: a PoE switch, an NVR, a UPS).
A fault is injected in the peer, the rule's exact fingerprint fires and its ticket
opens with the rule's severity; the fault is removed and the fault clears.  Each peer
starts once per module; each case runs its own daemon with short intervals.

The last test is port-level topology: a camera whose PoE port stops delivering power
is explained by that port's fault (one ticket, the switch's), while a camera on a
healthy port of the same switch gets its own ticket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import pytest_asyncio
import yaml

from elvwatch.config.loading import load_config
from elvwatch.lab.devices import Fault as DeviceFault
from elvwatch.lab.devices import LabFleet, tcp_check
from elvwatch.lab.modbus import Fault as ModbusFault
from elvwatch.lab.modbus import ModbusLab
from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes.base import Check, Credential, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_session import close_engine
from elvwatch.rules.faults import FaultState, FaultTransition, fingerprint
from tests.helpers import until
from tests.rules_daemon import RulesApp, open_faults
from tests.test_daemon import first_address, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

SITE = "lab"
COMMUNITY_ENV = {"lab-switch": "ELVWATCH_TEST_SWITCH_COMMUNITY",
                 "lab-nvr": "ELVWATCH_TEST_NVR_COMMUNITY",
                 "lab-ups": "ELVWATCH_TEST_UPS_COMMUNITY"}
WAIT = 15.0  # seconds; a case takes 1-3 s
Action = Callable[[], Awaitable[None]]


def write_config(path: Path, devices: list[dict[str, Any]], *, interval: float = 0.2,
                 down_after: int = 3, credentials: Mapping[str, Any] | None = None,
                 kinds: Mapping[str, Any] | None = None) -> Path:
    """A daemon config; storage defaults to SQLite next to it, tickets to defaults."""
    data = {"interval": interval, "timeout": interval,
            "scheduler": {"down_after": down_after, "jitter": 0.0},
            "sites": [{"id": SITE, "name": "实验小区", "contract": {"start": "2026-01-01"}}],
            "credentials": dict(credentials or {}), "devices": devices}
    if kinds:
        data["kinds"] = dict(kinds)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def ever_fired(transitions: list[FaultTransition]) -> set[str]:
    return {t.fingerprint for t in transitions if t.state is FaultState.FIRING}


def firing(transitions: list[FaultTransition]) -> list[tuple[str, str, str]]:
    """What fired, for assertion messages."""
    return [(t.device, t.rule, t.summary) for t in transitions if t.state is FaultState.FIRING]


def last_state(transitions: list[FaultTransition], fp: str) -> FaultState | None:
    states = [t.state for t in transitions if t.fingerprint == fp]
    return states[-1] if states else None


async def settled(app: RulesApp) -> tuple[int, float]:
    """Wait for every device up and no fault open (a first poll may time out while the
    daemon starts on a busy machine); then (transitions so far, now): the baseline."""
    await until(lambda: all(s.state == "up" for s in app.tracker.devices.values())
                and open_faults(app.transitions) == {},
                timeout=WAIT, what="every device up, no fault open")
    return len(app.transitions), time.time()


async def fault_tickets(app: RulesApp, since: float, device: str | None = None,
                        state: str | None = None) -> list[tuple[str, str]]:
    """(rule, severity) of the fault tickets opened from ``since`` on."""
    assert app.tickets is not None
    return sorted((str(t.rule), t.severity) for t in await app.tickets.list_tickets(
        kind="fault", device=device, state=state) if t.opened_at >= since)


async def wait_tickets(app: RulesApp, count: int, since: float,
                       timeout: float = WAIT) -> list[tuple[str, str]]:
    """The fault tickets once there are ``count`` of them (or what there is at the end)."""
    found = await fault_tickets(app, since)
    for _ in range(int(timeout * 10)):
        if len(found) >= count:
            break
        await asyncio.sleep(0.1)
        found = await fault_tickets(app, since)
    return found


class Case(NamedTuple):
    device: str
    fault: str
    item: int                 # Modbus unit, or the SNMP lab's port/disk number
    fires: dict[str, str]     # rule → severity: every rule that fires, and no other
    # Rules that fire too, explained by one of ``fires`` on the same device: no ticket.
    explained: tuple[str, ...] = ()


async def fire_and_clear(app: RulesApp, case: Case, inject: Action, remove: Action) -> None:
    """Start the daemon, inject, see exactly ``case.fires`` fire and ticket, remove,
    see them clear and their tickets resolve."""
    await app.start()
    try:
        seen, since = await settled(app)
        await inject()
        expected = {fingerprint(SITE, case.device, rule)
                    for rule in [*case.fires, *case.explained]}
        await until(lambda: expected <= ever_fired(app.transitions[seen:]), timeout=WAIT,
                    what=f"{sorted(case.fires)} firing on {case.device}")
        tickets = await wait_tickets(app, len(case.fires), since)
        assert tickets == sorted(case.fires.items()), firing(app.transitions[seen:])
        roots = {fingerprint(SITE, case.device, rule) for rule in case.fires}
        for rule in case.explained:
            fp = fingerprint(SITE, case.device, rule)
            assert {t.root_cause for t in app.transitions[seen:]
                    if t.fingerprint == fp and t.state is FaultState.FIRING} <= roots
        await remove()
        await until(lambda: all(last_state(app.transitions, fp) is FaultState.CLEARED
                                   for fp in expected),
                    timeout=WAIT, what=f"{sorted(case.fires)} clearing")
        assert open_faults(app.transitions) == {}
        # Nothing else fired meanwhile.
        assert ever_fired(app.transitions[seen:]) == expected, firing(app.transitions[seen:])
        # The fault cleared, so its ticket resolves itself.
        for _ in range(int(WAIT * 10)):
            if not await fault_tickets(app, since, state="open"):
                break
            await asyncio.sleep(0.1)
        assert await fault_tickets(app, since, state="open") == []
        assert await fault_tickets(app, since) == sorted(case.fires.items())
    finally:
        await app.stop()


# -- Modbus: the alarm panel (unit 1) and a UPS (unit 2) behind one lab gateway --------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def modbus_lab() -> AsyncIterator[ModbusLab]:
    async with ModbusLab("127.0.0.1", free_port()) as lab:
        yield lab


MODBUS_CASES = [
    Case("panel-1", "ac_fail", 1, {"alarm_ac_fail": "major"}),
    Case("panel-1", "battery_low", 1, {"alarm_battery_low": "general"}),
    Case("panel-1", "tamper", 1, {"alarm_tamper": "emergency"}),
    Case("panel-1", "comm_fault", 1, {"alarm_comm_fault": "major"}),
    Case("ups-mb", "ac_fail", 2, {"ups_on_battery": "major"}),
    Case("ups-mb", "battery_low", 2, {"ups_battery_low": "emergency"}),
    Case("panel-1", "siren_fault", 1, {"alarm_bell_fault": "major"}),
    Case("panel-1", "zone_fault", 1, {"alarm_zone_trouble": "major"}),
    Case("panel-1", "enclosure_open", 1, {"alarm_tamper": "emergency"}),
    Case("ups-mb", "battery_replace", 2, {"ups_battery_replace": "general"}),
    Case("ups-mb", "overload", 2, {"ups_overload": "major"}),
    Case("ups-mb", "on_bypass", 2, {"ups_on_bypass": "major"}),
    Case("ups-mb", "ups_fault", 2, {"ups_fault": "major"}),
    Case("ups-mb", "over_temperature", 2, {"ups_over_temperature": "major"}),
    Case("ups-mb", "output_off", 2, {"ups_output_off": "major"}),
    Case("meter-1", "mains_out_of_range", 3, {"mains_out_of_range": "general"}),
]


@pytest.mark.parametrize("case", MODBUS_CASES, ids=lambda c: f"{c.device}-{c.fault}")
async def test_modbus_fault_fires_its_builtin_rule_then_clears(
        tmp_path: Path, modbus_lab: ModbusLab, case: Case) -> None:
    def modbus(profile: str, unit: int) -> dict[str, Any]:
        return {"type": "modbus", "port": modbus_lab.port,
                "params": {"profile": profile, "unit": unit}}

    path = write_config(tmp_path / "c.yaml", [
        {"id": "panel-1", "site": SITE, "kind": "alarm_panel", "host": "127.0.0.1",
         "checks": [modbus("generic_alarm_panel", 1)]},
        {"id": "ups-mb", "site": SITE, "kind": "ups", "host": "127.0.0.1",
         "checks": [modbus("generic_ups", 2)]},
        {"id": "meter-1", "site": SITE, "kind": "power_meter", "host": "127.0.0.1",
         "checks": [modbus("generic_power_meter", 3)]}],
        kinds={"power_meter": {"system": "power", "checks": [{"type": "icmp"}]}})
    app = RulesApp(load_config(path))

    async def inject() -> None:
        await modbus_lab.set_fault(case.item, ModbusFault(case.fault))

    async def remove() -> None:
        await modbus_lab.reset(case.item)

    try:
        await fire_and_clear(app, case, inject, remove)
    finally:
        await modbus_lab.reset(case.item)


# -- SNMP: snmpsim serving the lab switch, NVR and UPS ---------------------------------

@pytest.fixture(scope="module")
def snmp_lab() -> Iterator[SnmpLab]:
    with SnmpLab() as lab:
        # snmpsim indexes its recordings on the first request (seconds, answering
        # nothing meanwhile): warm it up, so the daemons' short timeouts hold.
        async def warm_up() -> None:
            try:
                for community, kind in (("lab-switch", "switch"), ("lab-nvr", "nvr"),
                                        ("lab-ups", "ups")):
                    target = Target(community, lab.host, kind=kind, credential=Credential(
                        "c", secrets={"community": Secret(community)}))
                    check = Check("snmp", "snmp", timeout=1.0, port=lab.port,
                                  options=SnmpOptions())
                    for _ in range(30):
                        obs = await probe_snmp(target, check)
                        if obs.status is Status.OK:
                            break
                    assert obs.status is Status.OK, obs.error
            finally:
                await close_engine()
        asyncio.run(warm_up())
        yield lab


@pytest.fixture
def communities(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Credentials named like the lab's communities, the secrets from the environment."""
    for community, env in COMMUNITY_ENV.items():
        monkeypatch.setenv(env, community)
    return {name: {"secrets": {"community": {"env": env}}}
            for name, env in COMMUNITY_ENV.items()}


def snmp_device(device: str, kind: str, community: str, lab: SnmpLab,
                interval: float = 0.3) -> dict[str, Any]:
    return {"id": device, "site": SITE, "kind": kind, "host": lab.host,
            "credentials": community,
            "checks": [{"type": "snmp", "name": "snmp", "port": lab.port,
                        "interval": interval, "timeout": interval}]}


SNMP_DEVICES = {"sw-1": ("switch", "lab-switch"), "nvr-1": ("nvr", "lab-nvr"),
                "ups-1": ("ups", "lab-ups")}
SNMP_CASES = [
    Case("nvr-1", "disk_failed", 1, {"nvr_disk_failed": "major"}),
    Case("nvr-1", "disk_removed", 2, {"nvr_disk_failed": "major"}),
    Case("sw-1", "port_down", 3, {"switch_port_down": "general"}),
    # A port that was powering its device and falls into PoE fault has lost power too:
    # one ticket, the PoE fault's, which explains the port's lost power.
    Case("sw-1", "poe_fault", 4, {"switch_poe_fault": "general"}, ("switch_port_down",)),
    Case("sw-1", "reboot", 1, {"device_rebooted": "general"}),
    Case("ups-1", "on_battery", 1, {"ups_on_battery": "major"}),
    Case("ups-1", "battery_low", 1, {"ups_battery_low": "emergency"}),
]


@pytest.mark.parametrize("case", SNMP_CASES, ids=lambda c: f"{c.device}-{c.fault}")
async def test_snmp_fault_fires_its_builtin_rule_then_clears(
        tmp_path: Path, snmp_lab: SnmpLab, communities: dict[str, Any], case: Case) -> None:
    kind, community = SNMP_DEVICES[case.device]
    path = write_config(tmp_path / "c.yaml",
                        [snmp_device(case.device, kind, community, snmp_lab)],
                        down_after=5, credentials=communities)
    app = RulesApp(load_config(path))

    async def inject() -> None:
        await asyncio.to_thread(snmp_lab.inject, community, case.fault, case.item)

    async def remove() -> None:
        await asyncio.to_thread(snmp_lab.clear, community)

    try:
        await fire_and_clear(app, case, inject, remove)
    finally:
        snmp_lab.clear(community)


# -- Port-level topology: camera → PoE switch port → switch ------------------------------

CAMERA_PORT = 18557


async def test_camera_on_a_port_that_lost_power_is_explained_by_that_port_only(
        tmp_path: Path, snmp_lab: SnmpLab, communities: dict[str, Any]) -> None:
    async with LabFleet(2, first_address(), [CAMERA_PORT], prefix="cam") as fleet:
        cams = fleet.config_devices(SITE, "camera", [tcp_check(CAMERA_PORT)])
        dark, other = str(cams[0]["id"]), str(cams[1]["id"])
        # The dark camera by ifIndex, the other by ifName.  Should the dark camera be
        # confirmed down before its port's fault fires, the engine holds it back up to
        # interval × down_after (1.5 s) for that fault.
        for entry, port in zip(cams, ("3", "ge1/0/5"), strict=True):
            entry["uplink"] = {"device": "sw-1", "port": port}
            entry["interval"] = 0.5
        path = write_config(
            tmp_path / "c.yaml",
            [snmp_device("sw-1", "switch", "lab-switch", snmp_lab, interval=0.5), *cams],
            credentials=communities)
        app = RulesApp(load_config(path))
        await app.start()
        try:
            # The switch up: polled, so its ports were derived onto the cameras.
            seen, since = await settled(app)
            # Port 3 stops delivering power: its camera goes dark.  At the same time
            # the camera on healthy port 5 fails on its own.
            await asyncio.to_thread(snmp_lab.inject, "lab-switch", "port_down", 3)
            await fleet.set_fault(dark, DeviceFault.DOWN)
            await fleet.set_fault(other, DeviceFault.DOWN)
            port_fault = fingerprint(SITE, "sw-1", "switch_port_down")
            dark_unreachable = fingerprint(SITE, dark, "device_unreachable")
            dark_port = fingerprint(SITE, dark, "uplink_port_down")
            other_unreachable = fingerprint(SITE, other, "device_unreachable")

            def explained() -> bool:
                faults = open_faults(app.transitions)
                return (set(faults) == {port_fault, other_unreachable}
                        and faults[port_fault].affected == (dark,)
                        and fired_under(app.transitions, dark_unreachable, port_fault)
                        and fired_under(app.transitions, dark_port, port_fault))
            await until(explained, timeout=WAIT,
                        what="the dark camera under the port fault, the other alone")
            # Nothing of the dark camera ever stood alone (so no ticket of its own), and
            # the other camera's fault was never put under the port's.
            after = app.transitions[seen:]
            assert [t for t in after if t.device == dark and t.state is FaultState.FIRING
                    and t.root_cause is None] == []
            assert [t for t in after if t.device == other and t.root_cause] == []
            assert await wait_tickets(app, 2, since) == [("device_unreachable", "general"),
                                                         ("switch_port_down", "general")]
            assert await fault_tickets(app, since, "sw-1") == [("switch_port_down", "general")]
            assert await fault_tickets(app, since, other) == [("device_unreachable", "general")]
            assert app.tickets is not None
            (ticket,) = await app.tickets.list_tickets(kind="fault", device="sw-1")
            assert ticket.affected == (dark,)

            # Back: the lab camera does not boot, it answers as soon as it is let, so it
            # comes back first and the power after it (a camera up by the time the
            # switch's next polls see PoE delivered again).  Everything clears, and no
            # ticket more opens.
            await fleet.set_fault(dark, DeviceFault.NONE)
            await fleet.set_fault(other, DeviceFault.NONE)
            await until(lambda: all(app.tracker.devices[str(c["id"])].state == "up"
                                       for c in cams), timeout=WAIT, what="cameras up")
            await asyncio.to_thread(snmp_lab.clear, "lab-switch")
            await until(lambda: all(last_state(app.transitions, fp) is FaultState.CLEARED
                                       for fp in (port_fault, dark_port, dark_unreachable,
                                                  other_unreachable)),
                        timeout=WAIT, what="every fault cleared")
            assert open_faults(app.transitions) == {}
            assert len(await fault_tickets(app, since)) == 2
        finally:
            await app.stop()
            snmp_lab.clear("lab-switch")


def fired_under(transitions: list[FaultTransition], fp: str, root: str) -> bool:
    mine = [t for t in transitions if t.fingerprint == fp]
    return bool(mine) and mine[-1].state is FaultState.FIRING and mine[-1].root_cause == root
