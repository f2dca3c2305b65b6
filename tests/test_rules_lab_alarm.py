"""Alarm-panel and Frigate faults read over MQTT open tickets through the real daemon.

One daemon (``RulesApp``: the App as wired, its rule engine's transitions recorded) for
the module watches, over a Mosquitto the test starts, two Paradox panels behind
simulated PAI bridges (``lab.mqtt_bridges.PaiBridge``: an EVO and a Spectra SP, each
publishing PAI's own topics and property names), a Frigate publishing stats for two
cameras, and one zone watched with the profile of the wrong panel family.  Each test
injects one fault in a bridge, waits for that rule's exact fingerprint to fire with its
ticket's severity, removes the fault and waits for it to clear."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import yaml

from elvwatch.config.loading import load_config
from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.lab.mqtt import SimDevice
from elvwatch.lab.mqtt_bridges import FrigateStats, PaiBridge
from elvwatch.rules.faults import fingerprint
from tests.helpers import until
from tests.rules_daemon import (
    RulesApp,
    clears,
    faults_of,
    fires,
    mqtt_lab_config,
    open_faults,
    tickets,
)

pytestmark = [
    pytest.mark.skipif(not MosquittoServer.available(),
                       reason="needs the Debian package mosquitto (see .ci/run)"),
    pytest.mark.asyncio(loop_scope="module"),
]

SITE = "lab"
MQ_USER, MQ_PASSWORD = "elv", "mq-pw-for-the-alarm-lab"
ZONES = ("Front_door", "Hall_PIR")


@dataclass
class Lab:
    app: RulesApp
    evo: PaiBridge
    sp: PaiBridge
    frigate: FrigateStats
    broker: MosquittoServer


def _mqtt(topic: str, profile: str, **params: Any) -> dict[str, Any]:
    return {"type": "mqtt", "name": "bridge", "interval": 0.5, "timeout": 0.5,
            "params": {"topic": topic, "profile": profile, **params}}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    tmp = tmp_path_factory.mktemp("rules-alarm")
    (tmp / "mq-password").write_text(MQ_PASSWORD + "\n", encoding="utf-8")
    login = {"username": MQ_USER, "password": MQ_PASSWORD}
    async with MosquittoServer(users={MQ_USER: MQ_PASSWORD}) as broker:
        evo = PaiBridge(broker.host, broker.port, "evo", base="site/evo", zones=ZONES,
                        **login)
        sp = PaiBridge(broker.host, broker.port, "sp", base="site/sp", zones=ZONES,
                       partitions=("Area_1", "Garage"), numeric=True, **login)
        frigate = FrigateStats(broker.host, broker.port, {"gate": 5.0, "lobby": 15.0},
                               interval=0.3, health=True, **login)
        data = mqtt_lab_config(tmp, broker, MQ_USER, "elvwatch-alarm", interval=0.5,
                               site=SITE, devices=[
                {"id": "panel-evo", "site": SITE, "kind": "alarm_panel", "host": "127.0.0.1",
                 "name": "1号楼报警主机", "checks": [
                     _mqtt("site/evo", "paradox_pai_evo_panel", expect_seconds=1)]},
                {"id": "panel-sp", "site": SITE, "kind": "alarm_panel", "host": "127.0.0.1",
                 "name": "车库报警主机", "checks": [
                     _mqtt("site/sp", "paradox_pai_sp_panel", expect_seconds=1)]},
                {"id": "cam-gate", "site": SITE, "kind": "camera", "host": "127.0.0.1",
                 "checks": [_mqtt("frigate", "frigate", key="gate", expect_seconds=2)]},
                {"id": "contact-z", "site": SITE, "kind": "alarm_panel",
                 "host": "127.0.0.1", "checks": [
                     _mqtt("zigbee2mqtt/{device}", "zigbee2mqtt")]},
                # An SP panel's zone watched with the EVO zone profile: some of its
                # expected topics never come.
                {"id": "zone-wrong", "site": SITE, "kind": "alarm_panel", "host": "127.0.0.1",
                 "checks": [_mqtt("site/sp", "paradox_pai_evo_zone", key="Hall_PIR",
                                  expect_seconds=1)]},
            ])
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        app = RulesApp(load_config(path))
        try:
            for bridge in (evo, sp, frigate):
                await bridge.start()
            await app.start()
            devices = app.tracker.devices
            await until(lambda: all(devices[d].state.value == "up"
                                       for d in ("panel-evo", "panel-sp", "cam-gate")),
                        what="both panels and the camera up")
            await until(lambda: set(open_faults(app.transitions)) ==
                        {fingerprint(SITE, "zone-wrong", "mqtt_topics_missing")},
                        what="only the mismatched zone's fault")
            yield Lab(app, evo, sp, frigate, broker)
        finally:
            await app.stop()
            for bridge in (evo, sp, frigate):
                await bridge.close()


async def _ticketed(lab: Lab, device: str, rule: str, severity: str) -> None:
    await fires(lab, device, rule)
    found = await tickets(lab, device, lambda t: any(x.rule == rule and x.fault_active
                                                     for x in t), f"{rule} ticket")
    ticket = next(t for t in found if t.rule == rule and t.fault_active)
    assert (ticket.severity, ticket.fingerprint) == (severity, fingerprint(SITE, device, rule))


CASES = [
    # (device, rule, severity, how to raise, how to end)
    ("panel-evo", "alarm_ac_fail", "major", ("trouble", "ac_trouble")),
    ("panel-sp", "alarm_ac_fail", "major", ("trouble", "ac_failure_trouble")),
    ("panel-sp", "alarm_battery_low", "general", ("trouble", "low_battery_trouble")),
    ("panel-evo", "alarm_battery_low", "general", ("trouble", "module_battery_fail")),
    ("panel-evo", "alarm_tamper", "emergency", ("trouble", "panel_tamper_trouble")),
    ("panel-sp", "alarm_comm_fault", "major",
     ("trouble", "central_1_reporting_ftc_indicator_trouble")),
    ("panel-evo", "alarm_comm_fault", "major", ("trouble", "fail_central_2_trouble")),
    ("panel-evo", "alarm_bus_fault", "major", ("trouble", "missing_keypad_trouble")),
    ("panel-sp", "alarm_partition_alarm", "emergency", ("partition", "Garage", "silent_alarm")),
    ("panel-evo", "alarm_partition_alarm", "emergency", ("partition", "Area_1", "fire_alarm")),
    ("panel-evo", "alarm_zone_tamper", "emergency", ("zone", "Front_door", "tamper")),
    ("panel-sp", "alarm_zone_low_battery", "general",
     ("zone", "Hall_PIR", "rf_low_battery_trouble")),
    ("panel-evo", "alarm_zone_supervision_lost", "major",
     ("zone", "Hall_PIR", "supervision_trouble")),
    ("panel-evo", "alarm_zone_trouble", "major", ("trouble", "zone_fault_trouble")),
    # Sub-devices: one module's, repeater's, keypad's or output's trouble is the panel's.
    ("panel-evo", "alarm_ac_fail", "major", ("sub_device", "bus-module", "Module_2", "ac_trouble")),
    ("panel-evo", "alarm_bus_fault", "major", ("sub_device", "bus-module", "Module_2", "missing")),
    ("panel-sp", "alarm_bus_fault", "major",
     ("sub_device", "repeaters", "Module_1", "supervision_trouble")),
    ("panel-sp", "alarm_battery_low", "general",
     ("sub_device", "keypads", "Module_2", "battery_failure_trouble")),
    ("panel-sp", "alarm_tamper", "emergency", ("sub_device", "outputs", "Module_1", "tamper")),
    ("panel-evo", "alarm_panel_hardware_fault", "major",
     ("sub_device", "bus-module", "Module_1", "rom_error")),
    # The troubles read since: siren, jamming, auxiliary power, clock, panel-wide zone flags.
    ("panel-sp", "alarm_bell_fault", "major", ("trouble", "bell_output_disconnected_trouble")),
    ("panel-evo", "alarm_bell_fault", "major", ("trouble", "bell_absent_trouble")),
    ("panel-sp", "alarm_rf_jamming", "major", ("trouble", "rf_interference_trouble")),
    ("panel-evo", "alarm_power_output_fault", "major", ("trouble", "aux_limit_trouble")),
    ("panel-evo", "alarm_clock_lost", "general", ("trouble", "time_lost_trouble")),
    ("panel-sp", "alarm_zone_tamper", "emergency", ("trouble", "zone_tamper_trouble")),
]


@pytest.mark.parametrize(("device", "rule", "severity", "fault"), CASES,
                         ids=[f"{c[1]}-{c[0]}" for c in CASES])
async def test_panel_fault_over_mqtt_opens_a_ticket_of_its_severity_and_clears(
        lab: Lab, device: str, rule: str, severity: str, fault: tuple[str, ...]) -> None:
    bridge = lab.evo if device == "panel-evo" else lab.sp
    action = getattr(bridge, fault[0])
    await action(*fault[1:], True)
    await _ticketed(lab, device, rule, severity)
    # The panel still answers: degraded, not unreachable.
    assert lab.app.tracker.devices[device].state.value in ("up", "degraded")
    await action(*fault[1:], False)
    await clears(lab, device, rule)


async def test_zone_in_alarm_fires_and_its_partition_triggering_fires_too(lab: Lab) -> None:
    # An intrusion: the zone, then PAI's partition state.  Both are alarms in progress.
    await lab.sp.zone("Hall_PIR", "alarm", True)
    await _ticketed(lab, "panel-sp", "alarm_zone_alarm", "emergency")
    await lab.sp.partition("Area_1", "audible_alarm", True)
    await until(lambda: fingerprint(SITE, "panel-sp", "alarm_partition_alarm")
                in faults_of(lab, "panel-sp"), what="partition alarm too")
    await lab.sp.partition("Area_1", "audible_alarm", False)
    await lab.sp.zone("Hall_PIR", "alarm", False)
    await until(lambda: faults_of(lab, "panel-sp") == [], what="both cleared")


async def test_frigate_camera_without_frames_then_gone_from_stats(lab: Lab) -> None:
    lab.frigate.cameras["gate"] = 0.0
    await _ticketed(lab, "cam-gate", "frigate_camera_no_frames", "major")
    lab.frigate.cameras["gate"] = 5.0
    await clears(lab, "cam-gate", "frigate_camera_no_frames")
    del lab.frigate.cameras["gate"]
    await _ticketed(lab, "cam-gate", "frigate_camera_missing", "general")
    lab.frigate.cameras["gate"] = 5.0
    await clears(lab, "cam-gate", "frigate_camera_missing")


async def test_frigate_stream_status_tickets_and_a_camera_switched_off_does_not(
        lab: Lab) -> None:
    lab.frigate.status["gate"]["detect"] = "offline"
    await _ticketed(lab, "cam-gate", "frigate_camera_no_frames", "major")
    lab.frigate.status["gate"]["detect"] = "online"
    await clears(lab, "cam-gate", "frigate_camera_no_frames")
    lab.frigate.status["gate"]["record"] = "offline"
    await _ticketed(lab, "cam-gate", "frigate_recording_stalled", "major")
    lab.frigate.status["gate"]["record"] = "online"
    await clears(lab, "cam-gate", "frigate_recording_stalled")
    # Switched off in Frigate: no frames and its streams "disabled", on purpose.
    await lab.frigate.set_enabled("gate", False)
    lab.frigate.cameras["gate"] = 0.0
    seen = len(lab.app.transitions)
    await until(lambda: lab.app.tracker.devices["cam-gate"].checks["bridge"].last
                is not None and lab.app.tracker.devices["cam-gate"].checks["bridge"].last
                .values.get("mqtt.camera_enabled") == 0.0, what="the camera off")
    await asyncio.sleep(1.5)            # three stats cycles, two polls of each rule
    assert faults_of(lab, "cam-gate") == []
    assert [t for t in lab.app.transitions[seen:] if t.device == "cam-gate"] == []
    last = lab.app.tracker.devices["cam-gate"].checks["bridge"].last
    assert last is not None and last.status.value == "ok", last
    lab.frigate.cameras["gate"] = 5.0
    await lab.frigate.set_enabled("gate", True)


async def test_zigbee_contact_with_a_flat_battery_fires_sensor_battery_low(lab: Lab) -> None:
    pub = SimDevice(lab.broker.host, lab.broker.port, "z2m", username=MQ_USER,
                    password=MQ_PASSWORD)
    await pub.start(heartbeats=False)
    try:
        for battery in (6, 5):
            await pub.publish("zigbee2mqtt/contact-z", f'{{"contact": true, "battery": {battery}}}')
        await _ticketed(lab, "contact-z", "sensor_battery_low", "general")
        for battery in (100, 100):
            await pub.publish("zigbee2mqtt/contact-z", f'{{"contact": true, "battery": {battery}}}')
        await clears(lab, "contact-z", "sensor_battery_low")
    finally:
        await pub.close()


async def test_profile_of_the_wrong_family_tickets_missing_topics_until_they_come(
        lab: Lab) -> None:
    rule = "mqtt_topics_missing"
    assert faults_of(lab, "zone-wrong") == [fingerprint(SITE, "zone-wrong", rule)]
    (ticket,) = await tickets(lab, "zone-wrong", lambda t: len(t) == 1, "its ticket")
    assert (ticket.rule, ticket.severity) == (rule, "general")
    last = lab.app.tracker.devices["zone-wrong"].checks["bridge"].last
    assert last is not None and (last.error or "").startswith("missing: 3 expected topics")
    # The bridge starts publishing them (as an EVO's PAI would): the fault clears.
    pub = SimDevice(lab.broker.host, lab.broker.port, "late-topics", username=MQ_USER,
                    password=MQ_PASSWORD)
    await pub.start(heartbeats=False)
    try:
        for flag in ("presently_in_alarm", "low_battery", "supervision_trouble"):
            await pub.publish(f"site/sp/states/zones/Hall_PIR/{flag}", "0", retain=True)
        await clears(lab, "zone-wrong", rule)
    finally:
        await pub.close()


async def test_lab_covers_every_mqtt_alarm_rule() -> None:
    from elvwatch.rules.model import load_builtin_configs

    alarm = {r.id for r in load_builtin_configs() if r.id.startswith("alarm_")}
    covered = {c[1] for c in CASES} | {"alarm_zone_alarm"}
    assert alarm == covered
