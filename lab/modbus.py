"""A simulated Modbus TCP gateway serving the shipped register maps, with faults on demand.

Built on pymodbus 3.16's new datastore (``SimData``/``SimDevice``, which replace the
deprecated ``ModbusSequentialDataBlock``/``ModbusDeviceContext``/``ModbusServerContext``).
Each unit id behind the gateway serves one map (by default 1 = generic_alarm_panel,
2 = generic_ups, 3 = generic_power_meter) with healthy values; addresses not in the map
answer "illegal data address", as a real device does.

Values are set by point (or bit) name in engineering units and encoded with the map's
type, word order and scale.  Faults (:class:`Fault`) per unit:

- ``ac_fail``, ``battery_low``, ``tamper``, ``comm_fault``, ``zone_alarm``: the values a real
  device shows;
- the panel's ``siren_fault``, ``zone_fault`` (a loop open or shorted), ``enclosure_open``;
  the UPS's ``battery_replace``, ``overload``, ``on_bypass``, ``ups_fault`` (internal),
  ``over_temperature``, ``output_off``; the meter's ``mains_out_of_range`` (voltage sag);
- ``exception``: every read answers exception ``exception_code`` (default 2);
- ``short_read``: register answers carry one register less than asked;
- ``drop``: every request closes the connection without an answer;
- ``slow``: every answer waits ``delay`` seconds;
- ``none``: back to healthy values.

``python -m elvwatch.lab.modbus --listen 127.0.0.1:5020 [--fault UNIT:FAULT]`` serves until
SIGINT/SIGTERM and prints ``modbus lab ready: HOST:PORT units=1,2,3`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import signal
import struct
import sys
from collections.abc import Mapping, Sequence
from enum import StrEnum

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from elvwatch.probes.modbus_maps import Point, Profile, load_profile

READY_PREFIX = "modbus lab ready:"
DEFAULT_UNITS: Mapping[int, str] = {1: "generic_alarm_panel", 2: "generic_ups",
                                    3: "generic_power_meter"}
# Function code -> the map's function, for the reads the probe makes and writes we make.
_FC_READ = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
_FC_WRITE = {"coil": 5, "discrete": 2, "holding": 6, "input": 4}
# Placeholder for a function a map does not use: SimDevice needs a non-empty list.
_UNUSED_BITS = 65520
_UNUSED_REGISTER = 65535
MAX_DELAY = 60.0

HEALTHY: Mapping[str, Mapping[str, float]] = {
    "generic_alarm_panel": {"battery_voltage_volts": 13.6, "uptime_seconds": 86400.0},
    "generic_ups": {"input_voltage_volts": 230.0, "output_voltage_volts": 230.0,
                    "battery_charge_ratio": 1.0, "battery_runtime_seconds": 3600.0,
                    "load_ratio": 0.35, "temperature_celsius": 25.0,
                    "battery_voltage_volts": 27.2},
    "generic_power_meter": {"voltage_volts": 230.0, "current_amperes": 1.5,
                            "active_power_watts": 345.0, "power_factor": 0.98,
                            "frequency_hertz": 50.0,
                            "active_energy_import_joules": 3.6e9,
                            "reactive_power_vars": -120.0},
}

# What each device-state fault looks like in each map.
FAULT_VALUES: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "ac_fail": {"generic_alarm_panel": {"ac_fail": 1},
                "generic_ups": {"on_battery": 1, "output_source": 1, "input_voltage_volts": 0},
                "generic_power_meter": {"voltage_volts": 0, "current_amperes": 0,
                                        "active_power_watts": 0}},
    "battery_low": {"generic_alarm_panel": {"battery_low": 1, "battery_voltage_volts": 10.6},
                    "generic_ups": {"battery_low": 1, "battery_charge_ratio": 0.12}},
    "tamper": {"generic_alarm_panel": {"tamper": 1, "box_door_open": 1}},
    "comm_fault": {"generic_alarm_panel": {"communicator_fault": 1}},
    "zone_alarm": {"generic_alarm_panel": {"zones_in_alarm": 2, "armed_state": 3,
                                           "zone_01_alarm": 1, "zone_17_alarm": 1}},
    "siren_fault": {"generic_alarm_panel": {"siren_fault": 1}},
    "zone_fault": {"generic_alarm_panel": {"zones_in_fault": 1}},
    "enclosure_open": {"generic_alarm_panel": {"box_door_open": 1}},
    "battery_replace": {"generic_ups": {"battery_replace": 1}},
    "overload": {"generic_ups": {"overload": 1, "load_ratio": 1.05}},
    "on_bypass": {"generic_ups": {"on_bypass": 1, "output_source": 2}},
    "ups_fault": {"generic_ups": {"internal_fault": 1}},
    "over_temperature": {"generic_ups": {"temperature_celsius": 52.0}},
    "output_off": {"generic_ups": {"output_source": 3, "output_voltage_volts": 0}},
    "mains_out_of_range": {"generic_power_meter": {"voltage_volts": 187.0}},
}


class Fault(StrEnum):
    NONE = "none"
    AC_FAIL = "ac_fail"
    BATTERY_LOW = "battery_low"
    TAMPER = "tamper"
    COMM_FAULT = "comm_fault"
    ZONE_ALARM = "zone_alarm"
    SIREN_FAULT = "siren_fault"
    ZONE_FAULT = "zone_fault"
    ENCLOSURE_OPEN = "enclosure_open"
    BATTERY_REPLACE = "battery_replace"
    OVERLOAD = "overload"
    ON_BYPASS = "on_bypass"
    UPS_FAULT = "ups_fault"
    OVER_TEMPERATURE = "over_temperature"
    OUTPUT_OFF = "output_off"
    MAINS_OUT_OF_RANGE = "mains_out_of_range"
    EXCEPTION = "exception"
    SHORT_READ = "short_read"
    DROP = "drop"
    SLOW = "slow"


def encode(point: Point, value: float) -> list[int] | list[bool]:
    """Raw registers (or bits) the device sends for ``value`` of ``point``."""
    if point.type == "bool":
        return [bool(value)]
    if point.type in ("bitfield", "enum"):
        raw = int(value)
        words = [(raw >> (16 * i)) & 0xFFFF for i in reversed(range(point.registers))]
    else:
        scaled = (value - point.offset) / point.scale
        fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i",
               "float32": ">f"}[point.type]
        packed = struct.pack(fmt, scaled if point.type == "float32" else round(scaled))
        words = [int.from_bytes(packed[i:i + 2], "big") for i in range(0, len(packed), 2)]
    if point.word_order == "little":
        words.reverse()
    return words


class ModbusLab:
    """One simulated gateway on ``host:port`` with a map per unit id."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5020,
                 units: Mapping[int, str] = DEFAULT_UNITS) -> None:
        self.host, self.port = host, port
        self.profiles: dict[int, Profile] = {u: load_profile(n) for u, n in units.items()}
        self.faults: dict[int, Fault] = dict.fromkeys(self.profiles, Fault.NONE)
        self.exception_code = ExcCodes.ILLEGAL_ADDRESS
        self.delay = 2.0
        self.requests = 0
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        devices = [SimDevice(id=unit, simdata=self._blocks(profile),
                             action=functools.partial(self._action, unit))
                   for unit, profile in self.profiles.items()]
        self._server = ModbusTcpServer(devices, address=(self.host, self.port),
                                       trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)
        for unit in self.profiles:
            await self.reset(unit)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus untyped
            self._server = None
            await asyncio.sleep(0)  # let the transports close before the loop may end

    async def __aenter__(self) -> ModbusLab:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def set_values(self, unit: int, values: Mapping[str, float]) -> None:
        """Set points (or single bits of bit fields) by name, in engineering units."""
        profile = self.profiles[unit]
        for name, value in values.items():
            point, bit = _find(profile, name)
            if bit is not None:
                current = await self._raw(unit, point)
                value = float((current & ~(1 << bit)) | (int(bool(value)) << bit))
            await self._write(unit, point, encode(point, value))

    async def set_fault(self, unit: int, fault: Fault | str) -> None:
        fault = Fault(fault)
        await self.reset(unit)
        self.faults[unit] = fault
        values = FAULT_VALUES.get(fault.value, {}).get(self.profiles[unit].name, {})
        await self.set_values(unit, values)

    async def reset(self, unit: int) -> None:
        """Healthy values and no fault."""
        self.faults[unit] = Fault.NONE
        profile = self.profiles[unit]
        healthy = HEALTHY.get(profile.name, {})
        for point in profile.points:
            await self._write(unit, point, encode(point, healthy.get(point.name, 0.0)))

    def drop_connections(self) -> None:
        """Close every client connection now (a gateway reboot, a cable pulled)."""
        if self._server is not None:
            for conn in list(self._server.active_connections.values()):
                conn.close()

    def _blocks(self, profile: Profile) -> tuple[list[SimData], list[SimData],
                                                 list[SimData], list[SimData]]:
        coils: list[SimData] = []
        discretes: list[SimData] = []
        holding: list[SimData] = []
        inputs: list[SimData] = []
        target = {"coil": coils, "discrete": discretes, "holding": holding, "input": inputs}
        for p in profile.points:
            if p.type == "bool":
                target[p.function].append(SimData(p.address, values=[False],
                                                  datatype=DataType.BITS))
            else:
                target[p.function].append(SimData(p.address, values=[0] * p.width,
                                                  datatype=DataType.REGISTERS))
        for bits in (coils, discretes):
            if not bits:
                bits.append(SimData(_UNUSED_BITS, values=[False] * 16, datatype=DataType.BITS))
        for regs in (holding, inputs):
            if not regs:
                regs.append(SimData(_UNUSED_REGISTER, datatype=DataType.INVALID))
        return coils, discretes, holding, inputs

    async def _write(self, unit: int, point: Point, raw: list[int] | list[bool]) -> None:
        assert self._server is not None, "start the lab first"
        await self._server.async_setValues(unit, _FC_WRITE[point.function], point.address, raw)

    async def _raw(self, unit: int, point: Point) -> int:
        assert self._server is not None, "start the lab first"
        fc = {"holding": 3, "input": 4}[point.function]
        words = list(await self._server.async_getValues(unit, fc, point.address, point.width))
        if point.word_order == "little":
            words.reverse()
        return functools.reduce(lambda acc, w: (acc << 16) | int(w), words, 0)

    async def _action(self, unit: int, function_code: int, _start: int, _address: int,
                      _count: int, _registers: list[int],
                      set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if set_values is not None or function_code not in _FC_READ:
            return None  # our own writes, never faulted
        self.requests += 1
        fault = self.faults[unit]
        if fault is Fault.EXCEPTION:
            return self.exception_code
        if fault is Fault.DROP:
            self.drop_connections()
        elif fault is Fault.SLOW:
            await asyncio.sleep(min(self.delay, MAX_DELAY))
        return None

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        # MBAP header (7 bytes) + function code + byte count + data: cut the last
        # register of register reads for a unit in SHORT_READ.
        if not sending or len(packet) < 11:
            return packet
        unit, fc, count = packet[6], packet[7], packet[8]
        if self.faults.get(unit) is not Fault.SHORT_READ or fc not in (3, 4) or count < 2:
            return packet
        length = int.from_bytes(packet[4:6], "big") - 2
        return packet[:4] + length.to_bytes(2, "big") + packet[6:8] + \
            bytes([count - 2]) + packet[9:-2]


def _find(profile: Profile, name: str) -> tuple[Point, int | None]:
    for point in profile.points:
        if point.name == name and point.type != "bitfield":
            return point, None
        for bit in point.bits:
            if bit.name == name:
                return point, bit.bit
    raise KeyError(f"map {profile.name!r} has no point or bit {name!r}")


def _fault_arg(text: str) -> tuple[int, Fault]:
    unit, _sep, fault = text.partition(":")
    try:
        return int(unit), Fault(fault)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fault is UNIT:FAULT, FAULT one of {', '.join(f.value for f in Fault)}"
            ) from None


async def _serve(host: str, port: int, faults: Sequence[tuple[int, Fault]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ModbusLab(host, port) as lab:
        for unit, fault in faults:
            await lab.set_fault(unit, fault)
        print(f"{READY_PREFIX} {host}:{port} units={','.join(map(str, lab.profiles))}",
              flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elvwatch.lab.modbus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:5020", help="HOST:PORT (loopback)")
    parser.add_argument("--fault", action="append", type=_fault_arg, default=[],
                        help="UNIT:FAULT to start with, e.g. 1:ac_fail (repeatable)")
    args = parser.parse_args(argv)
    host, _, port = str(args.listen).rpartition(":")
    if not host.startswith("127.") and host not in ("::1", "localhost"):
        parser.error("the lab listens on loopback only")
    if not port.isdigit() or not 0 < int(port) < 65536:
        parser.error(f"--listen must be HOST:PORT, not {args.listen!r}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, int(port), args.fault))
    return 0


if __name__ == "__main__":
    sys.exit(main())
