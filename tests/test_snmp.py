"""The SNMP probe against real agents on loopback: net-snmp snmpd (v2c, v3) and
snmpsim serving real recordings and the lab's devices (faults injected)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from elvwatch.daemon.scheduler import LAG_BUCKETS, SchedulerStats
from elvwatch.exporters.exposition import render
from elvwatch.exporters.metrics import DeviceLabels, Snapshot, families
from elvwatch.lab.snmp import SnmpLab
from elvwatch.probes import labelled
from elvwatch.probes.adhoc import parse_target, probe_all
from elvwatch.probes.base import Check, Credential, Observation, Reason, Secret, Status, Target
from elvwatch.probes.snmp import probe_snmp
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_session import close_engine
from elvwatch.rules.state import StateTracker
from tests.helpers import Memories
from tests.snmp_agents import COMMUNITY, V3_USERS, Agent, relay, running_snmpd

FIXTURES = Path(__file__).parent / "fixtures" / "snmp"


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Agent]:
    with running_snmpd() as agent:
        yield agent


@pytest.fixture(scope="module")
def lab() -> Iterator[SnmpLab]:
    with SnmpLab(recordings=sorted(FIXTURES.glob("*.snmprec"))) as running:
        yield running


# Each test's polls of a device remember what earlier ones saw, as in the daemon.
MEMORIES = Memories()


@pytest.fixture(autouse=True)
async def _engine() -> AsyncIterator[None]:
    MEMORIES.clear()
    yield
    await close_engine()  # the engine's UDP socket belongs to this test's loop


def community(name: str) -> Credential:
    return Credential("c", secrets={"community": Secret(name)})


def v3(user: str, auth: str, priv: str | None, auth_key: str | None = None,
       priv_key: str | None = None) -> Credential:
    _, real_auth_key, _, real_priv_key = V3_USERS[user]
    secrets = {"auth_key": Secret(auth_key or real_auth_key)}
    settings = {"auth_protocol": auth}
    if priv:
        secrets["priv_key"] = Secret(priv_key or real_priv_key or "")
        settings["priv_protocol"] = priv
    return Credential("v3", user, secrets=secrets, settings=settings)


async def probe(agent: Agent | SnmpLab, credential: Credential, kind: str = "",
                timeout: float = 5.0, device: str = "dev", **params: str) -> Observation:
    target = Target(device=device, host=agent.host, kind=kind, credential=credential)
    check = Check("snmp", "snmp", timeout=timeout, port=agent.port, params=params,
                  options=SnmpOptions.model_validate(params))
    with MEMORIES.of(device):
        return await probe_snmp(target, check)


async def test_v2c_reads_uptime_identity_and_ports_from_snmpd(snmpd: Agent) -> None:
    obs = await probe(snmpd, community(COMMUNITY), kind="switch")
    assert obs.status is Status.OK, obs.error
    assert obs.info["vendor"] == "net-snmp"
    assert obs.values["snmp.uptime_seconds"] >= 0
    lo = labelled.join("snmp.if.oper_up", {"ifindex": "1", "port": "lo"})
    assert obs.values[lo] == 1.0


@pytest.mark.parametrize(("user", "auth", "priv"), [
    ("elv-sha256-aes128", "sha256", "aes128"),
    ("elv-sha512-aes256", "sha512", "aes256"),
    ("elv-sha1-auth", "sha", None),
])
async def test_v3_users_read_snmpd(snmpd: Agent, user: str, auth: str,
                                   priv: str | None) -> None:
    obs = await probe(snmpd, v3(user, auth, priv), version="3", profiles="system")
    assert obs.status is Status.OK, obs.error
    assert obs.values["snmp.uptime_seconds"] >= 0


@pytest.mark.parametrize(("credential", "what"), [
    (v3("elv-sha256-aes128", "sha256", "aes128", auth_key="wrong-auth-key"), "auth key"),
    (v3("elv-sha256-aes128", "sha256", "aes128", priv_key="wrong-priv-key"), "priv key"),
    (Credential("v3", "nobody", secrets={"auth_key": Secret("whatever-key")},
                settings={"auth_protocol": "sha256"}), "user"),
])
async def test_v3_wrong_credentials_are_down_for_authentication(
        snmpd: Agent, credential: Credential, what: str) -> None:
    started = time.monotonic()
    obs = await probe(snmpd, credential, version="3", timeout=3.0, device=f"wrong-{what}")
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("authentication"), obs.error
    assert obs.reason is Reason.AUTH
    assert time.monotonic() - started < 3.0


async def test_v2c_wrong_community_is_down_within_the_timeout(snmpd: Agent) -> None:
    started = time.monotonic()
    obs = await probe(snmpd, community("not-the-community"), timeout=1.5)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("timeout")
    assert obs.reason is Reason.TIMEOUT
    assert "not-the-community" not in obs.error
    assert time.monotonic() - started < 1.5


async def test_axis_camera_identified_from_sysdescr_without_uptime(lab: SnmpLab) -> None:
    obs = await probe(lab, community("axis-camera-sysdescr-only"), kind="camera")
    assert obs.status is Status.OK, obs.error
    assert (obs.info["vendor"], obs.info["model"], obs.info["firmware"]) == (
        "Axis", "M3044-V", "6.50.2.3")
    # No sysUpTime: neither an uptime nor a reboot flag is made up.
    assert "snmp.uptime_seconds" not in obs.values
    assert "snmp.rebooted" not in obs.values
    assert "system" in str(obs.values["snmp.missing"])


async def test_hikvision_camera_identified_from_its_private_mib_alone(lab: SnmpLab) -> None:
    obs = await probe(lab, community("hikvision-camera"), kind="camera")
    assert obs.status is Status.OK, obs.error
    assert obs.info["vendor"] == "Hikvision"
    assert obs.info["model"] == "DS-2CD2T47G2-L"
    assert obs.info["firmware"] == "V5.7.3 build 220112"


async def test_eaton_ups_recording_yields_battery_values(lab: SnmpLab) -> None:
    obs = await probe(lab, community("eaton-9PX-partial-walk"), kind="ups")
    assert obs.status is Status.OK, obs.error
    assert obs.info["model"] == "Eaton 9PX 2200i RT 3U"
    assert obs.values["snmp.ups.battery_charge_ratio"] == 1.0
    assert obs.values["snmp.ups.battery_runtime_seconds"] == 17218.0
    assert obs.values["snmp.ups.on_battery"] == 0.0
    assert obs.values[labelled.join("snmp.ups_input.voltage_volts", {"line": "1"})] == 243.0
    # RFC 1628 is not in this recording (listed missing, not read as 0); the
    # battery-low state comes from the MGE MIB's upsmgBatteryLowBattery flag instead.
    assert "profile ups" in str(obs.values["snmp.missing"])
    assert obs.values["snmp.ups.battery_low"] == 0.0


async def test_switch_port_down_is_seen_on_that_port_only(lab: SnmpLab) -> None:
    before = await probe(lab, community("lab-switch"), kind="switch", device="sw1")
    port3 = labelled.join("snmp.if.oper_up", {"ifindex": "3", "port": "ge1/0/3"})
    poe3 = labelled.join("snmp.poe.delivering", {"port_index": "1.3"})
    assert before.values[port3] == 1.0 and before.values[poe3] == 1.0
    lab.inject("lab-switch", "port_down", 3)
    try:
        after = await probe(lab, community("lab-switch"), kind="switch", device="sw1")
    finally:
        lab.clear("lab-switch")
    assert after.values[port3] == 0.0
    assert after.values[poe3] == 0.0
    port2 = labelled.join("snmp.if.oper_up", {"ifindex": "2", "port": "ge1/0/2"})
    assert after.values[port2] == 1.0


async def test_disk_failed_and_disk_missing_are_different_observations(lab: SnmpLab) -> None:
    first = await probe(lab, community("lab-nvr"), kind="nvr", device="nvr1")
    assert first.status is Status.OK, first.error
    assert sum(1 for k in first.values if k.startswith("snmp.disk.present")) == 3
    lab.inject("lab-nvr", "disk_failed", 1)
    lab.inject("lab-nvr", "disk_removed", 2)
    try:
        second = await probe(lab, community("lab-nvr"), kind="nvr", device="nvr1")
    finally:
        lab.clear("lab-nvr")
    assert second.status is Status.DEGRADED
    assert second.values[labelled.join("snmp.disk.failed",
                                       {"index": "1537", "name": "HDD1"})] == 1.0
    assert second.values[labelled.join("snmp.disk.present", {"index": "1538"})] == 0.0
    assert second.values[labelled.join("snmp.disk.present", {"index": "1539"})] == 1.0
    assert second.error is not None
    assert "disk failed (HDD1)" in second.error and "disk 1538 missing" in second.error


async def test_ups_on_battery_degrades_the_check(lab: SnmpLab) -> None:
    lab.inject("lab-ups", "on_battery")
    try:
        obs = await probe(lab, community("lab-ups"), kind="ups", device="ups1")
    finally:
        lab.clear("lab-ups")
    assert obs.status is Status.DEGRADED
    assert obs.values["snmp.ups.on_battery"] == 1.0
    assert obs.error == "UPS on battery"


async def test_uptime_drop_flags_a_reboot_once(lab: SnmpLab) -> None:
    first = await probe(lab, community("lab-ups"), kind="ups", device="ups-reboot")
    assert "snmp.rebooted" not in first.values  # nothing to compare with yet
    lab.inject("lab-ups", "reboot")
    try:
        second = await probe(lab, community("lab-ups"), kind="ups", device="ups-reboot")
        third = await probe(lab, community("lab-ups"), kind="ups", device="ups-reboot")
    finally:
        lab.clear("lab-ups")
    assert second.values["snmp.rebooted"] == 1.0
    assert third.values["snmp.rebooted"] == 0.0


async def test_agent_stopping_mid_walk_ends_with_timeout_inside_the_check(
        snmpd: Agent) -> None:
    async with relay(snmpd, forward=2) as (agent, _):
        started = time.monotonic()
        obs = await probe(agent, community(COMMUNITY), kind="switch", timeout=2.0)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("timeout")
    assert time.monotonic() - started < 2.0


async def test_agent_answering_garbage_ends_with_clear_error_inside_the_check(
        snmpd: Agent) -> None:
    async with relay(snmpd, forward=0, garbage=True) as (agent, relay_state):
        started = time.monotonic()
        obs = await probe(agent, community(COMMUNITY), timeout=1.5)
    assert relay_state.requests >= 1
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("timeout")
    assert time.monotonic() - started < 1.5


async def test_walk_stops_at_max_rows(snmpd: Agent) -> None:
    obs = await probe(snmpd, community(COMMUNITY), profiles="if", max_rows="1")
    ports = {labelled.split(k)[1]["ifindex"] for k in obs.values if k.startswith("snmp.if.")}
    assert ports == {"1"}


async def test_adhoc_snmp_url_probes_and_keeps_the_community_out_of_the_name(
        snmpd: Agent) -> None:
    adhoc = parse_target(f"snmp://{COMMUNITY}@{snmpd.host}:{snmpd.port}?kind=switch")
    assert COMMUNITY not in adhoc.target.device
    [obs] = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
    assert obs.status is Status.OK, obs.error
    assert COMMUNITY not in repr(obs)


async def test_adhoc_snmpv3_url_takes_keys_from_the_environment(
        snmpd: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    _, auth_key, _, priv_key = V3_USERS["elv-sha256-aes128"]
    monkeypatch.setenv("ELVWATCH_SNMP_AUTH_KEY", auth_key)
    monkeypatch.setenv("ELVWATCH_SNMP_PRIV_KEY", priv_key or "")
    adhoc = parse_target(f"snmpv3://elv-sha256-aes128@{snmpd.host}:{snmpd.port}"
                         "?auth=sha256&priv=aes128&profiles=system", env=os.environ)
    [obs] = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
    assert obs.status is Status.OK, obs.error


def test_options_reject_unknown_params() -> None:
    with pytest.raises(ValidationError):
        SnmpOptions.model_validate({"community": "public"})
    assert SnmpOptions.model_validate({"version": 2, "profiles": "if, poe"}) == SnmpOptions(
        version="2c", profiles=("if", "poe"))


def test_labelled_names_round_trip_untrusted_text() -> None:
    name = labelled.join("snmp.if.oper_up", {"ifindex": "7", "port": 'evil"},x="1\\'})
    assert labelled.split(name) == ("snmp.if.oper_up", {"ifindex": "7",
                                                        "port": 'evil"},x="1\\'})
    assert labelled.split("snmp.uptime_seconds") == ("snmp.uptime_seconds", {})


async def test_concurrent_checks_share_one_engine(lab: SnmpLab) -> None:
    results = await asyncio.gather(*(
        probe(lab, community(name), kind=kind, device=f"c{i}")
        for i, (name, kind) in enumerate([("lab-switch", "switch"), ("lab-nvr", "nvr"),
                                          ("lab-ups", "ups")] * 3)))
    assert all(r.status is Status.OK for r in results), [r.error for r in results]


async def test_port_values_become_labelled_prometheus_series(lab: SnmpLab) -> None:
    obs = await probe(lab, community("lab-switch"), kind="switch", device="sw-metrics")
    tracker = StateTracker()
    tracker.configure([("sw-metrics", ["snmp"])])
    tracker.observe(obs)
    labels = [DeviceLabels("sw-metrics", "s1", "network", "switch")]
    snap = Snapshot(devices=[(lab_, tracker.devices[lab_.device]) for lab_ in labels],
                    scheduler=SchedulerStats(), lag_buckets=LAG_BUCKETS, jobs=1,
                    reload_ok=True, reload_time=1.0, store_pending=0, store_errors=0)
    body = render(families(snap))
    series = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    key = ("elvwatch_snmp_if_oper_up", tuple(sorted({
        "site": "s1", "system": "network", "device": "sw-metrics", "kind": "switch",
        "check": "snmp", "ifindex": "3", "port": "ge1/0/3"}.items())))
    assert series[key] == 1.0
    promtool = await asyncio.create_subprocess_exec(
        "promtool", "check", "metrics", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(promtool.communicate(body), 30)
    assert promtool.returncode == 0, output.decode()


async def test_unresolvable_host_is_down_not_a_crash() -> None:
    target = Target(device="nowhere", host="no-such-host.invalid", credential=community("x"))
    obs = await probe_snmp(target, Check("snmp", "snmp", timeout=2.0))
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("address")


def test_options_reject_unknown_profiles() -> None:
    with pytest.raises(ValidationError, match="unknown SNMP profile"):
        SnmpOptions.model_validate({"profiles": "system,nosuch"})


async def test_a_get_too_big_for_a_small_agent_is_asked_in_halves(snmpd: Agent) -> None:
    async with relay(snmpd, forward=10**6, max_varbinds=4) as (agent, relay_state):
        obs = await probe(agent, community(COMMUNITY), kind="camera", device="small-agent")
    assert relay_state.too_big >= 1
    assert obs.status is Status.OK, obs.error
    assert obs.info["vendor"] == "net-snmp"
    assert obs.values["snmp.uptime_seconds"] >= 0
