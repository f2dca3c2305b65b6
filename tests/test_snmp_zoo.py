"""The device zoo: snmpsim serves each fixture of tests/fixtures/snmp/ (written from
the MIB definitions, shaped like real agents' answers; see the README there) and the
probe, without a device kind as ``elvwatch probe snmp://…`` runs it, must pick the
right profiles, name vendor/model/firmware/serial and read health — and never call a
device ``ok`` whose needed tables are absent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from elvwatch.config.loading import load_config
from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_session import close_engine
from elvwatch.rules.faults import fingerprint
from tests.helpers import Memories, until
from tests.rules_daemon import RulesApp, open_faults
from tests.snmp_zoo_cases import ZOO, Zoo
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
        "profiles": "system,if,poe,topology,entity_sensor,cisco_env,cisco_poe,cisco_stack"}


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
