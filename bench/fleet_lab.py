"""The mixed fleet of ``bench/fleet_bench.py``: who is in it, the config the daemon runs,
and the simulators that answer for it, every one on loopback.

The mix (fractions of ``--devices``), each device on its own 127.x.y.z address:

* cameras, 70 %: ICMP every interval, ONVIF every ``onvif_interval`` (full polls at
  most every ``full_poll`` seconds: ``full_poll_seconds``, 0 = every poll full);
* switches 10 %, NVRs 4 %, UPSes 2 %: SNMP v2c (the ``system`` profile: one GET of
  sysDescr, sysObjectID, sysUpTime per run);
* alarm panels, 4 %: Modbus (the ``generic_alarm_panel`` map) behind RS-485 gateways,
  ``PANELS_PER_GATEWAY`` unit ids per gateway, as they are wired in the field, so a
  panel's host is its gateway's;
* access controllers, 10 %: MQTT, one JSON state message per device per interval.

Who answers, and where one simulator serves many devices (said so in the output):

* ICMP: the kernel (every address of 127.0.0.0/8 answers echo requests);
* ONVIF + RTSP: camera farm processes, each ONE ``lab.onvif.OnvifSimulator`` and ONE
  ``lab.rtsp.RtspResponder`` listening on up to ``CAMERAS_PER_FARM`` camera addresses
  (``listen_also``): thousands of simulator objects would cost the box more than the
  daemon;
* SNMP: one net-snmp ``snmpd`` listening on every SNMP device's address;
* Modbus: one process of ``lab.modbus.ModbusLab`` gateways;
* MQTT: Mosquitto and one publisher process (raw MQTT over one connection, as a bridge).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from elvwatch.lab.devices import loopback_addresses

ROOT = Path(__file__).resolve().parent.parent
FIRST_ADDRESS = "127.200.0.1"
ONVIF_PORT = 8080
RTSP_PORT = 8554
SNMP_PORT = 1161
MODBUS_PORT = 5020
# Two listeners per camera address; the open-file limit is 20,000 per process here.
CAMERAS_PER_FARM = 7_000
PANELS_PER_GATEWAY = 32
COMMUNITY = "fleet"
PASSWORD_ENV = "ELVWATCH_FLEET_CAMERA_PASSWORD"
PASSWORD = "secret"          # the lab cameras' (lab.onvif default), not a real one
START_TIMEOUT = 300.0
MIX = (("camera", 0.70), ("switch", 0.10), ("nvr", 0.04), ("ups", 0.02),
       ("alarm_panel", 0.04), ("access_panel", 0.10))
SNMP_KINDS = frozenset({"switch", "nvr", "ups"})


@dataclass
class Fleet:
    """Device addresses per kind (panels: their gateways' addresses and unit ids)."""

    hosts: dict[str, list[str]] = field(default_factory=dict)
    gateways: list[str] = field(default_factory=list)
    panels: list[tuple[str, int]] = field(default_factory=list)

    @property
    def devices(self) -> int:
        return sum(len(h) for k, h in self.hosts.items() if k != "alarm_panel") + \
            len(self.panels)

    def count(self, kind: str) -> int:
        return len(self.panels) if kind == "alarm_panel" else len(self.hosts.get(kind, ()))

    @property
    def snmp_hosts(self) -> list[str]:
        return [h for kind in sorted(SNMP_KINDS) for h in self.hosts.get(kind, ())]


def plan(devices: int) -> Fleet:
    counts = {kind: int(devices * share) for kind, share in MIX}
    counts["camera"] += devices - sum(counts.values())
    gateways = -(-counts["alarm_panel"] // PANELS_PER_GATEWAY)
    addresses = iter(loopback_addresses(
        FIRST_ADDRESS, devices - counts["alarm_panel"] + gateways))
    fleet = Fleet()
    for kind, _ in MIX:
        if kind == "alarm_panel":
            fleet.gateways = [next(addresses) for _ in range(gateways)]
            fleet.panels = [(fleet.gateways[i // PANELS_PER_GATEWAY],
                             i % PANELS_PER_GATEWAY + 1) for i in range(counts[kind])]
        else:
            fleet.hosts[kind] = [next(addresses) for _ in range(counts[kind])]
    return fleet


def members(fleet: Fleet) -> Iterator[tuple[str, str, str, int]]:
    """(kind, device id, host, Modbus unit or 0) of every device, in config order."""
    number = 0
    for kind, _ in MIX:
        targets = fleet.panels if kind == "alarm_panel" else \
            [(h, 0) for h in fleet.hosts[kind]]
        for host, unit in targets:
            number += 1
            yield kind, f"{kind}-{number:05d}", host, unit


def _device_entries(fleet: Fleet, interval: float, onvif_interval: float,
                    full_poll: float) -> Iterator[dict[str, object]]:
    timeout = min(5.0, interval / 2)
    for kind, device, host, unit in members(fleet):
        entry: dict[str, object] = {"id": device, "site": f"site-{int(device[-5:]) % 50:02d}",
                                    "kind": kind, "host": host}
        if kind == "camera":
            entry["credentials"] = "cameras"
            entry["checks"] = [
                {"type": "icmp"},
                {"type": "onvif", "port": ONVIF_PORT, "interval": onvif_interval,
                 "timeout": min(10.0, onvif_interval / 2),
                 "params": {"full_poll_seconds": full_poll}}]
        elif kind in SNMP_KINDS:
            entry["credentials"] = "snmp"
            entry["checks"] = [{"type": "snmp", "port": SNMP_PORT, "timeout": timeout,
                                "params": {"version": "2c", "profiles": "system",
                                           "retries": 0}}]
        elif kind == "alarm_panel":
            entry["checks"] = [{"type": "modbus", "port": MODBUS_PORT,
                                "params": {"profile": "generic_alarm_panel", "unit": unit}}]
        else:
            entry["checks"] = [{"type": "mqtt", "params": {"topic": "fleet/{device}",
                                                           "max_age": interval * 3}}]
        yield entry


def write_config(directory: Path, fleet: Fleet, interval: float, onvif_interval: float,
                 mqtt_port: int, full_poll: float = 0.0) -> Path:
    config = {
        "http": {"listen": "127.0.0.1:0"},
        "interval": interval, "timeout": min(5.0, interval / 2),
        "scheduler": {"max_concurrency": 512, "jitter": 1.0},
        "credentials": {
            "cameras": {"username": "admin", "password_env": PASSWORD_ENV},
            "snmp": {"secrets": {"community": {"env": "ELVWATCH_FLEET_COMMUNITY"}}}},
        "sources": {"mqtt": {"brokers": {"lab": {"host": "127.0.0.1", "port": mqtt_port,
                                                 "client_id": "elvwatch-fleet"}},
                             "queue_size": 100_000}},
        "sites": [{"id": f"site-{i:02d}", "name": f"Site {i}"} for i in range(50)],
        "devices": list(_device_entries(fleet, interval, onvif_interval, full_poll)),
    }
    path = directory / "fleet.yaml"
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump(config, Dumper=dumper), encoding="utf-8")
    return path


def daemon_env() -> dict[str, str]:
    return {**os.environ, PASSWORD_ENV: PASSWORD, "ELVWATCH_FLEET_COMMUNITY": COMMUNITY}


# --- the simulators' processes -------------------------------------------------------


async def serve_cameras(hosts: list[str]) -> None:
    """A camera farm (child process): one ONVIF simulator and one RTSP responder on
    every address of ``hosts``, until stdin closes."""
    from elvwatch.lab.onvif import OnvifSimulator, scene_jpeg
    from elvwatch.lab.rtsp import RtspResponder

    rtsp = RtspResponder(hosts[0], RTSP_PORT)
    onvif = OnvifSimulator(hosts[0], ONVIF_PORT, rtsp_port=RTSP_PORT,
                           snapshot=scene_jpeg(64, 36))
    await rtsp.start()
    await onvif.start()
    for host in hosts[1:]:
        await rtsp.listen_also(host)
        await onvif.listen_also(host)
    print(json.dumps({"ready": len(hosts)}), flush=True)
    stop = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    while not stop.done():
        onvif.calls.clear()          # its list of operations, bounded however long we run
        await asyncio.wait([stop], timeout=10)
    await onvif.stop()
    await rtsp.stop()


async def serve_gateways(gateways: list[str], units: int) -> None:
    """Modbus gateways (child process), each with ``units`` alarm panels."""
    from elvwatch.lab.modbus import ModbusLab

    labs = [ModbusLab(host, MODBUS_PORT, {u: "generic_alarm_panel"
                                          for u in range(1, units + 1)})
            for host in gateways]
    for lab in labs:
        await lab.start()
    print(json.dumps({"ready": len(labs)}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for lab in labs:
        await lab.stop()


async def publish(port: int, topics: list[str], interval: float) -> None:
    """The MQTT devices (child process): each topic's state once per ``interval``,
    spread evenly, over one connection, until stdin closes."""
    from elvwatch.lab.mqtt import connect_packet, publish_packet

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(connect_packet("fleet-publisher", keepalive=60))
    await writer.drain()
    await reader.readexactly(4)          # CONNACK
    stop = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    print(json.dumps({"ready": len(topics)}), flush=True)
    step = interval / max(len(topics), 1)
    begin = time.monotonic()
    sent = 0
    while not stop.done():
        due = begin + sent * step
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        topic = topics[sent % len(topics)]
        payload = json.dumps({"online": True, "door": "closed", "rssi": -60 - sent % 7})
        writer.write(publish_packet(topic, payload))
        sent += 1
        if sent % 100 == 0:
            await writer.drain()
            writer.write(b"\xc0\x00")    # PINGREQ: the broker keeps us
    writer.close()


@dataclass
class Labs:
    """The running simulator processes (and their CPU, read from /proc)."""

    procs: dict[str, list[subprocess.Popen[str]]] = field(default_factory=dict)
    mqtt_port: int = 0
    notes: list[str] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def pids(self, name: str) -> list[int]:
        return [p.pid for p in self.procs.get(name, ())]


def _child(args: list[str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent /
                                                 "fleet_bench.py"), *args],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, **kwargs)  # type: ignore[call-overload]


def _wait_ready(proc: subprocess.Popen[str], what: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith('{"ready"'):
        raise SystemExit(f"{what} did not start: {line!r}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_labs(fleet: Fleet, interval: float) -> Labs:
    labs = Labs(_tmp=tempfile.TemporaryDirectory(prefix="elvwatch-fleet-"))
    assert labs._tmp is not None
    work = Path(labs._tmp.name)
    cameras = fleet.hosts["camera"]
    farms = []
    for begin in range(0, len(cameras), CAMERAS_PER_FARM):
        chunk = cameras[begin:begin + CAMERAS_PER_FARM]
        (work / f"farm{begin}.hosts").write_text("\n".join(chunk))
        farms.append(_child(["--serve", "cameras", str(work / f"farm{begin}.hosts")]))
    labs.procs["camera farms"] = farms
    if len(farms):
        labs.notes.append(f"{len(cameras)} cameras answered by {len(farms)} ONVIF+RTSP "
                          f"simulator pair(s), each listening on up to {CAMERAS_PER_FARM} "
                          "camera addresses")
    snmp = fleet.snmp_hosts
    if snmp:
        if shutil.which("snmpd") is None:
            raise SystemExit("snmpd not found (apt-get install snmpd)")
        (work / "snmpd.conf").write_text(f"rocommunity {COMMUNITY} 127.0.0.0/8\n")
        agent = subprocess.Popen(
            ["snmpd", "-f", "-C", "-c", str(work / "snmpd.conf"), "-Lf",
             str(work / "snmpd.log"), "-p", str(work / "snmpd.pid"), "-M", "/nonexistent",
             "-m", "", *(f"udp:{h}:{SNMP_PORT}" for h in snmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
            env={"SNMP_PERSISTENT_DIR": str(work), "PATH": "/usr/sbin:/usr/bin:/bin"})
        labs.procs["snmpd"] = [agent]
        labs.notes.append(f"{len(snmp)} SNMP devices answered by one net-snmp snmpd "
                          "listening on each of their addresses")
    if fleet.gateways:
        (work / "gateways.hosts").write_text("\n".join(fleet.gateways))
        labs.procs["modbus"] = [_child(["--serve", "gateways", str(work / "gateways.hosts"),
                                        str(PANELS_PER_GATEWAY)])]
        labs.notes.append(f"{len(fleet.panels)} alarm panels behind {len(fleet.gateways)} "
                          f"lab Modbus gateways ({PANELS_PER_GATEWAY} unit ids each), "
                          "one process")
    topics = [f"fleet/{device}" for kind, device, _, _ in members(fleet)
              if kind == "access_panel"]
    if topics:
        labs.mqtt_port = free_port()
        (work / "mosquitto.conf").write_text(
            f"listener {labs.mqtt_port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nlog_dest none\nmax_queued_messages 100000\n")
        labs.procs["mosquitto"] = [subprocess.Popen(
            ["mosquitto", "-c", str(work / "mosquitto.conf")], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)]
        _wait_port(labs.mqtt_port)
        (work / "topics").write_text("\n".join(topics))
        labs.procs["publisher"] = [_child(["--serve", "publisher", str(work / "topics"),
                                           str(labs.mqtt_port), str(interval)])]
        labs.notes.append(f"{len(topics)} MQTT devices published by one process over one "
                          "connection to Mosquitto")
    deadline = time.monotonic() + START_TIMEOUT
    for name, procs in labs.procs.items():
        for proc in procs:
            if name not in ("snmpd", "mosquitto"):
                _wait_ready(proc, name)
    if snmp:
        _wait_snmpd(snmp[-1], deadline)
    return labs


def _wait_snmpd(host: str, deadline: float) -> None:
    """Until the agent answers on its last address (it binds them in order)."""
    while time.monotonic() < deadline:
        done = subprocess.run(["snmpget", "-v2c", "-c", COMMUNITY, "-t", "1", "-r", "0",
                               f"{host}:{SNMP_PORT}", "1.3.6.1.2.1.1.3.0"],
                              capture_output=True, check=False)
        if done.returncode == 0:
            return
        time.sleep(0.5)
    raise SystemExit("snmpd did not answer on its last address in time")


def _wait_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("mosquitto did not start")


def stop_labs(labs: Labs) -> None:
    """Every simulator process stopped (SIGTERM, then killed after 30 s), its files gone."""
    from bench.scheduler_bench import stop_labs as stop_processes

    everyone = [proc for procs in labs.procs.values() for proc in procs]
    stop_processes(everyone)
    for proc in everyone:
        if proc.stdin is not None:
            proc.stdin.close()
    if labs._tmp is not None:
        labs._tmp.cleanup()
