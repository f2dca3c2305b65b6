"""The ONVIF events source and the recording poll wired into a real daemon App: a
simulated camera's tamper event fires the built-in ``camera_tamper`` rule and opens
one ticket; a simulated NVR whose recording stops fires ``recording_stopped``; both
clear, and their tickets resolve, when the camera reports the fault over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from elvwatch.config.loading import ConfigInvalid, load_config
from elvwatch.daemon.app import App
from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.probes.onvif import clear_hold_offs
from tests.helpers import until
from tests.test_daemon import free_port

FAST = {"subscription_seconds": 30, "pull_seconds": 1, "retry_min_seconds": 0.2,
        "retry_max_seconds": 1}


def camera_config(path: Path, camera: OnvifSimulator, nvr: OnvifSimulator) -> Path:
    path.write_text(yaml.safe_dump({
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "interval": 1, "timeout": 1,
        "scheduler": {"down_after": 2, "jitter": 0.0},
        "credentials": {"cams": {"username": "admin",
                                 "password_env": "ELVWATCH_TEST_CAMERA_PASSWORD"}},
        "sites": [{"id": "garden", "name": "阳光花园",
                   "contract": {"start": "2026-01-01"}}],
        "devices": [
            {"id": "cam-gate", "site": "garden", "kind": "camera", "host": camera.host,
             "credentials": "cams",
             "checks": [{"type": "onvif_events", "port": camera.port, "interval": 1,
                         "params": FAST}]},
            {"id": "nvr-1", "site": "garden", "kind": "nvr", "host": nvr.host,
             "credentials": "cams",
             "checks": [{"type": "onvif", "name": "onvif", "port": nvr.port, "interval": 2,
                         "timeout": 2, "params": {"stream": False}}]},
        ]}, allow_unicode=True), encoding="utf-8")
    return path


async def _tickets(app: App, rule: str, timeout: float = 15.0) -> list[Any]:
    """The live tickets of ``rule`` once there are some ([] when none came in time)."""
    manager = app.tickets
    assert manager is not None

    async def found() -> list[Any]:
        return [t for t in await manager.list_tickets(state="live", kind="fault")
                if t.rule == rule]

    try:
        result: list[Any] = await until(found, f"a {rule} ticket", timeout, every=0.1)
    except AssertionError:
        return []
    return result


async def _settled(app: App, numbers: set[str], timeout: float = 15.0) -> bool:
    manager = app.tickets
    assert manager is not None

    async def settled() -> bool:
        live = {t.number for t in await manager.list_tickets(state="open", kind="fault")}
        return not numbers & live

    try:
        return bool(await until(settled, "the tickets settled", timeout, every=0.1))
    except AssertionError:
        return False


async def test_tamper_event_and_stopped_recording_open_tickets_through_the_daemon(
        tmp_path: Path, monkeypatch: Any) -> None:
    clear_hold_offs()
    monkeypatch.setenv("ELVWATCH_TEST_CAMERA_PASSWORD", "secret")
    async with OnvifSimulator() as camera, OnvifSimulator(recording_jobs=2) as nvr:
        app = App(load_config(camera_config(tmp_path / "c.yaml", camera, nvr)))
        await app.start()
        try:
            await until(lambda: camera.subscriptions, "the event subscription", every=0.1)
            assert camera.subscriptions == 1
            assert await _tickets(app, "camera_tamper", timeout=1.0) == []
            camera.tamper(True)
            (ticket,) = await _tickets(app, "camera_tamper")
            assert ticket.device == "cam-gate" and ticket.severity == "major"

            nvr.fault = nvr.fault.RECORDING_STOPPED
            (stopped,) = await _tickets(app, "recording_stopped")
            assert stopped.device == "nvr-1"
            status = app.tracker.devices["nvr-1"].checks["onvif"].last
            assert status is not None and status.values["onvif.recordings_stopped"] == 1
            snap = app.snapshot()
            (stats,) = snap.onvif_events
            assert stats.device == "cam-gate" and stats.received["tamper"] == 1
            # Both faults end when the camera says so: the tickets resolve themselves.
            camera.tamper(False)
            nvr.fault = nvr.fault.NONE
            assert await _settled(app, {ticket.number, stopped.number})
        finally:
            await app.stop()
        assert camera.subscriptions == 0


def test_unknown_onvif_events_param_fails_the_config_load_with_its_line(
        tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "sites: [{id: s, name: S, contract: {start: '2026-01-01'}}]\n"
        "devices:\n"
        "  - id: cam\n"
        "    site: s\n"
        "    kind: camera\n"
        "    host: 127.0.0.1\n"
        "    checks:\n"
        "      - {type: onvif_events, params: {motoin: true}}\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    text = str(caught.value)
    assert "bad.yaml:8" in text and "params.motoin" in text and "unknown key" in text
