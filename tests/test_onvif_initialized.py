"""A camera's current state on a new subscription (ONVIF ``PropertyOperation=
"Initialized"``), over real sockets: the lab camera sends it as real cameras do, and
the daemon's events source reads it — a camera tampered before the daemon starts
fires ``camera_tamper`` at once, a tamper still active across a camera reboot keeps
firing without a clear in between, and one that ended while the camera was away
clears once the camera tells so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from elvwatch.config.loading import load_config
from elvwatch.config.resolved import Config
from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.probes.base import Observation
from elvwatch.probes.onvif import clear_hold_offs
from elvwatch.probes.onvif_events import Notification
from elvwatch.rules.faults import FaultState
from tests.helpers import until
from tests.rules_daemon import RulesApp, clears, fault_fp, fires
from tests.test_daemon import free_port
from tests.test_onvif_events import subscribe_and_pull

DEVICE = "cam-lobby"
TAMPER = "tns1:VideoSource/GlobalSceneChange/ImagingService"
FAST = {"subscription_seconds": 30, "pull_seconds": 1, "retry_min_seconds": 0.2,
        "retry_max_seconds": 1, "call_timeout_seconds": 3}


# -- the simulator ------------------------------------------------------------------

async def _subscribe_and_pull(sim: OnvifSimulator, before_pull: Any = None
                              ) -> list[Notification]:
    return await subscribe_and_pull(sim, before_pull, wait=1.0)


async def test_a_new_subscription_is_first_told_each_property_state_as_initialized() -> None:
    async with OnvifSimulator() as sim:
        assert await _subscribe_and_pull(sim) == []         # nothing raised: nothing told
        sim.tamper(True)                                      # no subscription: only state
        sim.signal_loss(True)
        sim.signal_loss(False)                                # the last state counts
        sim.storage_failure(True)
        sim.raise_event("tns1:Device/HardwareFailure/StorageFailure", {"Token": "Storage_1"},
                        {"Failed": "false"}, operation="Deleted")   # the disk is gone
        sim.raise_event(TAMPER, {"Source": "VideoSource_2"}, {"State": "false"})

        def live() -> None:
            sim.tamper(False)                                 # after subscribing: Changed

        notes = await _subscribe_and_pull(sim, live)
    assert [(n.topic, n.operation, n.source, n.data) for n in notes] == [
        (TAMPER, "Initialized", {"Source": "VideoSource_1"}, {"State": "true"}),
        ("tns1:VideoSource/SignalLoss", "Initialized", {"VideoSource": "VideoSource_1"},
         {"State": "false"}),
        (TAMPER, "Initialized", {"Source": "VideoSource_2"}, {"State": "false"}),
        (TAMPER, "Changed", {"Source": "VideoSource_1"}, {"State": "false"}),
    ]


async def test_a_rebooted_camera_still_reports_the_state_set_before_and_while_stopped(
        ) -> None:
    sim = OnvifSimulator()
    sim.tamper(True)                       # before it ever started: a covered lens
    await sim.start()
    try:
        (first,) = await _subscribe_and_pull(sim)
        assert (first.operation, first.data) == ("Initialized", {"State": "true"})
        await sim.stop()
        assert sim.subscriptions == 0      # the reboot forgot the subscriptions...
        sim.signal_loss(True)              # ...while the video input was unplugged
        await sim.start()
        notes = await _subscribe_and_pull(sim)
    finally:
        await sim.stop()
    assert [(n.topic, n.operation, n.data) for n in notes] == [       # ...not the state
        (TAMPER, "Initialized", {"State": "true"}),
        ("tns1:VideoSource/SignalLoss", "Initialized", {"State": "true"})]


# -- the daemon ---------------------------------------------------------------------

class WatchedApp(RulesApp):
    """The daemon as wired, recording its fault transitions and observations."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.observations: list[Observation] = []

    def _on_observation(self, obs: Observation) -> None:
        self.observations.append(obs)
        super()._on_observation(obs)


class Lab:
    def __init__(self, app: WatchedApp, camera: OnvifSimulator) -> None:
        self.app, self.camera = app, camera

    @property
    def fp(self) -> str:
        return fault_fp(self.app, DEVICE, "camera_tamper")

    def tamper_states(self) -> list[FaultState]:
        """The camera_tamper fault's state changes, in order."""
        return [t.state for t in self.app.transitions
                if t.fingerprint == self.fp and t.state is not t.previous]

    def tamper_values(self, since: int = 0) -> list[float]:
        """Every onvif.tamper the events check reported (from observation ``since``)."""
        return [float(o.values["onvif.tamper"]) for o in self.app.observations[since:]
                if o.device == DEVICE and "onvif.tamper" in o.values]

    def stats(self) -> Any:
        (stats,) = self.app.snapshot().onvif_events
        return stats

    async def reboot(self, during: Any = None) -> None:
        """Stop the camera until the daemon has seen its subscription fail, then
        start it again (same address and port)."""
        await self.camera.stop()
        await until(lambda: self.stats().state == "failed", what="the subscription lost")
        if during is not None:
            during()
        await self.camera.start()
        await until(lambda: self.stats().subscribes == 2 and self.stats().state == "started",
                    what="resubscribed")


@asynccontextmanager
async def _daemon(tmp_path: Path, monkeypatch: Any) -> AsyncIterator[Lab]:
    clear_hold_offs()
    monkeypatch.setenv("ELVWATCH_TEST_CAMERA_PASSWORD", "secret")
    camera = OnvifSimulator()
    camera.tamper(True)                     # covered before the daemon ever looks
    await camera.start()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "interval": 1, "timeout": 1,
        "scheduler": {"down_after": 2, "jitter": 0.0},
        "credentials": {"cams": {"username": "admin",
                                 "password_env": "ELVWATCH_TEST_CAMERA_PASSWORD"}},
        "sites": [{"id": "garden", "name": "Garden", "contract": {"start": "2026-01-01"}}],
        "devices": [{"id": DEVICE, "site": "garden", "kind": "camera", "host": camera.host,
                     "credentials": "cams",
                     "checks": [{"type": "onvif_events", "name": "events",
                                 "port": camera.port, "interval": 1, "params": FAST}]}],
    }), encoding="utf-8")
    app = WatchedApp(load_config(path))
    await app.start()
    try:
        yield Lab(app, camera)
    finally:
        await app.stop()
        await camera.stop()


async def test_a_camera_tampered_before_the_daemon_starts_fires_from_the_first_subscription(
        tmp_path: Path, monkeypatch: Any) -> None:
    async with _daemon(tmp_path, monkeypatch) as lab:
        await fires(lab, DEVICE, "camera_tamper")
        stats = lab.stats()
        assert (stats.subscribes, stats.received["tamper"]) == (1, 1)   # the Initialized one
        # Never a made-up "no tamper" before the camera told its state.
        assert lab.tamper_values() and set(lab.tamper_values()) == {1.0}
        assert lab.tamper_states() == [FaultState.FIRING]


async def test_a_tamper_still_active_across_a_camera_reboot_keeps_firing_without_a_clear(
        tmp_path: Path, monkeypatch: Any) -> None:
    async with _daemon(tmp_path, monkeypatch) as lab:
        await fires(lab, DEVICE, "camera_tamper")
        mark = len(lab.app.observations)
        await lab.reboot()
        # The new subscription's Initialized State=true confirms the fault.
        await until(lambda: lab.stats().received["tamper"] == 2, what="the state resent")
        await until(lambda: lab.tamper_values(mark) != [],
                    what="a tamper value after the reboot")
        down = [o for o in lab.app.observations[mark:] if o.status.value == "down"]
        assert down and all("onvif.tamper" not in o.values for o in down)  # unknown, not 0
        assert set(lab.tamper_values()) == {1.0}
        await fires(lab, DEVICE, "camera_tamper")   # the one open fault of the camera
        assert FaultState.CLEARED not in lab.tamper_states()
        assert lab.tamper_states().count(FaultState.FIRING) == 1
        # ...and it still ends when the camera says so.
        lab.camera.tamper(False)
        await clears(lab, DEVICE, "camera_tamper")


async def test_a_tamper_that_ended_while_the_camera_was_away_clears_after_resubscribing(
        tmp_path: Path, monkeypatch: Any) -> None:
    async with _daemon(tmp_path, monkeypatch) as lab:
        await fires(lab, DEVICE, "camera_tamper")
        # Uncovered while the camera is off: no subscription hears a Changed event.
        await lab.reboot(during=lambda: lab.camera.tamper(False))
        await clears(lab, DEVICE, "camera_tamper")
        assert lab.tamper_values()[-1] == 0.0
        assert lab.stats().received["tamper"] == 2            # told by Initialized only
        assert lab.tamper_states() == [FaultState.FIRING, FaultState.CLEARED]
