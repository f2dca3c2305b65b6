"""The demo community: real protocols on loopback, and the faults the demo injects are
seen by the daemon's own probes (what the rules then turn into tickets); the camera
tamper event goes through a running daemon to a ticket that opens and clears."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from elvwatch.cli.demo import ENV_PREFIX, SITE, _snmp_env, demo_config
from elvwatch.config.loading import load_config
from elvwatch.config.resolved import Config
from elvwatch.daemon.app import App
from elvwatch.lab.community import TAMPER_CAMERA, Community, Secrets, snmp_available
from elvwatch.lab.mosquitto import MosquittoServer
from elvwatch.probes.base import Observation, Status
from elvwatch.probes.registry import PULL
from tests.helpers import until

# Not the demo's 127.42/16 (a demo may be running here), and a block per test process
# so that two suites on one machine do not collide.
BASE = f"127.43.{os.getpid() % 250}."
SECRETS = Secrets(camera_user="admin", camera_password="cam-pw-for-tests",
                  snmp_communities={d: f"c-{d}" for d in ("core-sw", "poe-sw-1", "nvr-1",
                                                         "ups-1")},
                  mqtt_user="demo", mqtt_password="mqtt-pw-for-tests")
ENV = {f"{ENV_PREFIX}CAMERA_PASSWORD": SECRETS.camera_password,
       f"{ENV_PREFIX}MQTT_PASSWORD": SECRETS.mqtt_password,
       **{_snmp_env(d): c for d, c in SECRETS.snmp_communities.items()}}


async def _running(tmp_path: Path, *, snmp: bool, mqtt: bool
                   ) -> AsyncIterator[tuple[Community, Config]]:
    community = Community(BASE, SECRETS, snmp=snmp, mqtt=mqtt)
    await community.start()
    try:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(demo_config("127.0.0.1:0", community),
                                       allow_unicode=True), encoding="utf-8")
        yield community, load_config(path, environ=ENV)
    finally:
        await community.stop()


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[tuple[Community, Config]]:
    if not snmp_available() or not MosquittoServer.available():
        pytest.fail("the demo test needs snmpsim (pip install -e '.[test]') and mosquitto "
                    "(bash .ci/run installs both)", pytrace=False)
    async for running in _running(tmp_path, snmp=True, mqtt=True):
        yield running


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[tuple[Community, Config]]:
    async for running in _running(tmp_path, snmp=False, mqtt=False):
        yield running


async def probe(config: Config, device: str, check_type: str) -> Observation:
    dev = config.devices[device]
    check = next(c for c in dev.checks if c.type == check_type)
    return await PULL[check_type].prober(dev.target, check)


async def test_every_demo_device_answers_its_protocol(full: tuple[Community, Config]) -> None:
    _, config = full
    assert len(config.devices) == 12
    seen = set()
    for device in config.devices.values():
        assert all(d.config.site == SITE for d in config.devices.values())
        for check in device.checks:
            seen.add(check.type)
            if check.type in PULL:
                obs = await PULL[check.type].prober(device.target, check)
                assert (obs.status, obs.error) == (Status.OK, None), (device.id, obs)
    assert seen == {"onvif", "rtsp", "onvif_events", "snmp", "modbus", "sip",
                    "sip_registration", "mqtt"}
    # Secrets reach the config as env var names only.
    text = (config.path).read_text(encoding="utf-8")
    assert SECRETS.camera_password not in text and "c-ups-1" not in text


async def test_injected_protocol_faults_show_in_the_values_the_rules_read(
        full: tuple[Community, Config]) -> None:
    community, config = full
    faults = {f.rule: f for f in community.protocol_faults()}
    assert set(faults) == {"camera_tamper", "alarm_ac_fail", "ups_on_battery",
                           "intercom_unregistered", "door_forced"}
    expected = {"alarm_ac_fail": ("alarm-1", "modbus", "modbus.ac_fail"),
                "ups_on_battery": ("ups-1", "snmp", "snmp.ups.on_battery"),
                "intercom_unregistered": ("door-b1", "sip_registration", "sip.registered")}
    for rule, (device, check_type, value) in expected.items():
        healthy = 0.0 if rule != "intercom_unregistered" else 1.0
        before = await probe(config, device, check_type)
        assert before.values[value] == healthy, (rule, before)
        await faults[rule].inject()
        during = await probe(config, device, check_type)
        assert during.values[value] == 1.0 - healthy, (rule, during)
        await faults[rule].clear()
        after = await probe(config, device, check_type)
        assert after.values[value] == healthy, (rule, after)


async def test_a_camera_taken_down_stops_answering_and_comes_back(
        full: tuple[Community, Config]) -> None:
    community, config = full
    assert "cam-gate-01" in community.can_go_down()
    assert "core-sw" not in community.can_go_down()
    await community.take_down("cam-gate-01")
    assert (await probe(config, "cam-gate-01", "onvif")).status is Status.DOWN
    assert (await probe(config, "cam-gate-01", "rtsp")).status is Status.DOWN
    await community.bring_back("cam-gate-01")
    assert (await probe(config, "cam-gate-01", "onvif")).status is Status.OK
    assert (await probe(config, "cam-gate-01", "rtsp")).status is Status.OK


async def test_without_snmpsim_and_mosquitto_those_devices_fall_back_to_tcp(
        bare: tuple[Community, Config]) -> None:
    community, config = bare
    for device in ("core-sw", "poe-sw-1", "nvr-1", "ups-1", "acp-gate"):
        assert [c.type for c in config.devices[device].checks] == ["tcp"], device
        assert (await probe(config, device, "tcp")).status is Status.OK
    assert "sources" not in demo_config("127.0.0.1:0", community)
    assert {f.rule for f in community.protocol_faults()} == {
        "camera_tamper", "alarm_ac_fail", "intercom_unregistered"}
    await community.take_down("acp-gate")
    assert (await probe(config, "acp-gate", "tcp")).status is Status.DOWN
    await community.bring_back("acp-gate")
    assert (await probe(config, "acp-gate", "tcp")).status is Status.OK


async def test_camera_tamper_event_opens_a_ticket_in_the_demo_daemon_and_clears_it(
        bare: tuple[Community, Config]) -> None:
    community, config = bare
    (tamper,) = [f for f in community.protocol_faults() if f.rule == "camera_tamper"]
    assert tamper.device == TAMPER_CAMERA
    # It may go down too: a new subscription is told its tamper state (Initialized).
    assert TAMPER_CAMERA in community.can_go_down()
    app = App(config)
    await app.start()
    try:
        assert app.tickets is not None
        tickets = app.tickets

        async def subscribed() -> bool:
            return any(s.device == TAMPER_CAMERA and s.state == "started"
                       for s in app.snapshot().onvif_events)

        async def tamper_ticket(active: bool) -> bool:
            found = [t for t in await tickets.list_tickets(state="live", kind="fault",
                                                           device=TAMPER_CAMERA)
                     if t.rule == "camera_tamper"]
            return len(found) == 1 and found[0].fault_active is active

        await until(subscribed, "the demo daemon to subscribe to the camera's events")
        assert not await tamper_ticket(True)
        await tamper.inject()
        await until(lambda: tamper_ticket(True), "the camera_tamper ticket")
        await tamper.clear()
        await until(lambda: tamper_ticket(False), "the tamper fault to clear")
    finally:
        await app.stop()
