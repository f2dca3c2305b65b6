"""SNMP devices for the demo, the tests and the benchmarks: snmpsim serving recordings.

The demo's PoE switch, NVR and UPS are *synthetic* recordings built here from the
MIB definitions (IF-MIB, POWER-ETHERNET-MIB, HOST-RESOURCES-MIB, UPS-MIB), not
captures of real devices; the device zoo the tests probe is in tests/fixtures/snmp/.  Each device
is one ``<community>.snmprec`` file in the lab's data directory.

Faults are injected by rewriting a device's recording (snmpsim re-indexes a file
whose modification time changed, so the next request sees the fault):

* ``port_down``   — a switch port's ifOperStatus becomes down(2), its PoE searching;
* ``poe_fault``   — a switch port's PoE detection status becomes fault(4) (the link stays
  up; a port that was delivering power has lost it, too);
* ``disk_failed`` — an NVR disk's hrDeviceStatus becomes down(5);
* ``disk_removed``— an NVR disk's row disappears (a "missing" disk);
* ``on_battery``  — the UPS output source becomes battery(5), charge falls;
* ``battery_low`` — the UPS battery status becomes batteryLow(3), charge and runtime low;
* ``reboot``      — sysUpTime restarts small.

snmpsim 1.2 runs as a subprocess (``snmpsim-command-responder``); run as root it
needs ``SNMPSIM_ALLOW_ROOT=true``, which ``SnmpLab`` sets for its own child only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

Record = tuple[str, int, str]  # OID, snmprec type tag, value text
START_TIMEOUT = 30.0  # seconds; snmpsim indexes every file before it answers

SYS = "1.3.6.1.2.1.1"
IF, IFX = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
PETH_PORT, PETH_MAIN = "1.3.6.1.2.1.105.1.1.1", "1.3.6.1.2.1.105.1.3.1.1"
HR_STORAGE, HR_DEVICE = "1.3.6.1.2.1.25.2.3.1", "1.3.6.1.2.1.25.3.2.1"
UPS = "1.3.6.1.2.1.33.1"
DISK_TYPE = "1.3.6.1.2.1.25.3.1.6"


@dataclass
class DeviceState:
    """The knobs the faults turn; recordings are rendered from it."""

    uptime_ticks: int = 8_640_000  # one day
    ports_down: set[int] = field(default_factory=set)
    poe_faults: set[int] = field(default_factory=set)
    disks_failed: set[int] = field(default_factory=set)
    disks_removed: set[int] = field(default_factory=set)
    on_battery: bool = False
    battery_low: bool = False


def _system(descr: str, name: str, state: DeviceState) -> list[Record]:
    return [(f"{SYS}.1.0", 4, descr), (f"{SYS}.2.0", 6, "1.3.6.1.4.1.8072.3.2.10"),
            (f"{SYS}.3.0", 67, str(state.uptime_ticks)), (f"{SYS}.5.0", 4, name)]


def switch_records(state: DeviceState, ports: int = 8) -> list[Record]:
    recs = _system("ELV lab PoE switch (synthetic recording)", "lab-switch", state)
    for n in range(1, ports + 1):
        down = n in state.ports_down
        # pethPsePortDetectionStatus: searching(2), deliveringPower(3), fault(4)
        detection = "4" if n in state.poe_faults else "2" if down else "3"
        recs += [(f"{IF}.1.{n}", 2, str(n)), (f"{IF}.2.{n}", 4, f"GigabitEthernet1/0/{n}"),
                 (f"{IF}.7.{n}", 2, "1"), (f"{IF}.8.{n}", 2, "2" if down else "1"),
                 (f"{IF}.14.{n}", 65, str(n * 3)), (f"{IF}.20.{n}", 65, "0"),
                 (f"{IFX}.1.{n}", 4, f"ge1/0/{n}"), (f"{IFX}.6.{n}", 70, str(n * 10**9)),
                 (f"{IFX}.10.{n}", 70, str(n * 2 * 10**9)),
                 (f"{IFX}.15.{n}", 66, "0" if down else "1000"),
                 (f"{PETH_PORT}.3.1.{n}", 2, "1"),
                 (f"{PETH_PORT}.6.1.{n}", 2, detection)]
    powered = [n for n in range(1, ports + 1)
               if n not in state.ports_down and n not in state.poe_faults]
    recs += [(f"{PETH_MAIN}.2.1", 66, "370"), (f"{PETH_MAIN}.3.1", 2, "1"),
             (f"{PETH_MAIN}.4.1", 66, str(6 * len(powered)))]
    return recs


def nvr_records(state: DeviceState, bays: int = 4, disks: int = 3) -> list[Record]:
    recs = _system("ELV lab NVR (synthetic recording)", "lab-nvr", state)
    recs += [(f"{HR_STORAGE}.1.1", 2, "1"), (f"{HR_STORAGE}.3.1", 4, "/recordings"),
             (f"{HR_STORAGE}.4.1", 2, "4096"), (f"{HR_STORAGE}.5.1", 2, "1953125000"),
             (f"{HR_STORAGE}.6.1", 2, "1000000000")]
    # Bays without a disk have no row at all: an empty bay is not a fault.
    for n in range(1, min(disks, bays) + 1):
        if n in state.disks_removed:
            continue
        index = 1536 + n
        status = "5" if n in state.disks_failed else "2"
        recs += [(f"{HR_DEVICE}.1.{index}", 2, str(index)),
                 (f"{HR_DEVICE}.2.{index}", 6, DISK_TYPE),
                 (f"{HR_DEVICE}.3.{index}", 4, f"HDD{n}"),
                 (f"{HR_DEVICE}.5.{index}", 2, status)]
    return recs


def ups_records(state: DeviceState) -> list[Record]:
    recs = _system("ELV lab UPS (synthetic recording)", "lab-ups", state)
    batt, low = state.on_battery, state.battery_low
    # upsBatteryStatus: batteryNormal(2), batteryLow(3); runtime in minutes, charge in %.
    runtime, charge = ("4", "12") if low else ("38", "87") if batt else ("45", "100")
    recs += [(f"{UPS}.1.1.0", 4, "ELV Lab Power"), (f"{UPS}.1.2.0", 4, "LabUPS 3000"),
             (f"{UPS}.1.3.0", 4, "1.0.4"),
             (f"{UPS}.2.1.0", 2, "3" if low else "2"),
             (f"{UPS}.2.2.0", 2, "120" if batt else "0"),
             (f"{UPS}.2.3.0", 2, runtime), (f"{UPS}.2.4.0", 2, charge),
             (f"{UPS}.2.5.0", 2, "545"), (f"{UPS}.2.7.0", 2, "31"),
             (f"{UPS}.3.3.1.2.1", 2, "0" if batt else "500"),
             (f"{UPS}.3.3.1.3.1", 2, "0" if batt else "230"),
             (f"{UPS}.4.1.0", 2, "5" if batt else "3"),
             (f"{UPS}.4.4.1.5.1", 2, "25")]
    return recs


KINDS: dict[str, Callable[[DeviceState], list[Record]]] = {
    "switch": switch_records, "nvr": nvr_records, "ups": ups_records}


def _oid_key(record: Record) -> tuple[int, ...]:
    return tuple(int(p) for p in record[0].split("."))


def render(records: Iterable[Record]) -> str:
    """snmprec text, sorted by OID as snmpsim's walk order requires."""
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in sorted(records,
                                                                           key=_oid_key))


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SnmpLab:
    """snmpsim on one loopback UDP port serving the lab devices and any extra
    recordings; use as a context manager (the child is always stopped)."""

    def __init__(self, devices: Mapping[str, str] | None = None,
                 recordings: Iterable[Path] = (), host: str = "127.0.0.1",
                 port: int | None = None,
                 extra_endpoints: Iterable[tuple[str, int]] = ()) -> None:
        self.devices = dict(devices if devices is not None else
                            {"lab-switch": "switch", "lab-nvr": "nvr", "lab-ups": "ups"})
        self.state = {name: DeviceState() for name in self.devices}
        self.recordings = list(recordings)
        self.host = host
        self.port = port or free_udp_port(host)
        # Further UDP endpoints of the same agent (the demo gives each device its own
        # address); every endpoint serves every recording, chosen by community.
        self.extra_endpoints = list(extra_endpoints)
        self._dir = Path(tempfile.mkdtemp(prefix="elvwatch-snmplab-"))
        self.data_dir = self._dir / "data"
        self.data_dir.mkdir()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stamp = 0.0

    def write(self, name: str) -> None:
        self._store(name, render(KINDS[self.devices[name]](self.state[name])))

    def _store(self, name: str, text: str) -> None:
        path = self.data_dir / f"{name}.snmprec"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)
        # snmpsim re-indexes a file whose modification time changed: give every
        # rewrite a later time than the one before, however quick they come.
        self._stamp = max(self._stamp + 1, time.time() + 1)
        os.utime(path, (self._stamp, self._stamp))

    def recording(self, name: str) -> str:
        """The text of a served recording (to put back with ``replace_recording``)."""
        return (self.data_dir / f"{name}.snmprec").read_text("utf-8")

    def replace_recording(self, name: str, text: str) -> None:
        self._store(name, text)

    def edit(self, name: str, changes: Mapping[str, tuple[int | str, str] | None]) -> None:
        """Change one served recording: OID → (type tag, value), or None to remove
        the row (a device whose answers change between polls: a stack cable pulled,
        an SD card failing)."""
        path = self.data_dir / f"{name}.snmprec"
        rows = {line.split("|", 1)[0]: line for line in
                path.read_text("utf-8").splitlines() if line.strip()}
        for oid, change in changes.items():
            if change is None:
                rows.pop(oid, None)
            else:
                rows[oid] = f"{oid}|{change[0]}|{change[1]}"
        ordered = sorted(rows.values(), key=lambda line: _oid_key((line.split("|")[0], 0, "")))
        self._store(name, "\n".join(ordered) + "\n")

    def inject(self, name: str, fault: str, item: int = 1) -> None:
        state = self.state[name]
        if fault == "port_down":
            state.ports_down.add(item)
        elif fault == "disk_failed":
            state.disks_failed.add(item)
        elif fault == "disk_removed":
            state.disks_removed.add(item)
        elif fault == "poe_fault":
            state.poe_faults.add(item)
        elif fault == "on_battery":
            state.on_battery = True
        elif fault == "battery_low":
            state.battery_low = True
        elif fault == "reboot":
            state.uptime_ticks = 1500
        else:
            raise ValueError(f"unknown fault {fault!r}")
        self.write(name)

    def clear(self, name: str) -> None:
        self.state[name] = DeviceState()
        self.write(name)

    def start(self) -> None:
        for name in self.devices:
            self.write(name)
        for path in self.recordings:
            shutil.copy(path, self.data_dir / path.name)
        exe = shutil.which("snmpsim-command-responder") or str(
            Path(sys.executable).with_name("snmpsim-command-responder"))
        env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
        log = (self._dir / "snmpsim.log").open("wb")
        with log:
            self._proc = subprocess.Popen(
                [exe, f"--data-dir={self.data_dir}", f"--cache-dir={self._dir / 'cache'}",
                 f"--agent-udpv4-endpoint={self.host}:{self.port}",
                 *(f"--agent-udpv4-endpoint={h}:{p}" for h, p in self.extra_endpoints)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"snmpsim exited: {self.log_tail()}")
            if "Listening at" in self.log_tail():
                return
            time.sleep(0.1)
        raise RuntimeError(f"snmpsim did not start in {START_TIMEOUT:g}s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self._dir / "snmpsim.log"
        return path.read_text("utf-8", "replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> SnmpLab:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
