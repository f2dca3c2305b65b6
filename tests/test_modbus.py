"""Modbus probe against a real pymodbus server (lab/modbus.py) on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes

from elvwatch.exporters.metrics import metric_name
from elvwatch.lab.modbus import Fault, ModbusLab
from elvwatch.probes import modbus
from elvwatch.probes.adhoc import parse_target, probe_all
from elvwatch.probes.base import Check, Status, Target
from elvwatch.probes.modbus import close_connections, probe_modbus
from elvwatch.probes.modbus_maps import (
    ProfileError,
    decode_block,
    load_profile,
    plan_reads,
    shipped_profiles,
)
from elvwatch.probes.modbus_options import ModbusOptions

UNITS = {"generic_alarm_panel": 1, "generic_ups": 2, "generic_power_meter": 3}
TARGET = Target("panel-1", "127.0.0.1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def lab() -> AsyncIterator[ModbusLab]:
    server = ModbusLab("127.0.0.1", _free_port())
    await server.start()
    try:
        yield server
    finally:
        await close_connections()
        await server.stop()


def _check(lab: ModbusLab, profile: str = "generic_alarm_panel", unit: int | None = None,
           timeout: float = 2.0) -> Check:
    return Check("modbus", "modbus", timeout=timeout, port=lab.port,
                 params={"profile": profile, "unit": unit or UNITS[profile]})


# Values chosen to exercise every type, sign, both words of 32-bit values and both word
# orders; each exactly representable after the map's scale.
EVERY_POINT = {
    "generic_alarm_panel": {
        "ac_fail": 1, "battery_low": 0, "tamper": 1, "communicator_fault": 1,
        "siren_fault": 0, "zones_in_alarm": 3, "zones_in_fault": 0, "armed_state": 2,
        "battery_voltage_volts": 12.34, "zone_01_alarm": 1, "zone_02_alarm": 0,
        "zone_16_alarm": 1, "zone_17_alarm": 1, "zone_32_alarm": 1,
        "uptime_seconds": 4_000_000_000, "siren_active": 1, "box_door_open": 0,
        "output_1_on": 1},
    "generic_ups": {
        "on_battery": 0, "battery_low": 0, "overload": 1, "on_bypass": 0,
        "internal_fault": 0, "battery_replace": 1, "input_voltage_volts": 229.5,
        "output_voltage_volts": 231.2, "battery_charge_ratio": 0.87,
        "battery_runtime_seconds": 70_000, "load_ratio": 0.42,
        "temperature_celsius": -12.5, "battery_voltage_volts": 26.8, "output_source": 2},
    "generic_power_meter": {
        "voltage_volts": 231.25, "current_amperes": 12.5, "active_power_watts": -1500.0,
        "power_factor": 0.5, "frequency_hertz": 50.0,
        "active_energy_import_joules": 36000.0 * 123_456_789,
        "reactive_power_vars": -2_000_000},
}


@pytest.mark.parametrize("profile", sorted(EVERY_POINT))
async def test_every_point_of_the_shipped_maps_decodes(lab: ModbusLab, profile: str) -> None:
    unit = UNITS[profile]
    await lab.set_values(unit, EVERY_POINT[profile])
    obs = await probe_modbus(TARGET, _check(lab, profile))
    expected = {f"modbus.{k}": float(v) for k, v in EVERY_POINT[profile].items()}
    got = {k: v for k, v in obs.values.items() if not k.endswith("_label")}
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-6), name


def test_shipped_maps_are_all_covered_by_the_tests() -> None:
    assert sorted(EVERY_POINT) == shipped_profiles()


def test_decoding_matches_hand_computed_registers() -> None:
    meter = load_profile("generic_power_meter")
    blocks = {b.address: b for b in plan_reads(meter)}
    # 230.0 as IEEE-754 is 0x43660000: high word first.
    assert decode_block(blocks[0], [0x4366, 0x0000], "m.").values == {"m.voltage_volts": 230.0}
    # power_factor is in the other word order: 0.5 = 0x3F000000, low word first.
    assert decode_block(blocks[30], [0x0000, 0x3F00], "m.").values == {"m.power_factor": 0.5}
    # Registers 70-75: frequency 50.0 (0x42480000), energy 100000 (0x000186A0, low word
    # first) in 0.01 kWh, reactive -120 as int32 (0xFFFFFF88).
    decoded = decode_block(blocks[70], [0x4248, 0x0000, 0x86A0, 0x0001, 0xFFFF, 0xFF88], "m.")
    assert decoded.values == {"m.frequency_hertz": 50.0,
                              "m.active_energy_import_joules": 3.6e9,
                              "m.reactive_power_vars": -120.0}
    panel = load_profile("generic_alarm_panel")
    regs = next(b for b in plan_reads(panel) if b.function == "input")
    # status 0b00101 (ac_fail, tamper); zone map 0x80010001 sent low word first.
    raw = [0b00101, 0, 1, 4, 1095, 0x0001, 0x8001, 0x0001, 0x0000]
    values = decode_block(regs, raw, "").values
    assert (values["ac_fail"], values["battery_low"], values["tamper"]) == (1.0, 0.0, 1.0)
    assert [values[f"zone_{n:02d}_alarm"] for n in (1, 2, 16, 17, 32)] == [1, 0, 0, 1, 1]
    assert values["armed_state_label"] == "fire"
    assert values["battery_voltage_volts"] == 10.95
    assert values["uptime_seconds"] == 65536.0
    assert decode_block(regs, raw, "").faults == [
        ("degraded", "AC mains power lost (panel on battery)"),
        ("degraded", "panel or siren tamper"),
        ("degraded", "zone loop fault (open or short circuit)"),
        ("degraded", "battery voltage below 11.0 V")]


async def test_lab_sends_the_registers_a_real_meter_would(lab: ModbusLab) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=lab.port, retries=0, timeout=2)
    await client.connect()
    try:
        voltage = await client.read_input_registers(0, count=2, device_id=3)
        pf = await client.read_input_registers(30, count=2, device_id=3)
        rest = await client.read_input_registers(70, count=6, device_id=3)
    finally:
        client.close()
    assert list(voltage.registers) == [0x4366, 0x0000]
    assert list(pf.registers) == [0xE148, 0x3F7A]  # 0.98 = 0x3F7AE148, low word first
    assert list(rest.registers) == [0x4248, 0x0000, 0x86A0, 0x0001, 0xFFFF, 0xFF88]


async def test_healthy_devices_are_ok(lab: ModbusLab) -> None:
    for profile in UNITS:
        obs = await probe_modbus(TARGET, _check(lab, profile))
        assert (obs.status, obs.error) == (Status.OK, None), profile


@pytest.mark.parametrize(("fault", "profile", "values", "reason"), [
    (Fault.AC_FAIL, "generic_alarm_panel", {"modbus.ac_fail": 1.0}, "AC mains power lost"),
    (Fault.BATTERY_LOW, "generic_alarm_panel",
     {"modbus.battery_low": 1.0, "modbus.battery_voltage_volts": 10.6}, "battery low"),
    (Fault.TAMPER, "generic_alarm_panel", {"modbus.tamper": 1.0}, "tamper"),
    (Fault.AC_FAIL, "generic_ups", {"modbus.on_battery": 1.0,
                                    "modbus.output_source_label": "battery"}, "on battery"),
    (Fault.BATTERY_LOW, "generic_ups", {"modbus.battery_charge_ratio": 0.12},
     "charge below 30 %"),
])
async def test_device_faults_degrade_with_the_maps_reason(
        lab: ModbusLab, fault: Fault, profile: str, values: dict[str, object],
        reason: str) -> None:
    await lab.set_fault(UNITS[profile], fault)
    obs = await probe_modbus(TARGET, _check(lab, profile))
    assert obs.status is Status.DEGRADED
    assert obs.error is not None and reason in obs.error
    assert {k: obs.values[k] for k in values} == values


async def test_zone_alarm_is_reported_but_is_not_a_device_fault(lab: ModbusLab) -> None:
    await lab.set_fault(1, Fault.ZONE_ALARM)
    obs = await probe_modbus(TARGET, _check(lab))
    assert obs.status is Status.OK
    assert obs.values["modbus.zones_in_alarm"] == 2.0
    assert obs.values["modbus.armed_state_label"] == "alarm"
    assert (obs.values["modbus.zone_01_alarm"], obs.values["modbus.zone_17_alarm"]) == (1, 1)


async def test_exception_response_is_unknown_with_reason_then_recovers(lab: ModbusLab) -> None:
    await lab.set_fault(1, Fault.EXCEPTION)
    obs = await probe_modbus(TARGET, _check(lab))
    assert obs.status is Status.UNKNOWN
    assert obs.error is not None
    assert "input registers 0-8: exception 2 (illegal data address)" in obs.error
    assert "does not match" in obs.error
    await lab.reset(1)
    assert (await probe_modbus(TARGET, _check(lab))).status is Status.OK


async def test_wrong_map_for_the_device_is_unknown(lab: ModbusLab) -> None:
    obs = await probe_modbus(TARGET, _check(lab, "generic_ups", unit=1))
    assert obs.status is Status.UNKNOWN
    assert obs.error == ("holding registers 0-9: exception 2 (illegal data address) — the "
                         "map does not match this device")


async def test_gateway_without_its_device_is_down(lab: ModbusLab) -> None:
    lab.exception_code = ExcCodes.GATEWAY_NO_RESPONSE
    await lab.set_fault(2, Fault.EXCEPTION)
    obs = await probe_modbus(TARGET, _check(lab, "generic_ups"))
    assert obs.status is Status.DOWN
    assert obs.error is not None and "unit 2 behind the gateway did not answer" in obs.error


async def test_short_read_is_unknown_with_reason(lab: ModbusLab) -> None:
    await lab.set_fault(2, Fault.SHORT_READ)
    obs = await probe_modbus(TARGET, _check(lab, "generic_ups"))
    assert obs.status is Status.UNKNOWN
    assert obs.error == "holding registers 0-9: short read: asked 10, got 9"


async def test_dropped_connection_is_down_then_reconnects(lab: ModbusLab) -> None:
    assert (await probe_modbus(TARGET, _check(lab))).status is Status.OK
    await lab.set_fault(1, Fault.DROP)
    started = time.perf_counter()
    obs = await probe_modbus(TARGET, _check(lab))
    assert obs.status is Status.DOWN
    assert obs.error is not None and "connection lost reading" in obs.error
    # Seen at once, not after the timeout: pymodbus alone would wait it out.
    assert time.perf_counter() - started < 1.0
    await lab.reset(1)
    assert (await probe_modbus(TARGET, _check(lab))).status is Status.OK


async def test_silent_device_times_out_as_down_and_recovers(lab: ModbusLab) -> None:
    lab.delay = 1.0
    await lab.set_fault(1, Fault.SLOW)
    obs = await probe_modbus(TARGET, _check(lab, timeout=0.5))
    assert obs.status is Status.DOWN
    assert obs.error is not None and "no answer from port" in obs.error
    await lab.reset(1)
    await asyncio.sleep(1.0)  # the slow answer still in flight must not confuse the next
    assert (await probe_modbus(TARGET, _check(lab))).status is Status.OK


async def test_one_connection_serves_concurrent_polls_one_request_at_a_time(
        lab: ModbusLab) -> None:
    checks = [_check(lab, p) for p in UNITS for _ in range(10)]
    results = await asyncio.gather(*(probe_modbus(TARGET, c) for c in checks))
    assert {o.status for o in results} == {Status.OK}
    assert len(modbus.pool()) == 1
    server = lab._server
    assert server is not None and len(server.active_connections) == 1


async def test_refused_connects_back_off_then_reconnect(lab: ModbusLab) -> None:
    port = lab.port
    await lab.stop()
    check = _check(lab)
    first = await probe_modbus(TARGET, check)
    assert first.status is Status.DOWN
    assert first.error == f"connect to port {port}: connection refused or unreachable"
    second = await probe_modbus(TARGET, check)
    assert second.error is not None and "next connect attempt in" in second.error
    await lab.start()
    await asyncio.sleep(modbus.BACKOFF_FIRST + 0.1)
    assert (await probe_modbus(TARGET, check)).status is Status.OK


async def test_adhoc_url_probes_like_a_configured_device(lab: ModbusLab) -> None:
    adhoc = parse_target(f"modbus://127.0.0.1:{lab.port}?unit=2&profile=generic_ups")
    [obs] = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
    assert (obs.check, obs.status) == (f"modbus_{lab.port}", Status.OK)
    assert obs.values["modbus.battery_charge_ratio"] == 1.0


def test_values_become_elvwatch_modbus_gauges() -> None:
    assert metric_name("modbus.battery_voltage_volts") == "elvwatch_modbus_battery_voltage_volts"


def test_options_reject_unknown_profiles_and_keys() -> None:
    with pytest.raises(ValidationError, match=r"unknown modbus profile 'nope'.*generic_ups"):
        ModbusOptions.model_validate({"profile": "nope"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        ModbusOptions.model_validate({"profile": "generic_ups", "slave": 1})
    with pytest.raises(ValidationError, match="less than or equal to 255"):
        ModbusOptions.model_validate({"profile": "generic_ups", "unit": 300})


def test_user_map_from_the_profile_directory(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_panel.yaml").write_text(
        "points:\n  - {name: mains_lost, function: discrete, address: 7, type: bool,\n"
        "     faults: [{equals: 1, status: down, reason: mains lost}]}\n")
    monkeypatch.setenv("ELVWATCH_MODBUS_PROFILES", str(tmp_path))
    profile = load_profile("my_panel")
    assert profile.name == "my_panel"
    assert [b.describe() for b in plan_reads(profile)] == ["discrete inputs 7-7"]


@pytest.mark.parametrize(("text", "message"), [
    ("points: []", "points: Tuple should have at least 1 item"),
    ("points:\n  - {name: x, function: coil, address: 0, type: uint16}",
     "coil and discrete points are type bool"),
    ("points:\n  - {name: x, function: input, address: 0, type: bitfield,\n"
     "     bits: [{name: b, bit: 16}]}", "bit number beyond 16 bits"),
    ("points:\n  - {name: x, function: input, address: 0, type: uint16,\n"
     "     faults: [{reason: r}]}", "exactly one of equals, above, below"),
    ("points:\n  - {name: x, function: input, address: 0, type: uint16}\n"
     "  - {name: x, function: input, address: 1, type: uint16}", "value names used twice: x"),
    ("- just a list", "expected a mapping at the top"),
])
def test_bad_maps_fail_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message.replace("(", r"\(")):
        load_profile(str(path))
