"""The device zoo: snmpsim serves each fixture of tests/fixtures/snmp/ (written from
the MIB definitions, shaped like real agents' answers; see the README there) and the
probe, without a device kind as ``elvwatch probe snmp://…`` runs it, must pick the
right profiles, name vendor/model/firmware/serial and read health — and never call a
device ``ok`` whose needed tables are absent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from elvwatch.config.loading import load_config
from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes import labelled
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_session import close_engine
from elvwatch.rules.faults import fingerprint
from tests.helpers import Memories, until
from tests.rules_daemon import RulesApp, open_faults
from tests.test_cli import aelvwatch
from tests.test_rules_lab_field import SITE, wait_tickets, write_config

FIXTURES = Path(__file__).parent / "fixtures" / "snmp"


@pytest.fixture(scope="module")
def zoo() -> Iterator[SnmpLab]:
    with SnmpLab({}, recordings=sorted(FIXTURES.glob("*.snmprec"))) as running:
        yield running


@pytest.fixture(autouse=True)
async def _engine() -> AsyncIterator[None]:
    yield
    await close_engine()


# Each device's check memory across a module's polls, as the scheduler keeps it.
MEMORIES = Memories()


async def probe(lab: SnmpLab, fixture: str, kind: str = "", device: str = "",
                profiles: str = "") -> Observation:
    target = Target(device=device or f"zoo-{fixture}", host=lab.host, kind=kind,
                    credential=Credential("c", secrets={"community": Secret(fixture)}))
    check = Check("snmp", "snmp", timeout=10.0, port=lab.port,
                  options=SnmpOptions.model_validate({"profiles": profiles}))
    with MEMORIES.of(target.device):
        return await probe_snmp(target, check)


class Zoo(NamedTuple):
    fixture: str
    status: Status
    error: str | None
    info: dict[str, str | None]  # vendor, model, firmware, serial, kind
    profiles: str
    values: dict[str, float | str]  # a subset, exactly
    missing: tuple[str, ...] = ()  # named in snmp.missing


def row(value: str, **labels: str) -> str:
    return labelled.join(value, labels)


ZOO = [
    Zoo("hikvision-camera", Status.OK, None,
        {"vendor": "Hikvision", "model": "DS-2CD2T47G2-L", "firmware": "V5.7.3 build 220112",
         "serial": None, "kind": "camera"}, "system,hikvision_camera",
        {"snmp.cpu_ratio": 0.12, "snmp.camera.storage_used_ratio": 0.37,
         "snmp.memory_used_ratio": 0.64, "snmp.blind": 0.0},
        ("profile system",)),
    Zoo("hikvision-nvr", Status.DEGRADED, "disk failed (HDD2)",
        {"vendor": "Hikvision", "model": "DS-7608NI-K2/8P",
         "firmware": None, "serial": "DS-7608NI-K2/8P0820200807CCRRE12345678WCVU",
         "kind": "nvr"}, "system,if,host_resources,hikvision_nvr",
        {row("snmp.disk.failed", index="1", name="HDD1"): 0.0,
         row("snmp.disk.failed", index="2", name="HDD2"): 1.0,
         row("snmp.disk.state", index="2", name="HDD2"): 3.0,
         row("snmp.disk.size_bytes", index="1", name="HDD1"): 3815447 * 1048576.0,
         row("snmp.disk.free_bytes", index="1", name="HDD1"): 102400 * 1048576.0,
         "snmp.nvr.disks": 2.0, "snmp.memory_used_ratio": 0.23, "snmp.device_ok": 1.0,
         "snmp.blind": 0.0,
         # No ifXTable: ifDescr names the ports, ifSpeed and 32-bit octets stand in.
         row("snmp.if.oper_up", ifindex="2", port="eth0"): 1.0,
         row("snmp.if.speed_bytes_per_second", ifindex="2", port="eth0"): 125_000_000.0,
         row("snmp.if.in_bytes", ifindex="2", port="eth0"): 3_900_000_000.0},
        ("profile host_resources",)),
    Zoo("hikvision-nvr-no-disk-state", Status.DEGRADED,
        "monitoring blind: NVR disks not readable",
        {"vendor": "Hikvision", "model": None, "firmware": None,
         "serial": "0820190312AAWR123456789", "kind": "nvr"},
        "system,if,host_resources,hikvision_nvr",
        {"snmp.blind": 1.0, "snmp.blind_reason": "NVR disks not readable",
         row("snmp.disk.size_bytes", index="1"): 3815447 * 1048576.0},
        ('snmp.disk.failed{index="1"}', "snmp.nvr.disks")),
    Zoo("dahua-nvr", Status.DEGRADED,
        "disk failed (/dev/sdb); camera channel offline (Car park B2)",
        {"vendor": "Dahua", "model": "DH-NVR4216-16P-4KS2/L", "firmware": "4.001.0000000.3.R",
         "serial": "6J0BD8APAZ4C1F2", "kind": "nvr"}, "system,if,host_resources,dahua",
        {"snmp.device_ok": 1.0, "snmp.nvr.channels": 16.0, "snmp.cpu_ratio": 0.11,
         row("snmp.disk.failed", index="1", name="/dev/sda"): 0.0,
         row("snmp.disk.failed", index="2", name="/dev/sdb"): 1.0,
         row("snmp.disk.used_ratio", index="1", name="/dev/sda"): 0.87,
         row("snmp.channel.online", index="1", name="Gate", address="192.168.1.108"): 1.0,
         row("snmp.channel.online", index="2", name="Car park B2",
             address="192.168.1.109"): 0.0,
         "snmp.blind": 0.0},
        ("profile host_resources",)),
    Zoo("dahua-nvr-no-storage", Status.DEGRADED, "monitoring blind: NVR disks not readable",
        {"vendor": "Dahua", "model": "DH-NVR4108HS-8P-4KS2", "firmware": "4.001.0000000.3.R",
         "serial": "2M00D2APAZTL62J", "kind": "nvr"}, "system,if,host_resources,dahua",
        {"snmp.blind": 1.0, "snmp.nvr.channels": 8.0, "snmp.device_ok": 1.0},
        ("table disk", "table channel")),
    Zoo("axis-camera", Status.DEGRADED, "camera storage disrupted (NetworkShare)",
        {"vendor": "Axis", "model": "P1448-LE", "firmware": "10.12.182",
         "serial": "B8A44F2C9102", "kind": "camera"}, "system,axis",
        {row("snmp.temperature.celsius", sensor="1.1"): 41.0,
         row("snmp.temperature.ok", sensor="1.2"): 1.0,
         row("snmp.camera_storage.disrupted", index="1", name="SD_DISK"): 0.0,
         row("snmp.camera_storage.disrupted", index="2", name="NetworkShare"): 1.0}),
    Zoo("axis-camera-sysdescr-only", Status.OK, None,
        {"vendor": "Axis", "model": "M3044-V", "firmware": "6.50.2.3", "serial": None,
         "kind": "camera"}, "system,axis", {"snmp.blind": 0.0},
        ("profile axis", "profile system")),
    Zoo("cisco-2960x-stack", Status.DEGRADED, "stack member not ready (member 3)",
        {"vendor": "Cisco", "model": "3× (2× WS-C2960X-48FPS-L + 1× WS-C2960X-24PS-L)",
         "firmware": "15.2(7)E4", "serial": "FCW1929B68S, FCW1931A06Z, FCW1929B6BP",
         "kind": "switch"}, "system,if,poe,topology,cisco_env,cisco_poe,cisco_stack",
        {"snmp.stack.ring_redundant": 1.0,
         row("snmp.stack.ready", index="1001", member="1"): 1.0,
         row("snmp.stack.ready", index="3001", member="3"): 0.0,
         row("snmp.poe_pse_cisco.used_watts", pse="2", member="2",
             name="Switch 2 - Power Supply A"): 15.4,
         row("snmp.poe_pse_cisco.remaining_watts", pse="1", member="1",
             name="Switch 1 - Power Supply A"): 713.9,
         row("snmp.poe.delivering", port_index="1.2"): 1.0,
         row("snmp.env_fan.failed", fan="2007", name="Switch#2, Fan#1"): 0.0,
         row("snmp.env_temperature.celsius", sensor="3008",
             name="SW#3, Sensor#1, GREEN"): 43.0,
         row("snmp.if.oper_up", ifindex="10104", port="Gi1/0/4"): 0.0,
         row("snmp.lldp.name", index="0.2.3"): "IPCamera",
         row("snmp.qfdb.port", index="10/a4:14:37:01:02:03"): "3",
         "snmp.blind": 0.0}),
    Zoo("huawei-s5720", Status.DEGRADED, "part abnormal (PWR1)",
        {"vendor": "Huawei", "model": "S5720-28P-PWR-LI-AC",
         "firmware": "5.170 V200R011C10SPC600", "serial": "2102351931DMJ4001234",
         "kind": "switch"}, "system,if,poe,topology,huawei_entity",
        {row("snmp.env_temperature.celsius", entity="67108869", name="MPU Board 0"): 43.0,
         row("snmp.env_part.failed", entity="67371017", name="PWR1"): 1.0,
         row("snmp.poe.delivering", port_index="0.2"): 0.0,
         row("snmp.fdb.port", mac="bc:ba:c2:1e:4f:7a"): "1",
         row("snmp.bridge_port.ifindex", bridge_port="1"): "5"},
        ("table poe_pse",)),
    Zoo("h3c-s5130", Status.DEGRADED, "part error (Fan 1)",
        {"vendor": "H3C", "model": "LS-5130-28S-PWR-EI", "firmware": "7.1.070 Release 6126P20",
         "serial": "210235A1JKH19A000123", "kind": "switch"},
        "system,if,poe,topology,h3c_entity",
        {row("snmp.env_part.celsius", entity="2", name="Slot 1"): 38.0,
         row("snmp.env_part.failed", entity="3", name="Fan 1"): 1.0},
        ("profile poe", "profile topology")),
    Zoo("tplink-jetstream", Status.OK, None,
        {"vendor": "TP-Link", "model": "T2600G-28TS", "serial": "217B851000014",
         "firmware": "3.0.3 Build 20181101 Rel.42543(s)", "kind": "switch"},
        "system,if,poe,topology,tplink",
        {row("snmp.if.oper_up", ifindex="49153", port="gigabitEthernet 1/0/1"): 1.0}),
    Zoo("ruijie-s2928g", Status.OK, None,
        {"vendor": "Ruijie", "model": "S2928G-E V3", "firmware": "S2900G-E_RGOS 11.4(1)B12P3",
         "serial": "G1MQ10P000123", "kind": "switch"}, "system,if,poe,topology",
        {row("snmp.if.oper_up", ifindex="1", port="Gi0/1"): 1.0}),
    Zoo("apc-smart-ups", Status.DEGRADED, "UPS battery needs replacing",
        {"vendor": "APC", "model": "Smart-UPS 1500", "firmware": "UPS 09.3 (ID18)",
         "serial": "AS1707123456", "kind": "ups"}, "system,ups,apc",
        # the high-precision group (tenths) is preferred over the advanced one
        {"snmp.ups.battery_charge_ratio": 1.0, "snmp.ups.battery_temperature_celsius": 27.2,
         "snmp.ups.battery_volts": 27.4, "snmp.ups.input_volts": 231.3,
         "snmp.ups.output_load_ratio": 0.184, "snmp.ups.battery_runtime_seconds": 3720.0,
         "snmp.ups.on_battery": 0.0, "snmp.ups.battery_low": 0.0,
         "snmp.ups.battery_replace": 1.0}, ("profile ups",)),
    Zoo("apc-smart-ups-old-card", Status.DEGRADED, "UPS on battery",
        {"vendor": "APC", "model": "Smart-UPS 750", "firmware": "651.12.I",
         "serial": "AS0934234567", "kind": "ups"}, "system,ups,apc",
        # no high-precision group: the advanced values stand in
        {"snmp.ups.battery_charge_ratio": 0.86, "snmp.ups.battery_temperature_celsius": 27.0,
         "snmp.ups.input_volts": 231.0, "snmp.ups.output_load_ratio": 0.18,
         "snmp.ups.on_battery": 1.0}),
    Zoo("eaton-5px-mge-on-battery", Status.DEGRADED,
        "UPS on battery; UPS mains (utility) off; UPS overload",
        {"vendor": "Eaton", "model": "Eaton 5PX 2200", "firmware": "02.14.0026",
         "serial": "G118G31234", "kind": "ups"}, "system,ups,mge",
        {"snmp.ups.on_battery": 1.0, "snmp.ups.utility_off": 1.0, "snmp.ups.overload": 1.0,
         "snmp.ups.battery_fault": 0.0, "snmp.ups.battery_replace": 0.0,
         "snmp.ups.over_temperature": 0.0, "snmp.ups.battery_charge_ratio": 0.71,
         "snmp.ups.battery_volts": 72.0, row("snmp.ups_output.load_ratio", line="1"): 1.04}),
    Zoo("santak-netagent", Status.OK, None,
        {"vendor": "Santak", "model": "C3KS", "firmware": "V1.2", "serial": "9A1K32012345",
         "kind": "ups"}, "system,ups,megatec",
        {"snmp.ups.on_battery": 0.0, "snmp.ups.battery_low": 0.0,
         "snmp.ups.battery_temperature_celsius": 26.2, "snmp.ups.input_volts": 226.2,
         "snmp.ups.output_load_ratio": 0.31, "snmp.ups.battery_runtime_seconds": 1320.0},
        ("profile ups",)),
    Zoo("liebert-gxt5", Status.OK, None,
        {"vendor": "Vertiv (Liebert)", "model": "GXT5-3000IRT2UXL", "firmware": "5.200.0",
         "serial": "1905100123AF522", "kind": "ups"}, "system,ups,liebert",
        {"snmp.ups.on_battery": 0.0, "snmp.ups.battery_low": 0.0,
         "snmp.ups.battery_runtime_seconds": 840.0, "snmp.ups.battery_charge_ratio": 1.0}),
    Zoo("huawei-ups2000-on-battery", Status.DEGRADED, "UPS battery low; UPS on battery",
        {"vendor": "Huawei", "model": "UPS2000 6kVA", "firmware": "V100R001C00SPC602",
         "serial": None, "kind": "ups"}, "system,ups",
        {"snmp.ups.battery_low": 1.0, "snmp.ups.on_battery": 1.0, "snmp.ups.alarms": 2.0,
         "snmp.ups.battery_runtime_seconds": 240.0, "snmp.ups.seconds_on_battery": 1840.0}),
]


@pytest.mark.parametrize("case", ZOO, ids=lambda c: c.fixture)
async def test_probe_without_kind_identifies_and_reads_each_device_of_the_zoo(
        zoo: SnmpLab, case: Zoo) -> None:
    obs = await probe(zoo, case.fixture)
    assert (obs.status, obs.error) == (case.status, case.error)
    assert {k: obs.info.get(k) for k in case.info} == case.info
    assert obs.info["profiles"] == case.profiles == obs.values["snmp.profile"]
    assert {k: obs.values.get(k) for k in case.values} == case.values
    listed = str(obs.values.get("snmp.missing", ""))
    assert [m for m in case.missing if m not in listed] == [], listed


@pytest.mark.parametrize("fixture", ["hikvision-nvr-no-disk-state", "dahua-nvr-no-storage"])
async def test_nvr_whose_disks_cannot_be_read_is_never_ok_even_as_kind_nvr(
        zoo: SnmpLab, fixture: str) -> None:
    obs = await probe(zoo, fixture, kind="nvr", device=f"nvr-{fixture}")
    assert obs.status is Status.DEGRADED
    assert obs.values["snmp.blind"] == 1.0
    assert obs.error == "monitoring blind: NVR disks not readable"


@pytest.mark.parametrize(("profiles", "blind"), [("system", 0.0), ("system,dahua", 1.0)])
async def test_a_check_naming_its_profiles_needs_only_what_they_can_answer(
        zoo: SnmpLab, profiles: str, blind: float) -> None:
    obs = await probe(zoo, "dahua-nvr-no-storage", kind="nvr", device=f"named-{profiles}",
                      profiles=profiles)
    assert obs.values["snmp.profile"] == profiles
    assert obs.values["snmp.blind"] == blind
    assert obs.status is (Status.DEGRADED if blind else Status.OK)


async def test_kind_narrows_the_matched_profiles_but_never_stops_identification(
        zoo: SnmpLab) -> None:
    # A Hikvision NVR configured as a camera: no NVR disk profile (the kind narrows),
    # no NVR needs, but the vendor and serial are still found.
    obs = await probe(zoo, "hikvision-nvr", kind="camera", device="nvr-as-camera")
    assert obs.values["snmp.profile"] == "system"
    assert obs.status is Status.OK and obs.values["snmp.blind"] == 0.0
    assert (obs.info["vendor"], obs.info["serial"]) == (
        "Hikvision", "DS-7608NI-K2/8P0820200807CCRRE12345678WCVU")


async def test_stack_members_are_named_one_by_one(zoo: SnmpLab) -> None:
    obs = await probe(zoo, "cisco-2960x-stack", device="stack-members")
    assert obs.info["stack_members"] == "3"
    assert obs.info["members"] == ("1: WS-C2960X-48FPS-L FCW1929B68S; "
                                   "2: WS-C2960X-24PS-L FCW1931A06Z; "
                                   "3: WS-C2960X-48FPS-L FCW1929B6BP")


async def test_detection_runs_once_then_each_poll_is_one_get_and_the_walks(
        zoo: SnmpLab) -> None:
    first = await probe(zoo, "apc-smart-ups", device="apc-polls")
    second = await probe(zoo, "apc-smart-ups", device="apc-polls")
    # Detection: system group + probe OIDs, identity + scalars, ENTITY-MIB walk …
    assert first.values["snmp.requests"] > 2
    # … then one GET and one side-by-side walk (UPS-MIB input and output tables).
    assert second.values["snmp.requests"] == 2.0
    assert second.info == first.info


@pytest.mark.parametrize("case", ZOO, ids=lambda c: c.fixture)
async def test_elvwatch_probe_prints_the_info_block_of_each_fixture(
        zoo: SnmpLab, case: Zoo) -> None:
    url = f"snmp://{case.fixture}@{zoo.host}:{zoo.port}"
    text = await aelvwatch("probe", url, "--timeout", "10")
    shown = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in
             text.stdout.splitlines()[1:] if line.startswith("  ") and line.split(None, 1)[1:]}
    expected = {k: v for k, v in case.info.items() if v is not None}
    assert {k: shown.get(k) for k in expected} == expected, text.stdout + text.stderr
    assert shown["profiles"] == case.profiles
    assert [k for k in ("vendor", "model", "firmware", "serial")
            if case.info.get(k) is None and k in shown] == []


async def test_elvwatch_probe_json_carries_the_same_identification(zoo: SnmpLab) -> None:
    url = f"snmp://cisco-2960x-stack@{zoo.host}:{zoo.port}"
    result = json.loads((await aelvwatch("probe", url, "--timeout", "10", "--json")).stdout)
    assert result["status"] == "degraded"
    assert result["info"] == {
        "vendor": "Cisco", "model": "3× (2× WS-C2960X-48FPS-L + 1× WS-C2960X-24PS-L)",
        "firmware": "15.2(7)E4", "serial": "FCW1929B68S, FCW1931A06Z, FCW1929B6BP",
        "kind": "switch", "stack_members": "3",
        "members": "1: WS-C2960X-48FPS-L FCW1929B68S; 2: WS-C2960X-24PS-L FCW1931A06Z; "
                   "3: WS-C2960X-48FPS-L FCW1929B6BP",
        "profiles": "system,if,poe,topology,cisco_env,cisco_poe,cisco_stack"}


async def test_daemon_tickets_an_nvr_whose_disks_cannot_be_read(
        zoo: SnmpLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELVWATCH_TEST_ZOO_COMMUNITY", "dahua-nvr-no-storage")
    device = {"id": "nvr-blind", "site": SITE, "kind": "nvr", "host": zoo.host,
              "credentials": "zoo",
              "checks": [{"type": "snmp", "name": "snmp", "port": zoo.port,
                          "interval": 1.0, "timeout": 1.0}]}
    path = write_config(tmp_path / "c.yaml", [device], credentials={
        "zoo": {"secrets": {"community": {"env": "ELVWATCH_TEST_ZOO_COMMUNITY"}}}})
    app = RulesApp(load_config(path))
    await app.start()
    try:
        fp = fingerprint(SITE, "nvr-blind", "snmp_monitoring_blind")
        await until(lambda: fp in open_faults(app.transitions), timeout=20,
                    what="snmp_monitoring_blind firing")
        assert await wait_tickets(app, 1, since=0.0) == [("snmp_monitoring_blind", "general")]
        assert app.tickets is not None
        [ticket] = await app.tickets.list_tickets(kind="fault", device="nvr-blind")
        assert "NVR disks not readable" in ticket.summary
        assert app.tracker.devices["nvr-blind"].state == "degraded"
    finally:
        await app.stop()
