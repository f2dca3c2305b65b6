"""The demo's simulated community: each device speaks its real protocol on its own address.

Cameras are ONVIF simulators with an RTSP responder beside them; the switches, the NVR
and the UPS are snmpsim agents (one snmpsim process, one UDP endpoint per device, a
community per device); the alarm panel is the Modbus lab gateway; the door station is a
SIP responder that the site's SIP server (a lab registrar) has registered; the access
panel is an MQTT door controller on a throwaway Mosquitto.  Where a peer program is
missing (snmpsim is a test/demo extra, mosquitto a system package) the device falls
back to a plain lab TCP listener, and :attr:`Community.notes` says so.

:meth:`Community.take_down` / :meth:`Community.bring_back` stop and restart a device's
servers; :meth:`Community.protocol_faults` lists the faults a device shows while it
still answers (camera tamper, UPS on battery, alarm panel AC failure, door station
unregistered, door forced open), each with its inject and clear actions.  The cameras
also serve ONVIF PullPoint events, which the daemon subscribes to (``onvif_events``):
the tamper fault is an event the lobby camera sends, not a value it is polled for.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from elvwatch.lab.devices import Fault, LabDevice, tcp_check
from elvwatch.lab.modbus import ModbusLab
from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.lab.mqtt import SimDevice, access_door
from elvwatch.lab.onvif import DeviceInfo, OnvifSimulator
from elvwatch.lab.rtsp import RtspResponder
from elvwatch.lab.sip import SipResponder
from elvwatch.lab.snmp import SnmpLab

ONVIF_PORT, RTSP_PORT = 8080, 8554
SNMP_PORT = 1161      # not 161: the demo runs unprivileged too
MODBUS_PORT = 1502    # not 502, same reason
SIP_PORT = 5060       # >1024 already
FALLBACK_PORT = 8022  # the lab TCP listener standing in for a device without its peer
STREAM_PATH = "/Streaming/Channels/101"
DOOR_USER = "8101"
# The door controller beats every 2 s; 15 s of silence is "stale", as a few missed
# beats on a real controller would be.
HEARTBEAT_SECONDS, MQTT_MAX_AGE = 2.0, 15.0
# The camera whose tamper event the demo injects.  It may be taken down like the
# others: a tamper set while the daemon is still resubscribing after a reboot is not
# lost, the lab camera (like a real one) tells a new subscription its current state.
TAMPER_CAMERA = "cam-b1-lobby"
# The events check of the demo's cameras: resubscribe soon after a camera comes back.
EVENTS_PARAMS = {"retry_min_seconds": 2.0, "retry_max_seconds": 10.0}

# (id, kind, name, depends_on, location, protocol)
LAYOUT: list[tuple[str, str, str, list[str], dict[str, str], str]] = [
    ("core-sw", "switch", "核心交换机", [], {"building": "物业中心", "place": "弱电机房"},
     "snmp"),
    ("poe-sw-1", "switch", "1号楼 PoE 交换机", ["core-sw"],
     {"building": "1号楼", "floor": "B1", "place": "弱电井"}, "snmp"),
    ("nvr-1", "nvr", "监控中心 NVR", ["core-sw"], {"building": "物业中心", "place": "监控室"},
     "snmp"),
    ("cam-gate-01", "camera", "南门入口枪机", ["poe-sw-1"],
     {"building": "南门", "place": "入口岗亭上方"}, "onvif"),
    ("cam-gate-02", "camera", "南门出口枪机", ["poe-sw-1"],
     {"building": "南门", "place": "出口道闸"}, "onvif"),
    ("cam-b1-lobby", "camera", "1号楼大堂半球", ["poe-sw-1"],
     {"building": "1号楼", "floor": "1", "place": "大堂"}, "onvif"),
    ("cam-b1-lift", "camera", "1号楼电梯厅", ["poe-sw-1"],
     {"building": "1号楼", "floor": "1", "place": "电梯厅"}, "onvif"),
    ("door-b1", "door_station", "1号楼单元门口机", ["poe-sw-1"],
     {"building": "1号楼", "floor": "1", "place": "单元门"}, "sip"),
    ("acp-gate", "access_panel", "南门门禁控制器", ["core-sw"],
     {"building": "南门", "place": "门卫室"}, "mqtt"),
    ("alarm-1", "alarm_panel", "周界报警主机", ["core-sw"],
     {"building": "物业中心", "place": "监控室"}, "modbus"),
    ("sip-server", "intercom_server", "可视对讲管理机", ["core-sw"],
     {"building": "物业中心", "place": "监控室"}, "sip_server"),
    ("ups-1", "ups", "弱电机房 UPS", [], {"building": "物业中心", "place": "弱电机房"},
     "snmp"),
]


@dataclass(frozen=True, slots=True)
class Secrets:
    """What the simulated devices accept; the daemon reads the same from credentials."""

    camera_user: str
    camera_password: str
    snmp_communities: Mapping[str, str]   # device id -> community
    mqtt_user: str
    mqtt_password: str


@dataclass(frozen=True, slots=True)
class ProtocolFault:
    device: str
    rule: str                       # the built-in rule expected to open a ticket
    description: str
    inject: Callable[[], Awaitable[None]]
    clear: Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Member:
    id: str
    kind: str
    name: str
    host: str
    parents: list[str]
    location: dict[str, str]
    protocol: str
    start: Callable[[], Awaitable[None]] | None = None
    stop: Callable[[], Awaitable[None]] | None = None
    # The injected "down" and its end; start/stop when not set.
    down: Callable[[], Awaitable[None]] | None = None
    up: Callable[[], Awaitable[None]] | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    credentials: str | None = None


def snmp_available() -> bool:
    return shutil.which("snmpsim-command-responder") is not None


class Community:
    def __init__(self, base: str, secrets: Secrets, *, snmp: bool, mqtt: bool) -> None:
        self.base = base
        self.secrets = secrets
        self.notes: list[str] = []
        self.members = {dev_id: _Member(dev_id, kind, name, f"{base}{n}", parents, loc, proto)
                        for n, (dev_id, kind, name, parents, loc, proto)
                        in enumerate(LAYOUT, start=1)}
        self.use_snmp, self.use_mqtt = snmp, mqtt
        self._broker_host = f"{base}250"
        self.broker: MosquittoServer | None = None
        self._snmp: SnmpLab | None = None
        self._modbus: ModbusLab | None = None
        self._registrar: SipResponder | None = None
        self._door: SimDevice | None = None
        self._cameras: dict[str, OnvifSimulator] = {}
        self._running: list[Callable[[], Awaitable[None]]] = []
        for member in self.members.values():
            self._plan(member)

    # -- what each device runs and how the daemon checks it ---------------------------
    def _plan(self, m: _Member) -> None:
        if m.protocol == "onvif":
            self._plan_camera(m)
        elif m.protocol == "snmp" and self.use_snmp:
            m.checks = [{"type": "snmp", "port": SNMP_PORT}]
            m.credentials = f"demo-snmp-{m.id}"
        elif m.protocol == "modbus":
            modbus = self._modbus = ModbusLab(m.host, MODBUS_PORT,
                                              units={1: "generic_alarm_panel"})
            m.start, m.stop = modbus.start, modbus.stop
            m.checks = [{"type": "modbus", "port": MODBUS_PORT,
                         "params": {"profile": "generic_alarm_panel", "unit": 1}}]
        elif m.protocol == "sip":
            station = SipResponder(m.host, SIP_PORT)
            m.start, m.stop = station.start, station.stop
            server = self.members["sip-server"].host
            m.checks = [{"type": "sip", "port": SIP_PORT},
                        {"type": "sip_registration",
                         "params": {"server": server, "server_port": SIP_PORT,
                                    "user": DOOR_USER}}]
        elif m.protocol == "sip_server":
            registrar = self._registrar = SipResponder(m.host, SIP_PORT, registrar=True)
            registrar.register(DOOR_USER)
            m.start, m.stop = registrar.start, registrar.stop
            m.checks = [{"type": "sip", "port": SIP_PORT}]
        elif m.protocol == "mqtt" and self.use_mqtt:
            m.start, m.stop = self._door_online, self._door_leave
            m.down, m.up = self._door_crash, self._door_online
            m.checks = [{"type": "mqtt", "name": "door",
                         "params": {"broker": "demo", "topic": self._door_topic,
                                    "profile": "access_control", "max_age": MQTT_MAX_AGE}}]
        else:
            device = LabDevice(m.id, m.host, [FALLBACK_PORT])

            async def down(device: LabDevice = device) -> None:
                await device.set_fault(Fault.DOWN)

            async def up(device: LabDevice = device) -> None:
                await device.set_fault(Fault.NONE)

            m.start, m.stop, m.down, m.up = device.start, device.stop, down, up
            m.checks = [{**tcp_check(FALLBACK_PORT), "name": f"tcp_{FALLBACK_PORT}"}]

    def _plan_camera(self, m: _Member) -> None:
        s = self.secrets
        cameras = [other.id for other in self.members.values() if other.protocol == "onvif"]
        number = cameras.index(m.id) + 1  # a serial of its own: one camera, one archive entry
        onvif = OnvifSimulator(m.host, ONVIF_PORT, s.camera_user, s.camera_password,
                               rtsp_port=RTSP_PORT,
                               info=DeviceInfo(serial=f"DS-2CD2143G2-I20220301AAWRJ{number:08d}"))
        rtsp = RtspResponder(m.host, RTSP_PORT, s.camera_user, s.camera_password)
        self._cameras[m.id] = onvif

        async def start() -> None:
            await rtsp.start()
            await onvif.start()

        async def stop() -> None:
            await onvif.stop()
            await rtsp.stop()

        m.start, m.stop = start, stop
        m.ports = {"onvif": ONVIF_PORT, "rtsp": RTSP_PORT}
        m.credentials = "demo-camera"
        m.checks = [{"type": "onvif", "port": ONVIF_PORT},
                    {"type": "rtsp", "port": RTSP_PORT, "params": {"path": STREAM_PATH}},
                    {"type": "onvif_events", "port": ONVIF_PORT,
                     "params": dict(EVENTS_PARAMS)}]

    @property
    def _door_topic(self) -> str:
        return "demo-garden/door/gate"

    async def _door_online(self) -> None:
        assert self.broker is not None
        s = self.secrets
        door = access_door(self.broker.host, self.broker.port, self._door_topic,
                           heartbeat_seconds=HEARTBEAT_SECONDS, username=s.mqtt_user,
                           password=s.mqtt_password)
        await door.start()
        await door.publish(f"{self._door_topic}/state", "closed", retain=True)
        await door.publish(f"{self._door_topic}/forced", "false", retain=True)
        self._door = door

    async def _door_leave(self) -> None:
        door, self._door = self._door, None
        if door is not None:
            await door.close()

    async def _door_crash(self) -> None:
        # A power cut: no DISCONNECT, so the broker publishes the Will (offline).
        door, self._door = self._door, None
        if door is not None:
            await door.crash()

    # -- config pieces ----------------------------------------------------------------
    def config_devices(self, site: str) -> list[dict[str, Any]]:
        out = []
        for m in self.members.values():
            entry: dict[str, Any] = {"id": m.id, "site": site, "kind": m.kind, "name": m.name,
                                     "host": m.host, "location": m.location,
                                     "depends_on": m.parents, "checks": m.checks}
            if m.ports:
                entry["ports"] = m.ports
            if m.credentials:
                entry["credentials"] = m.credentials
            out.append(entry)
        return out

    def config_sources(self) -> dict[str, Any]:
        if not self.use_mqtt or self.broker is None:
            return {}
        return {"mqtt": {"brokers": {"demo": {
            "host": self.broker.host, "port": self.broker.port,
            "credentials": "demo-mqtt"}}}}

    # -- running ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start every device (snmpsim and Mosquitto first, side by side)."""
        try:
            await asyncio.gather(self._start_snmp(), self._start_broker())
            for m in self.members.values():
                if m.start is not None:
                    await m.start()
                    if m.stop is not None:
                        self._running.append(m.stop)
        except BaseException:
            await self.stop()
            raise

    async def _start_snmp(self) -> None:
        snmp_members = [m for m in self.members.values() if m.protocol == "snmp"]
        if not self.use_snmp or not snmp_members:
            return
        kinds = {"switch": "switch", "nvr": "nvr", "ups": "ups"}
        communities = self.secrets.snmp_communities
        first, *others = snmp_members
        lab = SnmpLab({communities[m.id]: kinds[m.kind] for m in snmp_members},
                      host=first.host, port=SNMP_PORT,
                      extra_endpoints=[(m.host, SNMP_PORT) for m in others])
        # snmpsim indexes its recordings before it answers (~0.6 s): off the loop.
        try:
            await asyncio.to_thread(lab.start)
        except BaseException:
            await asyncio.to_thread(lab.stop)  # a child that never got ready, and its files
            raise
        self._snmp = lab

    async def _start_broker(self) -> None:
        if not self.use_mqtt:
            return
        s = self.secrets
        broker = MosquittoServer(host=self._broker_host, users={s.mqtt_user: s.mqtt_password})
        await broker.start()
        self.broker = broker

    async def stop(self) -> None:
        running, self._running = self._running, []
        for stop in reversed(running):
            await stop()
        if self._snmp is not None:
            await asyncio.to_thread(self._snmp.stop)
            self._snmp = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None

    # -- faults -----------------------------------------------------------------------
    def can_go_down(self) -> list[str]:
        """Leaf devices whose every server the demo controls (so 'down' is really down)."""
        return [m.id for m in self.members.values()
                if m.protocol in ("onvif", "sip", "modbus", "mqtt")
                or (m.protocol == "snmp" and not self.use_snmp and m.kind == "nvr")]

    async def take_down(self, device: str) -> None:
        member = self.members[device]
        action = member.down or member.stop
        if action is not None:
            await action()

    async def bring_back(self, device: str) -> None:
        member = self.members[device]
        action = member.up or member.start
        if action is not None:
            await action()

    def protocol_faults(self) -> list[ProtocolFault]:
        faults = []
        if TAMPER_CAMERA in self._cameras:
            camera = self._cameras[TAMPER_CAMERA]

            async def covered() -> None:
                camera.tamper(True)

            async def uncovered() -> None:
                camera.tamper(False)

            faults.append(ProtocolFault(TAMPER_CAMERA, "camera_tamper",
                                        "lobby camera covered (ONVIF tamper event "
                                        "GlobalSceneChange)", covered, uncovered))
        if self._modbus is not None:
            modbus = self._modbus

            async def ac_fail() -> None:
                await modbus.set_fault(1, "ac_fail")

            async def ac_back() -> None:
                await modbus.reset(1)

            faults.append(ProtocolFault("alarm-1", "alarm_ac_fail",
                                        "alarm panel AC power failure (Modbus ac_fail bit set)",
                                        ac_fail, ac_back))
        if self._snmp is not None:
            snmp, community = self._snmp, self.secrets.snmp_communities["ups-1"]

            async def on_battery() -> None:
                await asyncio.to_thread(snmp.inject, community, "on_battery")

            async def on_mains() -> None:
                await asyncio.to_thread(snmp.clear, community)

            faults.append(ProtocolFault("ups-1", "ups_on_battery",
                                        "UPS on battery (SNMP upsOutputSource = battery)",
                                        on_battery, on_mains))
        if self._registrar is not None:
            registrar = self._registrar

            async def unregister() -> None:
                registrar.unregister(DOOR_USER)

            async def register() -> None:
                registrar.register(DOOR_USER)

            faults.append(ProtocolFault("door-b1", "intercom_unregistered",
                                        f"door station {DOOR_USER} dropped its SIP "
                                        f"registration", unregister, register))
        if self.use_mqtt:
            async def forced() -> None:
                await self._door_forced("true")

            async def closed() -> None:
                await self._door_forced("false")

            faults.append(ProtocolFault("acp-gate", "door_forced",
                                        "gate door forced open (MQTT …/forced = true)",
                                        forced, closed))
        return faults

    async def _door_forced(self, value: str) -> None:
        if self._door is not None:
            await self._door.publish(f"{self._door_topic}/forced", value, retain=True)
