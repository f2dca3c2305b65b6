"""Detection kept per device and redone when the device changes; IF-MIB fallbacks with
32-bit counter wraps — against snmpsim serving a recording rewritten between polls."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes import labelled
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_session import close_engine
from tests.helpers import Memories

IF = "1.3.6.1.2.1.2.2.1"
HIK = "1.3.6.1.4.1.39165.1"
WRAP = 2**32


def camera(uptime: int, in_octets: int, object_id: str = "1.3.6.1.4.1.39165.1.2") -> str:
    """An embedded camera agent: IF-MIB without ifXTable, HIK-DEVICE-MIB identity."""
    lines = ["1.3.6.1.2.1.1.1.0|4|IP CAMERA", f"1.3.6.1.2.1.1.2.0|6|{object_id}",
             f"1.3.6.1.2.1.1.3.0|67|{uptime}",
             f"{IF}.1.2|2|2", f"{IF}.2.2|4|eth0", f"{IF}.5.2|66|100000000",
             f"{IF}.7.2|2|1", f"{IF}.8.2|2|1", f"{IF}.10.2|65|{in_octets}",
             f"{IF}.14.2|65|0", f"{IF}.16.2|65|77", f"{IF}.20.2|65|0"]
    if object_id.startswith("1.3.6.1.4.1.39165"):
        lines += [f"{HIK}.1.0|4|DS-2CD1043G0-I", f"{HIK}.3.0|4|V5.6.5 build 200316"]
    return "\n".join(sorted(lines, key=lambda s: tuple(int(p) for p in s.split("|")[0]
                                                        .split(".")))) + "\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpLab]:
    seed = tmp_path_factory.mktemp("rec") / "cam-wrap.snmprec"
    seed.write_text(camera(100_000, WRAP - 1000), "utf-8")
    with SnmpLab({}, recordings=[seed]) as running:
        yield running


# Each device's check memory across a test's polls, as the scheduler keeps it.
MEMORIES = Memories()


@pytest.fixture(autouse=True)
async def _engine() -> AsyncIterator[None]:
    MEMORIES.clear()
    yield
    await close_engine()


_STAMP = [0.0]


def rewrite(lab: SnmpLab, text: str) -> None:
    path = lab.data_dir / "cam-wrap.snmprec"
    path.write_text(text, "utf-8")
    # snmpsim re-indexes a file whose modification time changed.
    _STAMP[0] = max(_STAMP[0] + 1, time.time() + 1)
    os.utime(path, (_STAMP[0], _STAMP[0]))


async def poll(lab: SnmpLab, device: str) -> Observation:
    target = Target(device=device, host=lab.host, kind="camera",
                    credential=Credential("c", secrets={"community": Secret("cam-wrap")}))
    check = Check("snmp", "snmp", timeout=10.0, port=lab.port,
                  options=SnmpOptions(profiles=("if",)))
    with MEMORIES.of(device):
        return await probe_snmp(target, check)


IN_BYTES = labelled.join("snmp.if.in_bytes", {"ifindex": "2", "port": "eth0"})


async def test_32_bit_octets_stand_in_for_hc_counters_and_their_wraps_add_up(
        lab: SnmpLab) -> None:
    rewrite(lab, camera(100_000, WRAP - 1000))
    try:
        first = await poll(lab, "cam-a")
        rewrite(lab, camera(160_000, 4000))          # wrapped: 5000 octets later
        second = await poll(lab, "cam-a")
        rewrite(lab, camera(170_000, 9000))
        third = await poll(lab, "cam-a")
        rewrite(lab, camera(500, 300))               # rebooted: the counter restarts
        fourth = await poll(lab, "cam-a")
    finally:
        MEMORIES.pop("cam-a", None)
    assert first.values[IN_BYTES] == WRAP - 1000
    assert second.values[IN_BYTES] == WRAP + 4000
    assert third.values[IN_BYTES] == WRAP + 9000
    assert fourth.values["snmp.rebooted"] == 1.0 and fourth.values[IN_BYTES] == 300
    # ifSpeed (bit/s) stands in for ifHighSpeed, ifDescr names the port.
    assert first.values[labelled.join("snmp.if.speed_bytes_per_second",
                                      {"ifindex": "2", "port": "eth0"})] == 12_500_000


async def test_detection_is_kept_and_redone_when_another_device_answers(
        lab: SnmpLab) -> None:
    rewrite(lab, camera(100_000, 1))
    try:
        first = await poll(lab, "cam-b")
        second = await poll(lab, "cam-b")
        # The camera is swapped for another make at the same address.
        rewrite(lab, camera(200_000, 1, object_id="1.3.6.1.4.1.1004849.3.3.5"))
        third = await poll(lab, "cam-b")
    finally:
        MEMORIES.pop("cam-b", None)
    assert (first.info["vendor"], first.info["model"]) == ("Hikvision", "DS-2CD1043G0-I")
    assert first.values["snmp.requests"] > second.values["snmp.requests"] == 2.0
    assert second.info == first.info
    assert third.status is Status.OK
    assert third.info["vendor"] == "Dahua" and "model" not in third.info
    assert third.info["object_id"] == "1.3.6.1.4.1.1004849.3.3.5"


async def test_a_reboot_identifies_the_device_again_on_the_next_poll(lab: SnmpLab) -> None:
    rewrite(lab, camera(100_000, 1))
    try:
        await poll(lab, "cam-c")
        rewrite(lab, camera(900, 1).replace("V5.6.5 build 200316", "V5.7.1 build 220101"))
        rebooted = await poll(lab, "cam-c")
        after = await poll(lab, "cam-c")
    finally:
        MEMORIES.pop("cam-c", None)
    # The poll that sees the reboot reports it at once, with what it knew …
    assert rebooted.values["snmp.rebooted"] == 1.0
    assert rebooted.info["firmware"] == "V5.6.5 build 200316"
    # … and the next one has identified the device again (new firmware).
    assert after.info["firmware"] == "V5.7.1 build 220101"
