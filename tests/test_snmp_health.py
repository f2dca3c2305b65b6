"""Health that only shows across polls: a stack cable pulled, a stack member gone, an SD
card failing after it worked, a PoE port that stops powering its camera — against
snmpsim serving copies of the zoo fixtures, rewritten between polls (``SnmpLab.edit``),
probed as ``probe_snmp`` does and, for the tickets, through a running daemon."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from elvwatch.config.loading import load_config
from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes import labelled
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_session import close_engine
from elvwatch.probes.snmp_uplink import Uplink, UplinkMap
from elvwatch.rules.faults import fingerprint
from tests.helpers import Memories, until
from tests.rules_daemon import RulesApp, open_faults
from tests.test_rules_lab_field import SITE, wait_tickets, write_config

FIXTURES = Path(__file__).parent / "fixtures" / "snmp"
# Copies served under their own communities, so rewriting them leaves the zoo alone.
COPIES = {"axis-live": "axis-camera", "axis-no-card-live": "axis-camera-no-card",
          "irf-live": "h3c-s5130-irf", "istack-live": "huawei-s5735-istack",
          "c9200-live": "cisco-c9200l-sensors"}
AXIS_DISRUPTED = "1.3.6.1.4.1.368.4.1.8.1.3"
IRF = "1.3.6.1.4.1.25506.2.91"
ISTACK = "1.3.6.1.4.1.2011.5.25.183.1"
HW_POE = "1.3.6.1.4.1.2011.5.25.195.3.1"
SENSOR_STATUS = "1.3.6.1.2.1.99.1.1.1.5"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpLab]:
    folder = tmp_path_factory.mktemp("health")
    for copy, fixture in COPIES.items():
        shutil.copy(FIXTURES / f"{fixture}.snmprec", folder / f"{copy}.snmprec")
    with SnmpLab({}, recordings=sorted(folder.glob("*.snmprec"))) as running:
        yield running


# Each device's check memory across a test's polls, as the scheduler keeps it.
MEMORIES = Memories()


@pytest.fixture(autouse=True)
async def _engine() -> AsyncIterator[None]:
    yield
    await close_engine()
    for device in ("axis-idle", "axis-card", "irf", "istack"):
        MEMORIES.pop(device, None)


@contextlib.contextmanager
def restored(lab: SnmpLab, *communities: str) -> Iterator[None]:
    """The recordings as they were once the test is done (the next test starts healthy)."""
    saved = {name: lab.recording(name) for name in communities}
    try:
        yield
    finally:
        for name, text in saved.items():
            lab.replace_recording(name, text)


async def poll(lab: SnmpLab, community: str, device: str) -> Observation:
    target = Target(device=device, host=lab.host, kind="",
                    credential=Credential("c", secrets={"community": Secret(community)}))
    with MEMORIES.of(device):
        return await probe_snmp(target, Check("snmp", "snmp", timeout=10.0, port=lab.port,
                                              options=SnmpOptions()))


def row(name: str, **labels: str) -> str:
    return labelled.join(name, labels)


async def test_a_card_that_worked_and_fails_is_lost_while_a_card_less_camera_never_alarms(
        lab: SnmpLab) -> None:
    with restored(lab, "axis-live"):
        for _ in range(2):
            idle = await poll(lab, "axis-no-card-live", "axis-idle")
            assert (idle.status, idle.error) == (Status.OK, None)
        first = await poll(lab, "axis-live", "axis-card")
        assert first.status is Status.OK
        lab.edit("axis-live", {f"{AXIS_DISRUPTED}.1": (2, "2")})    # the card fails
        failed = await poll(lab, "axis-live", "axis-card")
        assert failed.status is Status.DEGRADED
        assert failed.error == "camera storage failed (was working) (SD_DISK)"
        assert failed.values[row("snmp.camera_storage.lost", index="1")] == 1.0
        # The share never worked: not in use, whatever happens to the card.
        assert failed.values[row("snmp.camera_storage.lost", index="2")] == 0.0
        lab.edit("axis-live", {f"{AXIS_DISRUPTED}.1": None,             # the row goes too
                               "1.3.6.1.4.1.368.4.1.8.1.2.1": None})
        gone = await poll(lab, "axis-live", "axis-card")
        assert gone.values[row("snmp.camera_storage.lost", index="1")] == 1.0
        lab.edit("axis-live", {f"{AXIS_DISRUPTED}.1": (2, "1"),         # a new card
                               "1.3.6.1.4.1.368.4.1.8.1.2.1": (4, "SD_DISK")})
        back = await poll(lab, "axis-live", "axis-card")
        assert (back.status, back.values[row("snmp.camera_storage.lost", index="1")]) == (
            Status.OK, 0.0)


async def test_an_irf_cable_pulled_loses_two_ports_and_a_member_gone_is_missing(
        lab: SnmpLab) -> None:
    with restored(lab, "irf-live"):
        first = await poll(lab, "irf-live", "irf")
        assert first.status is Status.OK
        # The cable between member 1 port 2 and member 2 port 1: a ring becomes a chain.
        lab.edit("irf-live", {f"{IRF}.4.1.3.1.2": (2, "2"), f"{IRF}.4.1.3.2.1": (2, "2"),
                              f"{IRF}.1.7.0": (2, "1")})
        pulled = await poll(lab, "irf-live", "irf")
        assert pulled.error == "stack port down (port_index 1.2); stack port down (port_index 2.1)"
        assert pulled.values["snmp.stack.ring"] == 0.0
        assert pulled.values[row("snmp.stack_port.lost", port_index="1.1")] == 0.0
        # Member 2 leaves the stack altogether; member 1's board is loading.
        lab.edit("irf-live", {**{f"{IRF}.2.1.{c}.2": None for c in (2, 3, 4, 5)},
                              f"{IRF}.3.1.1.2": (2, "3")})
        split = await poll(lab, "irf-live", "irf")
        assert split.values[row("snmp.stack.present", member="2")] == 0.0
        assert split.values[row("snmp.stack_board.ready", index="2", member="1")] == 0.0
        assert split.error is not None and "stack 2 missing" in split.error
        assert "stack member not ready (loading) (member 1)" in split.error


async def test_istack_free_ends_stay_quiet_a_working_port_lost_and_poe_follows_the_camera(
        lab: SnmpLab) -> None:
    uplinks = UplinkMap()
    uplinks.configure([Uplink("cam-1", "istack", "GigabitEthernet1/0/1")], [("istack", "snmp")])
    with restored(lab, "istack-live"):
        for _ in range(2):      # a chain's free stack ports are down from the start
            quiet = await poll(lab, "istack-live", "istack")
            assert quiet.status is Status.OK
        [camera] = uplinks.derive(quiet)
        assert (camera.status, camera.values["snmp.uplink.poe_delivering"],
                camera.values["snmp.uplink.poe_watts"]) == (Status.OK, 1.0, 6.5)
        lab.edit("istack-live", {f"{ISTACK}.21.1.5.2.1": (2, "2"),      # member 2's link
                                 f"{HW_POE}.6.6": (4, "off"), f"{HW_POE}.10.6": (2, "0")})
        lost = await poll(lab, "istack-live", "istack")
        assert lost.values[row("snmp.stack_port.lost", port_index="2.1")] == 1.0
        assert lost.values[row("snmp.stack_port.lost", port_index="2.2")] == 0.0
        assert lost.values[row("snmp.poe_if.lost", ifindex="6")] == 1.0
        assert lost.error == ("PoE power lost (GigabitEthernet1/0/1); "
                              "stack port down (port_index 2.1)")
        [camera] = uplinks.derive(lost)
        assert camera.status is Status.DEGRADED and camera.values["snmp.uplink.poe_lost"] == 1.0
        assert camera.error == "uplink istack port GigabitEthernet1/0/1: PoE lost"
        # The admin switches PoE off on that port: not lost any more, on purpose.
        lab.edit("istack-live", {f"{HW_POE}.3.6": (2, "2")})
        off = await poll(lab, "istack-live", "istack")
        assert off.values[row("snmp.poe_if.lost", ifindex="6")] == 0.0


# -- the same through a running daemon: each opens its ticket ---------------------------

DAEMON_CASES = [
    # (community, device kind, what breaks after the first polls, rule, severity)
    ("irf-live", "switch", {f"{IRF}.4.1.3.1.1": (2, "2")}, "switch_stack_degraded", "major"),
    ("axis-live", "camera", {f"{AXIS_DISRUPTED}.1": (2, "2")}, "camera_storage_failed",
     "major"),
    ("istack-live", "switch", {f"{HW_POE}.6.6": (4, "off")}, "switch_port_down", "general"),
    ("c9200-live", "switch", {}, "switch_hardware_fault", "major"),   # a fan nonoperational
]


@pytest.mark.parametrize(("community", "kind", "breaks", "rule", "severity"), DAEMON_CASES,
                         ids=[c[3] for c in DAEMON_CASES])
async def test_daemon_tickets_what_breaks_between_polls(
        lab: SnmpLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, community: str,
        kind: str, breaks: dict[str, tuple[int, str] | None], rule: str,
        severity: str) -> None:
    monkeypatch.setenv("ELVWATCH_TEST_HEALTH_COMMUNITY", community)
    dev = f"health-{rule}"
    path = write_config(tmp_path / "c.yaml", [
        {"id": dev, "site": SITE, "kind": kind, "host": lab.host, "credentials": "lab",
         "checks": [{"type": "snmp", "name": "snmp", "port": lab.port, "interval": 1.0,
                     "timeout": 1.0}]}], credentials={
        "lab": {"secrets": {"community": {"env": "ELVWATCH_TEST_HEALTH_COMMUNITY"}}}})
    app = RulesApp(load_config(path))
    with restored(lab, community):
        await app.start()
        try:
            await until(lambda: app.tracker.devices[dev].checks["snmp"].last is not None,
                        timeout=20, what="the first poll")
            lab.edit(community, breaks)
            fp = fingerprint(SITE, dev, rule)
            await until(lambda: fp in open_faults(app.transitions), timeout=20,
                        what=f"{rule} firing")
            assert await wait_tickets(app, 1, since=0.0) == [(rule, severity)]
            assert set(open_faults(app.transitions)) == {fp}
        finally:
            await app.stop()
