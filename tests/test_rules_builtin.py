"""Every built-in rule fires and clears on observations carrying its documented values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

from elvwatch.probes.base import Reason, Status
from elvwatch.rules.faults import FaultState, fingerprint
from elvwatch.rules.model import build_rules, load_builtin_configs
from tests.rulekit import device, engine, ob

DOWN, OK = Status.DOWN, Status.OK


class Case(NamedTuple):
    kind: str
    system: str
    check: str          # check name; its type is the same
    bad: dict[str, float | str]
    good: dict[str, float | str]
    status_bad: Status = OK
    state_bad: str = "up"
    info_bad: dict[str, str] | None = None
    info_good: dict[str, str] | None = None
    error: str | None = None
    reason: Reason | None = None


CASES: dict[str, Case] = {
    "device_unreachable": Case("camera", "cctv", "icmp", {}, {}, DOWN, "down"),
    "site_not_reporting": Case("site_link", "network", "poller_link", {}, {}, DOWN, "unknown"),
    "device_rebooted": Case("switch", "network", "snmp", {"snmp.rebooted": 1},
                            {"snmp.rebooted": 0}),
    "snmp_monitoring_blind": Case(
        "nvr", "cctv", "snmp", {"snmp.blind": 1, "snmp.blind_reason": "NVR disks not readable"},
        {"snmp.blind": 0}, Status.DEGRADED),
    "mqtt_stale": Case("access_panel", "access_control", "mqtt", {"mqtt.age_seconds": 900},
                       {"mqtt.age_seconds": 4}, DOWN, error="stale: no message for 900s",
                       reason=Reason.STALE),
    "onvif_auth_failed": Case("camera", "cctv", "onvif", {"onvif.auth_hold_seconds": 60},
                              {"onvif.clock_offset_seconds": 0.1}, DOWN,
                              error="authentication: the camera rejected the credentials",
                              reason=Reason.AUTH),
    "stream_down": Case("camera", "cctv", "rtsp", {}, {}, DOWN),
    "clock_drift": Case("camera", "cctv", "onvif", {"onvif.clock_offset_seconds": -125.0},
                        {"onvif.clock_offset_seconds": 0.4}),
    "camera_tamper": Case("camera", "cctv", "onvif", {"onvif.tamper": 1}, {"onvif.tamper": 0}),
    "video_loss": Case("camera", "cctv", "onvif", {"onvif.signal_loss": 1},
                       {"onvif.signal_loss": 0}),
    "recording_stopped": Case("nvr", "cctv", "onvif", {"onvif.recordings_stopped": 3},
                              {"onvif.recordings_stopped": 0}),
    "nvr_disk_failed": Case("nvr", "cctv", "snmp",
                            {'snmp.disk.failed{index="1",name="sda"}': 0,
                             'snmp.disk.failed{index="2",name="sdb"}': 1},
                            {'snmp.disk.failed{index="1",name="sda"}': 0,
                             'snmp.disk.failed{index="2",name="sdb"}': 0}),
    "nvr_disk_full": Case("nvr", "cctv", "onvif_events", {"onvif.storage_full": 1},
                          {"onvif.storage_full": 0}),
    "camera_replaced": Case("camera", "cctv", "onvif", {}, {}, info_bad={"serial": "SN-NEW"},
                            info_good={"serial": "SN-ARCHIVE"}),
    "switch_port_down": Case("switch", "network", "snmp",
                             {'snmp.poe.lost{port_index="1.7"}': 1,
                              'snmp.poe.lost{port_index="1.8"}': 0},
                             {'snmp.poe.lost{port_index="1.7"}': 0,
                              'snmp.poe.lost{port_index="1.8"}': 0}),
    "switch_poe_fault": Case("switch", "network", "snmp", {'snmp.poe.fault{port_index="1.3"}': 1},
                             {'snmp.poe.fault{port_index="1.3"}': 0}),
    # Derived from the switch's poll onto a camera with ``uplink`` (probes/snmp_uplink.py).
    "uplink_port_down": Case("camera", "cctv", "uplink",
                             {"snmp.uplink.oper_up": 0, "snmp.uplink.poe_lost": 1},
                             {"snmp.uplink.oper_up": 1, "snmp.uplink.poe_lost": 0},
                             Status.DEGRADED),
    "ups_on_battery": Case("ups", "power", "snmp", {"snmp.ups.on_battery": 1},
                           {"snmp.ups.on_battery": 0}),
    "ups_battery_low": Case("ups", "power", "snmp", {"snmp.ups.battery_low": 1},
                            {"snmp.ups.battery_low": 0}),
    "alarm_ac_fail": Case("alarm_panel", "alarm", "modbus", {"modbus.ac_fail": 1},
                          {"modbus.ac_fail": 0}),
    "alarm_battery_low": Case("alarm_panel", "alarm", "modbus", {"modbus.battery_low": 1},
                              {"modbus.battery_low": 0}),
    "alarm_tamper": Case("alarm_panel", "alarm", "modbus", {"modbus.tamper": 1},
                         {"modbus.tamper": 0}),
    "alarm_comm_fault": Case("alarm_panel", "alarm", "modbus",
                             {"modbus.communicator_fault": 1},
                             {"modbus.communicator_fault": 0}),
    "alarm_bus_fault": Case("alarm_panel", "alarm", "mqtt", {"mqtt.bus_fault": 1},
                            {"mqtt.bus_fault": 0}),
    "alarm_partition_alarm": Case("alarm_panel", "alarm", "mqtt",
                                  {'mqtt.partition.alarm{partition="Area_1"}': 0,
                                   'mqtt.partition.alarm{partition="Garage"}': 1},
                                  {'mqtt.partition.alarm{partition="Area_1"}': 0,
                                   'mqtt.partition.alarm{partition="Garage"}': 0}),
    "alarm_zone_alarm": Case("alarm_panel", "alarm", "mqtt",
                             {'mqtt.zone.alarm{zone="Front_door"}': 1},
                             {'mqtt.zone.alarm{zone="Front_door"}': 0}),
    "alarm_zone_tamper": Case("alarm_panel", "alarm", "mqtt",
                              {'mqtt.zone.tamper{zone="Hall_PIR"}': 1},
                              {'mqtt.zone.tamper{zone="Hall_PIR"}': 0}),
    "alarm_zone_trouble": Case("alarm_panel", "alarm", "mqtt", {"mqtt.zone_trouble": 1},
                               {"mqtt.zone_trouble": 0}),
    "alarm_zone_low_battery": Case("alarm_panel", "alarm", "mqtt",
                                   {'mqtt.zone.low_battery{zone="Window_3"}': 1},
                                   {'mqtt.zone.low_battery{zone="Window_3"}': 0}),
    "alarm_zone_supervision_lost": Case("alarm_panel", "alarm", "mqtt",
                                        {'mqtt.zone.supervision_lost{zone="Window_3"}': 1},
                                        {'mqtt.zone.supervision_lost{zone="Window_3"}': 0}),
    "frigate_camera_no_frames": Case("camera", "cctv", "mqtt", {"mqtt.camera_fps": 0.0},
                                     {"mqtt.camera_fps": 5.0}),
    "frigate_camera_missing": Case("camera", "cctv", "mqtt", {"mqtt.camera_in_stats": 0},
                                   {"mqtt.camera_in_stats": 1}),
    "sensor_battery_low": Case("access_panel", "access_control", "mqtt",
                               {"mqtt.battery_percent": 7}, {"mqtt.battery_percent": 80}),
    "mqtt_topics_missing": Case("alarm_panel", "alarm", "mqtt", {"mqtt.missing": 3},
                                {"mqtt.missing": 0}),
    "door_forced": Case("access_panel", "access_control", "mqtt", {"mqtt.forced": 1},
                        {"mqtt.forced": 0}),
    "door_held_open": Case("access_panel", "access_control", "mqtt", {"mqtt.held_open": 1},
                           {"mqtt.held_open": 0}),
    "intercom_unregistered": Case("door_station", "intercom", "sip", {"sip.registered": 0},
                                  {"sip.registered": 1}),
    "alarm_bell_fault": Case("alarm_panel", "alarm", "modbus", {"modbus.siren_fault": 1},
                             {"modbus.siren_fault": 0}),
    "alarm_rf_jamming": Case("alarm_panel", "alarm", "mqtt", {"mqtt.rf_jamming": 1},
                             {"mqtt.rf_jamming": 0}),
    "alarm_power_output_fault": Case("alarm_panel", "alarm", "mqtt",
                                     {'mqtt.module.power_output_fault{module="APR3-PS20"}': 1},
                                     {"mqtt.power_output_fault": 0}),
    "alarm_panel_hardware_fault": Case("alarm_panel", "alarm", "mqtt", {"mqtt.hardware_fault": 1},
                                       {"mqtt.hardware_fault": 0}),
    "alarm_clock_lost": Case("alarm_panel", "alarm", "mqtt", {"mqtt.clock_lost": 1},
                             {"mqtt.clock_lost": 0}),
    "frigate_recording_stalled": Case("camera", "cctv", "mqtt",
                                      {"mqtt.camera_recording_offline": 1},
                                      {"mqtt.camera_recording_offline": 0}),
    "camera_storage_failed": Case("camera", "cctv", "snmp",
                                  {'snmp.camera_storage.lost{index="1"}': 1,
                                   'snmp.camera_storage.lost{index="2"}': 0},
                                  {'snmp.camera_storage.lost{index="1"}': 0,
                                   'snmp.camera_storage.lost{index="2"}': 0}),
    "camera_hardware_fault": Case("camera", "cctv", "snmp",
                                  {'snmp.camera_fan.ok{fan="1"}': 0},
                                  {'snmp.camera_fan.ok{fan="1"}': 1}),
    "nvr_device_fault": Case("nvr", "cctv", "snmp", {"snmp.device_ok": 0},
                             {"snmp.device_ok": 1}),
    "nvr_channel_offline": Case("nvr", "cctv", "snmp",
                                {'snmp.channel.online{index="2",name="Car park B2"}': 0},
                                {'snmp.channel.online{index="2",name="Car park B2"}': 1}),
    "nvr_disk_warning": Case("nvr", "cctv", "snmp", {'snmp.disk.warning{index="1"}': 1},
                             {'snmp.disk.warning{index="1"}': 0}),
    "switch_hardware_fault": Case("switch", "network", "snmp",
                                  {'snmp.sensor.ok{sensor="1012",name="Fan 2"}': 0},
                                  {'snmp.sensor.ok{sensor="1012",name="Fan 2"}': 1}),
    "switch_stack_degraded": Case("switch", "network", "snmp",
                                  {'snmp.stack_port.lost{port_index="1.2"}': 1},
                                  {'snmp.stack_port.lost{port_index="1.2"}': 0}),
    "ups_battery_replace": Case("ups", "power", "snmp", {"snmp.ups.battery_replace": 1},
                                {"snmp.ups.battery_replace": 0}),
    "ups_battery_fault": Case("ups", "power", "snmp", {"snmp.ups.charger_fault": 1},
                              {"snmp.ups.charger_fault": 0}),
    "ups_on_bypass": Case("ups", "power", "snmp", {"snmp.ups.on_bypass": 1},
                          {"snmp.ups.on_bypass": 0}),
    "ups_output_off": Case("ups", "power", "modbus", {"modbus.output_source_label": "off"},
                           {"modbus.output_source_label": "normal"}),
    "ups_overload": Case("ups", "power", "modbus", {"modbus.load_ratio": 0.97},
                         {"modbus.load_ratio": 0.4}),
    "ups_over_temperature": Case("ups", "power", "snmp", {"snmp.ups.over_temperature": 1},
                                 {"snmp.ups.over_temperature": 0}),
    "ups_fault": Case("ups", "power", "modbus", {"modbus.internal_fault": 1},
                      {"modbus.internal_fault": 0}),
    "mains_out_of_range": Case("power_meter", "power", "modbus", {"modbus.voltage_volts": 187.0},
                               {"modbus.voltage_volts": 229.0}),
}


# The panel troubles a Modbus gateway and an MQTT bridge both report: the same rule.
MQTT_TWINS = {"alarm_ac_fail": "mqtt.ac_fail", "alarm_battery_low": "mqtt.battery_low",
              "alarm_tamper": "mqtt.tamper", "alarm_comm_fault": "mqtt.communicator_fault"}


def test_every_builtin_rule_has_a_case() -> None:
    assert sorted(CASES) == sorted(r.id for r in load_builtin_configs())


def _cases() -> list[tuple[str, Case]]:
    out = [(rule_id, CASES[rule_id]) for rule_id in sorted(CASES)]
    for rule_id, name in MQTT_TWINS.items():
        out.append((rule_id, CASES[rule_id]._replace(check="mqtt", bad={name: 1},
                                                     good={name: 0})))
    return out


@pytest.mark.parametrize(("rule_id", "case"), _cases(),
                         ids=[f"{r}-{c.check}" for r, c in _cases()])
def test_builtin_rule_fires_after_its_confirm_count_and_clears_after_its_clear_count(
        rule_id: str, case: Case) -> None:
    rule = next(r for r in build_rules() if r.id == rule_id)
    assert rule.for_polls is not None and rule.clear_polls is not None
    spec = device("dev-1", case.kind, case.system, {case.check: case.check},
                  serial="SN-ARCHIVE")
    eng, clock = engine([spec])
    seen = []

    def feed(bad: bool) -> list[tuple[str, FaultState, FaultState]]:
        clock.advance(60)
        obs = ob("dev-1", case.check, case.status_bad if bad else OK,
                 case.bad if bad else case.good, case.info_bad if bad else case.info_good,
                 error=case.error if bad else None, reason=case.reason if bad else None)
        out = eng.observe(obs, case.state_bad if bad else "up")
        seen.extend(out)
        return [(t.rule, t.previous, t.state) for t in out]

    assert feed(False) == [] and feed(False) == []
    for poll in range(1, rule.for_polls + 1):
        got = feed(True)
        if poll < rule.for_polls:
            assert all(state is FaultState.PENDING for _, _, state in got), got
        else:
            assert (rule_id, FaultState.FIRING) in [(r, s) for r, _, s in got], got
    fired = [t for t in seen if t.state is FaultState.FIRING]
    assert [t.rule for t in fired] == [rule_id]  # no other built-in rule reacted
    assert fired[0].fingerprint == fingerprint("s1", "dev-1", rule_id)
    assert fired[0].severity == rule.severity.value and fired[0].name_zh and fired[0].name_en
    for poll in range(1, rule.clear_polls + 1):
        got = feed(False)
        if poll < rule.clear_polls:
            assert got == []
        else:
            assert got == [(rule_id, FaultState.FIRING, FaultState.CLEARED)]


def test_every_value_name_a_builtin_rule_reads_is_documented() -> None:
    readme = (Path(__file__).parent.parent / "rules" / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+|status|state|error|reason|check)`",
                                readme))
    read = {name for rule in build_rules() for name in rule.condition.names}
    assert read - documented == set()


def test_stream_down_reads_the_onvif_checks_describe_but_not_its_other_failures() -> None:
    spec = device("cam-1", "camera", "cctv", {"onvif": "onvif"})
    eng, clock = engine([spec])

    def poll(error: str, reason: Reason) -> list[tuple[str, FaultState]]:
        clock.advance(60)
        return [(t.rule, t.state) for t in
                eng.observe(ob("cam-1", "onvif", DOWN, error=error, reason=reason), "up")]

    refused = [poll("authentication: the camera rejected the credentials", Reason.AUTH)
               for _ in range(3)]
    assert ("stream_down", FaultState.FIRING) not in [t for out in refused for t in out]
    no_stream = [poll("no stream: rtsp: stream not found (404)", Reason.NO_STREAM)
                 for _ in range(3)]
    assert ("stream_down", FaultState.FIRING) in no_stream[-1]
    assert ("stream_down", FaultState.FIRING) not in no_stream[0] + no_stream[1]
