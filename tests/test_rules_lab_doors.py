"""The built-in access-control and intercom rules fire and clear through the real daemon.

One daemon (``RulesApp``: the App as wired, its rule engine's transitions recorded)
for the module watches door controllers that publish to a Mosquitto the test starts,
in the shipped ``access_control`` profile's layout (``lab.mqtt.access_door``), and a
SIP door station that sipp registers at the lab registrar.  Each controller also
answers on a TCP port (its web page) on its own loopback address, as in the field, so
a door fault leaves it reachable.  Each test injects one fault, waits for that rule's
exact fingerprint to fire, removes the fault and waits for it to clear."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from elvwatch.config.loading import load_config
from elvwatch.lab.devices import LabFleet, tcp_check
from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.lab.mqtt import SimDevice, access_door
from elvwatch.lab.sip import SipResponder
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
from tests.test_daemon import first_address
from tests.test_sip import _free_port
from tests.test_sip_registration import _sipp_register

pytestmark = [
    pytest.mark.skipif(not MosquittoServer.available(),
                       reason="needs the Debian package mosquitto (see .ci/run)"),
    pytest.mark.skipif(shutil.which("sipp") is None,
                       reason="needs sipp (Debian package sip-tester, see .ci/run)"),
    pytest.mark.asyncio(loop_scope="module"),
]

SITE = "lab"
PORT = 18557          # each controller's web port, on its own loopback address
DOORS = ("door-forced", "door-held", "door-stale")
STATION, USER = "door-b1", "8101"
MQ_USER, MQ_PASSWORD = "elv", "mq-pw-for-the-rules-lab"


@dataclass
class Lab:
    app: RulesApp
    doors: dict[str, SimDevice]
    registrar: SipResponder
    tmp: Path


def _door(entry: dict[str, object]) -> dict[str, object]:
    device = str(entry["id"])
    entry["checks"] = [
        {**tcp_check(PORT), "name": "web"},
        {"type": "mqtt", "name": "door", "interval": 0.5, "timeout": 0.5,
         "params": {"topic": "site/{site}/{device}", "profile": "access_control",
                    "max_age": 1.0}}]
    entry["name"] = {"door-forced": "南门门禁", "door-held": "1号楼单元门",
                     "door-stale": "车库门禁"}[device]
    return entry


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    tmp = tmp_path_factory.mktemp("rules-doors")
    (tmp / "mq-password").write_text(MQ_PASSWORD + "\n", encoding="utf-8")
    station = SipResponder("127.0.0.1", _free_port())
    registrar = SipResponder("127.0.0.1", _free_port(), registrar=True)
    async with MosquittoServer(users={MQ_USER: MQ_PASSWORD}) as broker, \
            LabFleet(len(DOORS), first_address(), [PORT]) as fleet:
        await station.start()
        await registrar.start()
        doors = {d: access_door(broker.host, broker.port, f"site/{SITE}/{d}",
                                heartbeat_seconds=0.2, username=MQ_USER,
                                password=MQ_PASSWORD) for d in DOORS}
        entries = fleet.config_devices(SITE, "access_panel")
        for entry, device in zip(entries, DOORS, strict=True):
            entry["id"] = device
        data = mqtt_lab_config(tmp, broker, MQ_USER, "elvwatch-rules", interval=0.2,
                               site=SITE, devices=[
                *(_door(e) for e in entries),
                {"id": STATION, "site": SITE, "kind": "door_station", "host": station.host,
                 "checks": [
                     {"type": "sip", "port": station.port},
                     {"type": "sip_registration",
                      "params": {"server": registrar.host, "server_port": registrar.port,
                                 "user": USER}}]},
            ])
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        app = RulesApp(load_config(path))
        try:
            await _sipp_register(registrar.port, USER, 3600, tmp)
            for door in doors.values():
                await door.start()
            await app.start()
            devices = app.tracker.devices
            await until(lambda: all(s.state.value == "up" for s in devices.values()),
                        what="every door and the station up")
            assert open_faults(app.transitions) == {}
            yield Lab(app, doors, registrar, tmp)
        finally:
            await app.stop()
            for door in doors.values():
                await door.close()
            await station.stop()
            await registrar.stop()


def fp(device: str, rule: str) -> str:
    return fingerprint(SITE, device, rule)


async def test_forced_door_fires_door_forced_with_one_emergency_ticket(lab: Lab) -> None:
    door = lab.doors["door-forced"]
    await door.publish(f"site/{SITE}/door-forced/forced", "true", retain=True)
    await fires(lab, "door-forced", "door_forced")
    # The controller still answers: degraded (once confirmed), not unreachable.
    await until(lambda: lab.app.tracker.devices["door-forced"].state.value == "degraded",
                what="the controller degraded")
    assert faults_of(lab, "door-forced") == [fp("door-forced", "door_forced")]
    (ticket,) = await tickets(lab, "door-forced", lambda t: len(t) == 1, "one ticket")
    assert (ticket.rule, ticket.severity) == ("door_forced", "emergency")
    assert ticket.fingerprint == fp("door-forced", "door_forced")
    await door.publish(f"site/{SITE}/door-forced/forced", "false", retain=True)
    await clears(lab, "door-forced", "door_forced")
    (after,) = await tickets(lab, "door-forced", lambda t: len(t) == 1 and not t[0].fault_active,
                             "the ticket to see its fault end")
    assert after.number == ticket.number


async def test_door_held_open_fires_door_held_open_and_clears_when_closed(lab: Lab) -> None:
    door = lab.doors["door-held"]
    await door.publish(f"site/{SITE}/door-held/state", "open", retain=True)
    await door.publish(f"site/{SITE}/door-held/held_open", "true", retain=True)
    await fires(lab, "door-held", "door_held_open")
    firing = open_faults(lab.app.transitions)[fp("door-held", "door_held_open")]
    assert (firing.severity, firing.system) == ("general", "access_control")
    await door.publish(f"site/{SITE}/door-held/held_open", "false", retain=True)
    await door.publish(f"site/{SITE}/door-held/state", "closed", retain=True)
    await clears(lab, "door-held", "door_held_open")


async def test_silent_controller_fires_mqtt_stale_and_clears_on_its_next_heartbeat(
        lab: Lab) -> None:
    door = lab.doors["door-stale"]
    door.silence()
    await fires(lab, "door-stale", "mqtt_stale")
    last = lab.app.tracker.devices["door-stale"].checks["door"].last
    assert last is not None and (last.error or "").startswith("stale: no message for")
    door.resume()
    await clears(lab, "door-stale", "mqtt_stale")


async def test_station_unregistered_by_sipp_fires_intercom_unregistered_until_it_registers(
        lab: Lab) -> None:
    await _sipp_register(lab.registrar.port, USER, 0, lab.tmp)
    await fires(lab, STATION, "intercom_unregistered")
    firing = open_faults(lab.app.transitions)[fp(STATION, "intercom_unregistered")]
    assert (firing.severity, firing.system) == ("general", "intercom")
    (ticket,) = await tickets(lab, STATION, lambda t: len(t) == 1, "one ticket")
    assert (ticket.rule, ticket.severity) == ("intercom_unregistered", "general")
    await _sipp_register(lab.registrar.port, USER, 3600, lab.tmp)
    await clears(lab, STATION, "intercom_unregistered")
