"""Each built-in CCTV rule fires and clears through the real daemon polling lab cameras.

One daemon (``RulesApp``: the App as wired, its rule engine's transitions recorded)
watches simulated cameras, an RTSP server and an NVR on loopback for the whole module;
each test injects one fault in its own device, waits for that rule's exact fingerprint
to fire, removes the fault and waits for it to clear.  No other fault of the device
may be open meanwhile (a camera's other checks keep it reachable, as in the field)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from elvwatch.config.loading import load_config
from elvwatch.lab.onvif import CAMERA_TOPICS, DeviceInfo, OnvifFault, OnvifSimulator
from elvwatch.lab.onvif_xml import EventTopic
from elvwatch.lab.rtsp import RtspResponder
from elvwatch.probes.onvif import clear_hold_offs
from elvwatch.rules.faults import fingerprint
from tests.helpers import until
from tests.rules_daemon import RulesApp, clears, faults_of, fires, open_faults, tickets

pytestmark = pytest.mark.asyncio(loop_scope="module")

SITE = "garden"
SERIAL = "DS-2CD2143G2-I20220301AAWRJ00000007"
# Short ONVIF settings: a failed login keeps the credentials away for 1 s only, and
# the events source pulls every second and re-subscribes quickly.
ONVIF = {"stream": False, "recording": False, "hold_off_seconds": 1}
EVENTS = {"subscription_seconds": 30, "pull_seconds": 1, "retry_min_seconds": 0.2,
          "retry_max_seconds": 1}


# Hikvision recorders advertise their disk-full event as a pulse with only a disk number.
DISK_FULL = EventTopic("tns1:Device/HardwareFailure/tnshik:HardDiskFull",
                       (("HardDiskNo", "xs:int"),), (), is_property=False)


@dataclass
class Lab:
    app: RulesApp
    path: Path
    data: dict[str, Any]
    auth: OnvifSimulator      # cam-auth: login failures
    clock: OnvifSimulator     # cam-clock: clock offset
    swap: OnvifSimulator      # cam-swap: serial differs from the archive
    events: OnvifSimulator    # cam-events: video loss over the events source
    nvr: OnvifSimulator       # nvr-1: storage failure event
    hik: OnvifSimulator       # nvr-hik: Hikvision-style disk-full pulse
    rtsp: RtspResponder       # cam-stream: the stream


def _onvif(camera: OnvifSimulator, **extra: Any) -> dict[str, Any]:
    return {"type": "onvif", "name": "onvif", "port": camera.port, "interval": 0.5,
            "timeout": 0.5, "params": {**ONVIF, **extra}}


def _events(camera: OnvifSimulator, **extra: Any) -> dict[str, Any]:
    return {"type": "onvif_events", "name": "events", "port": camera.port, "interval": 1,
            "params": {**EVENTS, **extra}}


def _tcp(port: int) -> dict[str, Any]:
    return {"type": "tcp", "name": f"tcp_{port}", "port": port, "interval": 0.5,
            "timeout": 0.5}


def _camera(device: str, host: str, checks: list[dict[str, Any]],
            kind: str = "camera") -> dict[str, Any]:
    return {"id": device, "site": SITE, "kind": kind, "host": host, "credentials": "cams",
            "checks": checks}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    clear_hold_offs()
    tmp = tmp_path_factory.mktemp("rules-cameras")
    (tmp / "cam-password").write_text("secret\n", encoding="utf-8")
    async with OnvifSimulator() as auth, OnvifSimulator() as clock, \
            OnvifSimulator(info=DeviceInfo(serial=SERIAL)) as swap, \
            OnvifSimulator() as events, OnvifSimulator() as nvr, RtspResponder() as rtsp, \
            OnvifSimulator(event_topics=[*CAMERA_TOPICS, DISK_FULL]) as hik:
        data: dict[str, Any] = {
            "interval": 0.5, "timeout": 0.5,
            "scheduler": {"down_after": 2, "jitter": 0.0},
            "storage": {"url": f"sqlite+aiosqlite:///{tmp}/e.db"},
            "credentials": {"cams": {"username": "admin",
                                     "password_file": str(tmp / "cam-password")}},
            "sites": [{"id": SITE, "name": "阳光花园", "contract": {"start": "2026-01-01"}}],
            "devices": [
                _camera("cam-auth", auth.host, [_onvif(auth), _tcp(auth.port)]),
                _camera("cam-clock", clock.host, [_onvif(clock)]),
                # No serial in the archive: the first one the camera reports counts.
                _camera("cam-swap", swap.host, [_onvif(swap)]),
                _camera("cam-events", events.host, [_events(events)]),
                _camera("nvr-1", nvr.host, [_events(nvr)], kind="nvr"),
                _camera("nvr-hik", hik.host, [_events(hik, pulse_hold_seconds=2)],
                        kind="nvr"),
                _camera("cam-stream", rtsp.host, [
                    {"type": "rtsp", "name": "rtsp", "port": rtsp.port, "interval": 0.2,
                     "timeout": 0.2, "params": {"path": "/Streaming/Channels/101"}},
                    _tcp(rtsp.port)]),
            ]}
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        app = RulesApp(load_config(path))
        await app.start()
        try:
            devices = app.tracker.devices
            await until(lambda: all(s.state.value == "up" for s in devices.values()),
                        timeout=15, what="every lab device up")
            await until(lambda: events.subscriptions == nvr.subscriptions ==
                        hik.subscriptions == 1, what="the event subscriptions")
            assert open_faults(app.transitions) == {}
            yield Lab(app, path, data, auth, clock, swap, events, nvr, hik, rtsp)
        finally:
            await app.stop()
            clear_hold_offs()


def fp(device: str, rule: str) -> str:
    return fingerprint(SITE, device, rule)


async def test_rejected_login_fires_onvif_auth_failed_and_a_good_one_clears_it(
        lab: Lab) -> None:
    lab.auth.fault = OnvifFault.AUTH_FAIL
    await fires(lab, "cam-auth", "onvif_auth_failed")
    assert lab.auth.auth_failures >= 1
    firing = open_faults(lab.app.transitions)[fp("cam-auth", "onvif_auth_failed")]
    assert firing.severity == "general" and firing.system == "cctv"
    (ticket,) = await tickets(lab, "cam-auth", lambda t: len(t) == 1, "one ticket")
    assert (ticket.rule, ticket.severity) == ("onvif_auth_failed", "general")
    assert ticket.fingerprint == fp("cam-auth", "onvif_auth_failed")
    assert "secret" not in ticket.summary
    # The camera takes the password again; the 1 s hold-off ends and the next login
    # works.
    lab.auth.fault = OnvifFault.NONE
    await clears(lab, "cam-auth", "onvif_auth_failed")
    (after,) = await tickets(lab, "cam-auth", lambda t: len(t) == 1 and not t[0].fault_active,
                             "the ticket to see its fault end")
    assert after.number == ticket.number


async def test_stream_not_found_fires_stream_down_and_clears_when_it_is_back(
        lab: Lab) -> None:
    lab.rtsp.no_stream = True
    await fires(lab, "cam-stream", "stream_down")
    status = lab.app.tracker.devices["cam-stream"]
    assert status.state.value == "degraded"  # the camera still answers on its port
    last = status.checks["rtsp"].last
    assert last is not None and (last.error or "").startswith("no stream")
    lab.rtsp.no_stream = False
    await clears(lab, "cam-stream", "stream_down")


async def test_camera_clock_ten_minutes_off_fires_clock_drift_until_it_is_set(
        lab: Lab) -> None:
    lab.clock.clock_offset = 600.0
    await fires(lab, "cam-clock", "clock_drift")
    last = lab.app.tracker.devices["cam-clock"].checks["onvif"].last
    assert last is not None
    assert abs(float(last.values["onvif.clock_offset_seconds"]) - 600) < 5
    lab.clock.clock_offset = 0.0
    await clears(lab, "cam-clock", "clock_drift")


async def test_signal_loss_event_fires_video_loss_with_one_major_ticket(lab: Lab) -> None:
    lab.events.signal_loss(True)
    await fires(lab, "cam-events", "video_loss")
    (ticket,) = await tickets(lab, "cam-events", lambda t: len(t) == 1, "one ticket")
    assert (ticket.rule, ticket.severity) == ("video_loss", "major")
    assert ticket.fingerprint == fp("cam-events", "video_loss")
    lab.events.signal_loss(False)
    await clears(lab, "cam-events", "video_loss")
    await tickets(lab, "cam-events", lambda t: len(t) == 1 and not t[0].fault_active,
                  "the ticket to see its fault end")


async def test_storage_failure_event_fires_nvr_disk_failed_and_clears(lab: Lab) -> None:
    lab.nvr.storage_failure(True)
    await fires(lab, "nvr-1", "nvr_disk_failed")
    firing = open_faults(lab.app.transitions)[fp("nvr-1", "nvr_disk_failed")]
    assert firing.severity == "major" and firing.kind == "nvr"
    lab.nvr.storage_failure(False)
    await clears(lab, "nvr-1", "nvr_disk_failed")


async def test_disk_full_pulse_fires_nvr_disk_full_for_its_hold_time(lab: Lab) -> None:
    lab.hik.raise_event(DISK_FULL.topic, {"HardDiskNo": "1"}, {}, operation="")
    await fires(lab, "nvr-hik", "nvr_disk_full")
    (ticket,) = await tickets(lab, "nvr-hik", lambda t: len(t) == 1, "one ticket")
    assert (ticket.rule, ticket.severity) == ("nvr_disk_full", "major")
    # No event says it ended: the 2 s hold runs out.
    await clears(lab, "nvr-hik", "nvr_disk_full")


async def test_swapped_camera_fires_camera_replaced_until_the_archive_has_its_serial(
        lab: Lab) -> None:
    app = lab.app

    def last_poll() -> object:
        return app.tracker.devices["cam-swap"].checks["onvif"].last
    await until(lambda: app.tracker.devices["cam-swap"].info.get("serial") == SERIAL,
                what="the first serial reported")
    lab.swap.info.serial = "DS-2CD2143G2-I20250917AAWRJ99999999"
    await fires(lab, "cam-swap", "camera_replaced")
    # A reload that leaves this camera's archive alone keeps the fault: the serial
    # first reported still counts.
    assert await app.reload()
    for _ in range(2):
        polled = last_poll()
        await until(lambda seen=polled: last_poll() is not seen,
                    what="a poll after the reload")
    assert faults_of(lab, "cam-swap") == [fp("cam-swap", "camera_replaced")]
    # The engineer records the new camera in the equipment archive (the config's
    # ``serial``) and reloads: the fault clears.
    lab.data["devices"][2]["serial"] = lab.swap.info.serial
    lab.path.write_text(yaml.safe_dump(lab.data, allow_unicode=True), encoding="utf-8")
    assert await app.reload()
    await clears(lab, "cam-swap", "camera_replaced")
