"""A camera's switch port: the switch's ``snmp.poe.lost`` rows, their attribution to
the camera (``uplink`` → ``snmp.uplink.*``), the config that names it, the built-in
rule reading it and the daemon wiring — against snmpsim serving the lab switch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.daemon.app import App
from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes import labelled
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.snmp import SnmpMemory, probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_profiles import profiles
from elvwatch.probes.snmp_reading import Reading, TableMemory, apply_table
from elvwatch.probes.snmp_session import close_engine
from elvwatch.probes.snmp_uplink import Uplink, UplinkMap
from elvwatch.rules.faults import FaultState
from elvwatch.rules.model import RuleConfig, build_rules
from tests.helpers import Memories
from tests.rulekit import device, engine, states


@pytest.fixture(scope="module")
def lab() -> Iterator[SnmpLab]:
    with SnmpLab() as running:
        yield running


@pytest.fixture(autouse=True)
async def _sockets() -> AsyncIterator[None]:
    MEMORIES.clear()
    yield
    await close_engine()


# Each device's check memory across a test's polls, as the scheduler keeps it.
MEMORIES = Memories()


async def poll(lab: SnmpLab, device_id: str) -> Observation:
    target = Target(device=device_id, host=lab.host, kind="switch",
                    credential=Credential("c", secrets={"community": Secret("lab-switch")}))
    check = Check("snmp", "snmp", timeout=5.0, port=lab.port, options=SnmpOptions())
    with MEMORIES.of(device_id):
        return await probe_snmp(target, check)


def lost(port: int) -> str:
    return labelled.join("snmp.poe.lost", {"port_index": f"1.{port}"})


async def test_port_that_stops_delivering_poe_is_lost_until_it_delivers_again(
        lab: SnmpLab) -> None:
    first = await poll(lab, "sw-lost")
    assert first.status is Status.OK, first.error
    assert first.values[lost(3)] == 0.0
    lab.inject("lab-switch", "port_down", 3)
    try:
        during = await poll(lab, "sw-lost")
        still = await poll(lab, "sw-lost")
    finally:
        lab.clear("lab-switch")
    after = await poll(lab, "sw-lost")
    assert during.values[lost(3)] == 1.0 and still.values[lost(3)] == 1.0
    assert during.values[lost(2)] == 0.0
    assert during.status is Status.DEGRADED
    assert during.error is not None and "PoE power lost (port_index 1.3)" in during.error
    assert after.values[lost(3)] == 0.0 and after.status is Status.OK


def _poe_walk(status: int, admin: int) -> dict[tuple[int, ...], dict[tuple[int, ...], Any]]:
    return {(1, 3, 6, 1, 2, 1, 105, 1, 1, 1, 6): {(1, 3): status},
            (1, 3, 6, 1, 2, 1, 105, 1, 1, 1, 3): {(1, 3): admin}}


def test_poe_switched_off_by_the_admin_is_not_lost() -> None:
    table = profiles()["poe"].tables[0]
    memory = apply_table(table, _poe_walk(3, 1), Reading(), None)  # delivering
    reading = Reading()
    memory = apply_table(table, _poe_walk(1, 2), reading, memory)  # disabled on purpose
    assert reading.values[lost(3)] == 0.0 and not reading.degraded
    reading = Reading()
    apply_table(table, _poe_walk(2, 1), reading, memory)  # re-enabled, nothing attached
    assert reading.values[lost(3)] == 0.0


def test_port_row_vanishing_after_delivering_is_lost() -> None:
    table = profiles()["poe"].tables[0]
    memory = apply_table(table, _poe_walk(3, 1), Reading(), TableMemory())
    reading = Reading()
    apply_table(table, {}, reading, memory)
    assert reading.values[lost(3)] == 1.0


async def test_camera_uplink_follows_its_switch_port(lab: SnmpLab) -> None:
    links = UplinkMap()
    links.configure([Uplink("cam3", "sw-up", "ge1/0/3"), Uplink("cam2", "sw-up", "2")],
                    [("sw-up", "snmp")])
    [cam3, cam2] = links.derive(await poll(lab, "sw-up"))
    assert (cam3.device, cam3.check, cam3.status) == ("cam3", "uplink", Status.OK)
    assert cam3.values == {"snmp.uplink.oper_up": 1.0, "snmp.uplink.admin_up": 1.0,
                           "snmp.uplink.poe_delivering": 1.0, "snmp.uplink.poe_fault": 0.0,
                           "snmp.uplink.poe_lost": 0.0}
    lab.inject("lab-switch", "port_down", 3)
    try:
        [cam3, cam2] = links.derive(await poll(lab, "sw-up"))
    finally:
        lab.clear("lab-switch")
    assert cam3.status is Status.DEGRADED
    assert cam3.error == "uplink sw-up port ge1/0/3: port down, PoE lost"
    assert cam3.values["snmp.uplink.oper_up"] == 0.0
    assert cam3.values["snmp.uplink.poe_delivering"] == 0.0
    assert cam3.values["snmp.uplink.poe_lost"] == 1.0
    assert cam2.status is Status.OK and cam2.values["snmp.uplink.oper_up"] == 1.0


async def test_uplink_to_a_port_the_switch_lacks_is_unknown_not_ok(lab: SnmpLab) -> None:
    links = UplinkMap()
    links.configure([Uplink("cam9", "sw-x", "ge9/9/9")], [("sw-x", "snmp")])
    [cam9] = links.derive(await poll(lab, "sw-x"))
    assert cam9.status is Status.UNKNOWN and not cam9.values
    assert cam9.error == "uplink sw-x port ge9/9/9: the switch reports no such port"
    # Observations of other checks, of unreadable switches and derived ones give nothing.
    assert links.derive(Observation("sw-x", "icmp", Status.OK, values={"x": 1.0})) == []
    assert links.derive(Observation("sw-x", "snmp", Status.DOWN, error="timeout")) == []


def test_builtin_switch_port_down_rule_reads_poe_lost() -> None:
    eng, _ = engine([device("sw1", "switch", "network", checks={"snmp": "snmp"})])
    values = {lost(3): 1.0, lost(2): 0.0}
    fired = [t for _ in range(2)
             for t in eng.observe(Observation("sw1", "snmp", Status.DEGRADED,
                                              values=values), "degraded")]
    assert ("switch_port_down", FaultState.PENDING, FaultState.FIRING) in states(fired)


async def test_site_rule_on_the_camera_fires_from_its_uplink(lab: SnmpLab) -> None:
    rule = RuleConfig.model_validate({
        "id": "camera_uplink_down", "name_zh": "摄像机上联端口断开",
        "name_en": "Camera uplink down", "match": {"kind": "camera"},
        "condition": "snmp.uplink.oper_up == 0 or snmp.uplink.poe_lost == 1", "for": 2})
    eng, _ = engine([device("cam3", "camera", "cctv"),
                     device("sw-rule", "switch", "network", checks={"snmp": "snmp"})],
                    rules=build_rules([rule], builtin=[]))
    links = UplinkMap()
    links.configure([Uplink("cam3", "sw-rule", "ge1/0/3")], [("sw-rule", "snmp")])
    await poll(lab, "sw-rule")  # the switch's first poll: port 3 delivering
    lab.inject("lab-switch", "port_down", 3)
    try:
        fired = [t for _ in range(2) for obs in links.derive(await poll(lab, "sw-rule"))
                 for t in eng.observe(obs, "up")]
    finally:
        lab.clear("lab-switch")
    assert states(fired) == [("camera_uplink_down", FaultState.INACTIVE, FaultState.PENDING),
                             ("camera_uplink_down", FaultState.PENDING, FaultState.FIRING)]
    assert fired[-1].device == "cam3"


CONFIG = """\
sites:
  - {{id: s1, name: Lab}}
credentials:
  lab: {{secrets: {{community: {{env: ELV_TEST_COMMUNITY}}}}}}
devices:
  - id: sw1
    site: s1
    kind: switch
    host: {host}
    credentials: lab
    checks:
      - {{type: snmp, name: snmp, port: {port}, interval: 0.5, timeout: 0.4}}
  - id: cam3
    site: s1
    kind: camera
    host: 127.0.0.1
    uplink: {{device: {uplink}, port: ge1/0/3}}
    credentials: lab
    checks:
      - {{type: snmp, port: {port}, interval: 60, timeout: 2, params: {{profiles: system}}}}
"""


def write(path: Path, uplink: str = "sw1", host: str = "127.0.0.1", port: int = 161,
          camera: bool = True) -> Path:
    text = CONFIG.format(uplink=uplink, host=host, port=port)
    if not camera:
        text = text[:text.index("  - id: cam3")]
    path.write_text(text, "utf-8")
    return path


@pytest.mark.parametrize(("uplink", "message"), [
    ("sw9", "devices[1].uplink.device: unknown device 'sw9'"),
    ("cam3", "devices[1].uplink.device: a device cannot be its own uplink"),
])
def test_uplink_must_name_an_existing_switch(tmp_path: Path, uplink: str,
                                             message: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config(write(tmp_path / "c.yaml", uplink=uplink),
                    environ={"ELV_TEST_COMMUNITY": "x"})
    assert [str(e) for e in info.value.errors] == [f"{tmp_path}/c.yaml:17: {message}"]


def test_uplink_switch_needs_an_snmp_check(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml")
    path.write_text(path.read_text().replace("type: snmp, name: snmp, port: 161,",
                                             "type: tcp, port: 22,"))
    with pytest.raises(ConfigInvalid, match="has no snmp check"):
        load_config(path, environ={"ELV_TEST_COMMUNITY": "x"})


async def test_daemon_attributes_the_port_to_the_camera_and_forgets_removed_devices(
        tmp_path: Path, lab: SnmpLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELV_TEST_COMMUNITY", "lab-switch")
    path = write(tmp_path / "c.yaml", host=lab.host, port=lab.port)
    app = App(load_config(path))
    seen: list[Observation] = []
    original = app.engine.observe

    def spy(obs: Observation, state: str) -> Any:
        if obs.device == "cam3":
            seen.append(obs)
        return original(obs, state)

    app.engine.observe = spy  # type: ignore[method-assign]
    await app.start()
    try:
        deadline = time.monotonic() + 10
        while not any(o.check == "uplink" for o in seen) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        uplink = [o for o in seen if o.check == "uplink"]
        assert uplink and uplink[-1].values["snmp.uplink.oper_up"] == 1.0
        # The switch's SNMP memory is its scheduled check's …
        memory = app.scheduler.memory("sw1", "snmp")
        assert memory is not None and SnmpMemory in memory
        assert memory.get(SnmpMemory).uptime is not None and memory.get(SnmpMemory).rows
        # … a reload without the camera keeps it …
        write(path, host=lab.host, port=lab.port, camera=False)
        assert await app.reload()
        assert app.scheduler.memory("sw1", "snmp") is memory
        # … one without the switch drops it with the check: a poll still in flight
        # writes into a memory nobody keeps.
        path.write_text("sites:\n  - {id: s1, name: Lab}\n", "utf-8")
        assert await app.reload()
        assert app.scheduler.memory("sw1", "snmp") is None
    finally:
        await app.stop()


# -- Ports learned from the switch's LLDP neighbours and forwarding table ----------------

ZOO = Path(__file__).parent / "fixtures" / "snmp"


@pytest.fixture(scope="module")
def zoo_switches() -> Iterator[SnmpLab]:
    with SnmpLab({}, recordings=[ZOO / "cisco-2960x-stack.snmprec",
                                 ZOO / "huawei-s5720.snmprec"]) as running:
        yield running


async def poll_zoo(lab: SnmpLab, fixture: str) -> Observation:
    target = Target(device=fixture, host=lab.host, kind="switch",
                    credential=Credential("c", secrets={"community": Secret(fixture)}))
    check = Check("snmp", "snmp", timeout=10.0, port=lab.port, options=SnmpOptions())
    with MEMORIES.of(fixture):
        return await probe_snmp(target, check)


async def test_camera_port_is_learned_from_lldp_or_the_forwarding_table(
        zoo_switches: SnmpLab) -> None:
    links = UplinkMap()
    links.configure([
        Uplink("cam-lldp", "cisco-2960x-stack", None, host="10.0.3.21"),    # LLDP address
        Uplink("cam-qfdb", "cisco-2960x-stack", None, mac="A4-14-37-01-02-03"),  # Q-BRIDGE
        Uplink("cam-fdb", "huawei-s5720", None, mac="bcba.c21e.4f7a"),        # BRIDGE-MIB
    ], [("cisco-2960x-stack", "snmp"), ("huawei-s5720", "snmp")])
    cisco = links.derive(await poll_zoo(zoo_switches, "cisco-2960x-stack"))
    huawei = links.derive(await poll_zoo(zoo_switches, "huawei-s5720"))
    got = {o.device: (o.status, o.values) for o in [*cisco, *huawei]}
    assert got == {
        "cam-lldp": (Status.OK, {"snmp.uplink.oper_up": 1.0, "snmp.uplink.admin_up": 1.0,
                                 "snmp.uplink.port": "Gi1/0/2",
                                 "snmp.uplink.found_by": "lldp"}),
        "cam-qfdb": (Status.OK, {"snmp.uplink.oper_up": 1.0, "snmp.uplink.admin_up": 1.0,
                                 "snmp.uplink.port": "Gi1/0/3",
                                 "snmp.uplink.found_by": "fdb"}),
        # Bridge port 1 → ifIndex 5 (dot1dBasePortIfIndex).  Its PoE row is not the one
        # numbered like the ifIndex on this switch: the link alone is given.
        "cam-fdb": (Status.OK, {"snmp.uplink.oper_up": 1.0, "snmp.uplink.admin_up": 1.0,
                                "snmp.uplink.port": "GigabitEthernet0/0/1",
                                "snmp.uplink.found_by": "fdb"}),
    }


async def test_camera_the_switch_does_not_see_is_unknown_not_ok(
        zoo_switches: SnmpLab) -> None:
    links = UplinkMap()
    links.configure([Uplink("cam-away", "huawei-s5720", None, host="10.0.3.21")],
                    [("huawei-s5720", "snmp")])
    [obs] = links.derive(await poll_zoo(zoo_switches, "huawei-s5720"))
    assert obs.status is Status.UNKNOWN and not obs.values
    assert obs.error == ("uplink huawei-s5720: this device is in neither the switch's LLDP "
                         "neighbours nor its forwarding table")


def test_uplink_without_port_loads_and_a_bad_mac_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml")
    path.write_text(path.read_text().replace("port: ge1/0/3", "mac: 'bc:ba:c2:1e:4f:7a'"))
    config = load_config(path, environ={"ELV_TEST_COMMUNITY": "x"})
    uplink = config.devices["cam3"].config.uplink
    assert uplink is not None and (uplink.port, uplink.mac) == (None, "bc:ba:c2:1e:4f:7a")
    path.write_text(path.read_text().replace("bc:ba:c2:1e:4f:7a", "camera-1"))
    with pytest.raises(ConfigInvalid) as info:
        load_config(path, environ={"ELV_TEST_COMMUNITY": "x"})
    [error] = [str(e) for e in info.value.errors]
    assert error.startswith(f"{path}:17: devices[1].uplink.mac: String should match pattern")
