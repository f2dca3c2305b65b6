"""The ONVIF events push source against the lab camera simulator, over real sockets:
events become observations, the subscription is renewed before it expires and
recovers after a reboot, logins are held off together with the onvif check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from elvwatch.exporters.exposition import Family
from elvwatch.exporters.onvif_metrics import onvif_event_families
from elvwatch.lab.onvif import OnvifFault, OnvifSimulator
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.onvif import clear_hold_offs, held_for, probe_onvif
from elvwatch.probes.onvif_event_options import OnvifEventsOptions
from elvwatch.probes.onvif_event_source import OnvifEventSource
from elvwatch.probes.onvif_options import OnvifOptions
from elvwatch.probes.onvif_pullpoint import PullPointState
from tests.helpers import until

CRED = Credential("cam", "admin", Secret("secret"))
FAST = {"subscription_seconds": 30, "pull_seconds": 1, "retry_min_seconds": 0.2,
        "retry_max_seconds": 1, "call_timeout_seconds": 3}


@pytest.fixture(autouse=True)
def _no_hold_offs() -> None:
    clear_hold_offs()


class Run:
    """An OnvifEventSource watching one simulated camera, recording what it emits."""

    def __init__(self, sim: OnvifSimulator, **options: Any) -> None:
        self.sim = sim
        self.seen: list[Observation] = []
        self.source = OnvifEventSource({}, self.seen.append)
        self.target = Target("cam-1", sim.host, system="cctv", kind="camera", credential=CRED)
        self.check = Check("events", "onvif_events", interval=60, port=sim.port,
                           options=OnvifEventsOptions.model_validate({**FAST, **options}))

    @property
    def pullpoint(self) -> Any:
        return self.source.pullpoint("cam-1", "events")

    async def until(self, predicate: Callable[[], bool], what: str,
                    timeout: float = 10.0) -> None:
        await until(predicate, what, timeout)

    def last(self) -> Observation:
        return self.seen[-1]

    async def started(self) -> None:
        await self.until(lambda: self.pullpoint.state is PullPointState.STARTED, "subscribed")


@pytest.fixture
async def camera() -> AsyncIterator[OnvifSimulator]:
    async with OnvifSimulator() as sim:
        yield sim


@pytest.fixture
async def run(camera: OnvifSimulator) -> AsyncIterator[Run]:
    watched = Run(camera)
    await watched.source.start()
    await watched.source.update([(watched.target, watched.check)])
    try:
        yield watched
    finally:
        await watched.source.stop()


async def test_tamper_event_becomes_an_observation_and_clears(run: Run) -> None:
    await run.started()
    # Unknown until the camera answered the first pull (its Initialized state: none
    # here), then "no tamper".
    subscribed = next(o for o in run.seen if o.values.get("onvif.events_subscribed") == 1)
    assert subscribed.status is Status.OK and "onvif.tamper" not in subscribed.values
    await run.until(lambda: "onvif.tamper" in run.last().values, "the first pull answered")
    assert run.last().status is Status.OK
    assert run.last().values["onvif.tamper"] == 0
    run.sim.tamper(True)
    await run.until(lambda: run.last().values.get("onvif.tamper") == 1, "tamper")
    obs = run.last()
    assert obs.status is Status.DEGRADED and obs.error is not None
    assert obs.error.startswith("tamper")
    assert (obs.values["onvif.signal_loss"], obs.values["onvif.storage_failure"]) == (0, 0)
    run.sim.tamper(False)
    await run.until(lambda: run.last().values.get("onvif.tamper") == 0, "tamper cleared")
    assert run.last().status is Status.OK
    (stats,) = run.source.stats()
    assert stats.received == {"tamper": 2} and stats.state == "started"


async def test_signal_loss_and_storage_failure_events_set_their_values(run: Run) -> None:
    await run.started()
    run.sim.raise_event("tns1:VideoSource/SignalLoss", {"VideoSource": "1"},
                        {"State": "true"})
    run.sim.raise_event("tns1:Device/HardwareFailure/StorageFailure", {"Token": "SD_1"},
                        {"Failed": "true"})
    await run.until(lambda: run.last().values.get("onvif.storage_failure") == 1, "storage")
    assert run.last().values["onvif.signal_loss"] == 1


async def _motion_round(camera: OnvifSimulator, enabled: bool) -> None:
    watched = Run(camera, motion=enabled)
    await watched.source.start()
    await watched.source.update([(watched.target, watched.check)])

    def motions() -> int:
        return sum(s.received.get("motion", 0) for s in watched.source.stats())
    try:
        await watched.started()
        # A later subscription is first told the motion property's state (ended by the
        # round before): Initialized, State=false.
        initial = len(camera.properties)
        await watched.until(lambda: motions() == initial, "the initial state")
        await watched.until(lambda: watched.pullpoint.primed, "the first pull answered")
        before = len(watched.seen)
        camera.raise_event("tns1:VideoSource/MotionAlarm", {"Source": "1"}, {"State": "true"})
        await watched.until(lambda: motions() == initial + 1, "motion")
        if enabled:
            await watched.until(lambda: watched.last().values.get("onvif.motion") == 1,
                                "motion value")
            assert watched.last().status is Status.OK   # motion is no fault
        else:
            assert len(watched.seen) == before
            assert "onvif.motion" not in watched.last().values
        camera.raise_event("tns1:VideoSource/MotionAlarm", {"Source": "1"}, {"State": "false"})
    finally:
        await watched.source.stop()


async def test_motion_is_ignored_unless_enabled(camera: OnvifSimulator) -> None:
    for enabled in (False, True):
        await _motion_round(camera, enabled)


async def test_recording_job_state_event_counts_stopped_jobs(
        camera: OnvifSimulator, run: Run) -> None:
    await run.started()
    assert "onvif.recordings_stopped" not in run.last().values  # nothing heard yet
    camera.recording_jobs = 2
    camera.recording(False)
    await run.until(lambda: run.last().values.get("onvif.recordings_stopped") == 1,
                    "recording stopped")
    camera.recording(True)
    await run.until(lambda: run.last().values.get("onvif.recordings_stopped") == 0,
                    "recording again")


async def test_subscription_is_renewed_before_it_expires(camera: OnvifSimulator) -> None:
    # A 3 s subscription watched for 7 s: a late renewal would make the camera drop
    # it (ResourceUnknown) and the source would have to subscribe again.
    watched = Run(camera, subscription_seconds=3)
    await watched.source.start()
    await watched.source.update([(watched.target, watched.check)])
    try:
        await watched.started()
        granted = watched.pullpoint.granted_seconds
        assert granted == pytest.approx(3, abs=1)
        await asyncio.sleep(7)
        (stats,) = watched.source.stats()
        assert stats.renewals >= 3
        assert (stats.subscribes, stats.lost, stats.state) == (1, 0, "started")
        assert camera.subscriptions == 1
        camera.tamper(True)   # the old subscription still delivers
        await watched.until(lambda: watched.last().values.get("onvif.tamper") == 1, "tamper")
    finally:
        await watched.source.stop()
    assert camera.subscriptions == 0        # unsubscribed on stop


@pytest.mark.parametrize(("granted", "renew_after"), [(600, 480), (60, 48), (8, 3), (2, 1)])
def test_renewal_is_scheduled_before_expiry(granted: float, renew_after: float) -> None:
    import datetime as dt

    from elvwatch.probes.onvif_pullpoint import PullPoint

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    pullpoint = PullPoint(Target("c", "127.0.0.1"), 80, OnvifEventsOptions(),
                          lambda _p: None, lambda _p, _n: None, clock=lambda: 100.0)
    pullpoint._schedule_renewal({"CurrentTime": now,
                                 "TerminationTime": now + dt.timedelta(seconds=granted)})
    assert pullpoint.renew_at == pytest.approx(100.0 + renew_after)
    assert pullpoint.renew_at < 100.0 + granted


async def test_pullpoint_recovers_after_the_camera_reboots(
        camera: OnvifSimulator, run: Run) -> None:
    await run.started()
    await camera.stop()                       # the camera reboots: subscriptions forgotten
    await run.until(lambda: run.pullpoint.state is PullPointState.FAILED, "failed")
    assert run.last().status is Status.DOWN
    assert run.last().error is not None and run.last().error.startswith("unreachable")
    assert "onvif.tamper" not in run.last().values   # unknown, not "no tamper"
    await camera.start()                      # same port, no subscriptions
    await run.started()
    assert camera.subscriptions == 1
    camera.tamper(True)
    await run.until(lambda: run.last().values.get("onvif.tamper") == 1, "tamper after reboot")
    (stats,) = run.source.stats()
    assert stats.subscribes == 2 and stats.lost == 1


async def test_subscription_lost_without_reboot_is_resubscribed_quietly(
        camera: OnvifSimulator, run: Run) -> None:
    await run.started()
    camera._subscriptions.clear()          # the camera dropped us (e.g. out of slots)
    await run.until(lambda: run.source.stats()[0].subscribes == 2, "resubscribed")
    assert run.pullpoint.state is PullPointState.STARTED
    assert all(o.status is Status.OK for o in run.seen)


async def test_auth_failure_pauses_and_holds_off_the_onvif_check_too(
        camera: OnvifSimulator) -> None:
    camera.fault = OnvifFault.AUTH_FAIL
    watched = Run(camera, hold_off_seconds=600)
    await watched.source.start()
    await watched.source.update([(watched.target, watched.check)])
    try:
        await watched.until(lambda: watched.pullpoint.state is PullPointState.PAUSED,
                            "paused")
        obs = watched.last()
        assert obs.status is Status.DOWN and obs.error is not None
        assert obs.error.startswith("authentication")
        assert held_for(camera.host, camera.port, "admin", "secret") > 500
        failures = camera.auth_failures
        await asyncio.sleep(1.0)
        assert camera.auth_failures == failures        # no retries while held off
        check = Check("onvif", "onvif", port=camera.port, options=OnvifOptions())
        polled = await probe_onvif(watched.target, check)
        assert polled.error is not None and "not retried" in polled.error
        assert camera.auth_failures == failures
    finally:
        await watched.source.stop()


async def test_hold_off_set_by_the_onvif_check_pauses_the_subscription(
        camera: OnvifSimulator) -> None:
    camera.fault = OnvifFault.AUTH_FAIL
    target = Target("cam-1", camera.host, credential=CRED)
    await probe_onvif(target, Check("onvif", "onvif", port=camera.port,
                                    options=OnvifOptions(hold_off_seconds=600)))
    failures = camera.auth_failures
    watched = Run(camera)
    await watched.source.start()
    await watched.source.update([(watched.target, watched.check)])
    try:
        await watched.until(lambda: watched.pullpoint.state is PullPointState.PAUSED,
                            "paused")
        assert camera.auth_failures == failures
        assert "CreatePullPointSubscription" not in camera.calls
    finally:
        await watched.source.stop()


async def test_update_keeps_unchanged_subscriptions_and_stops_removed_ones(
        camera: OnvifSimulator, run: Run) -> None:
    await run.started()
    first = run.pullpoint
    await run.source.update([(run.target, run.check)])
    assert run.pullpoint is first and camera.subscriptions == 1
    await run.source.update([])
    assert first.state is PullPointState.STOPPED
    assert camera.subscriptions == 0 and run.source.stats() == []


def test_options_reject_unknown_keys_and_bad_retry_order() -> None:
    with pytest.raises(ValidationError, match="extra"):
        OnvifEventsOptions.model_validate({"motoin": True})
    with pytest.raises(ValidationError, match="retry_max_seconds"):
        OnvifEventsOptions.model_validate({"retry_min_seconds": 10, "retry_max_seconds": 5})


async def test_event_counters_render_as_onvif_metric_families(run: Run) -> None:
    await run.started()
    run.sim.tamper(True)
    await run.until(lambda: run.last().values.get("onvif.tamper") == 1, "tamper")
    out: list[str] = []
    family: Family
    for family in onvif_event_families(run.source.stats()):
        family.render(out)
    text = "".join(out)
    base = 'site="",system="cctv",device="cam-1",kind="camera",check="events"'
    assert f'elvwatch_onvif_events_received_total{{{base},type="tamper"}} 1.0' in text
    assert f'elvwatch_onvif_events_received_total{{{base},type="motion"}} 0.0' in text
    assert f'elvwatch_onvif_event_subscription_state{{{base},state="started"}} 1.0' in text
    assert f"elvwatch_onvif_event_subscribes_total{{{base}}} 1.0" in text
