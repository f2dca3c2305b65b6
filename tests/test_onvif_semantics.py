"""What ONVIF events and polls mean, against the simulator over real sockets: only
advertised topics reassure, pulse events are held, recording job states mean one thing
in events and polls, a dark image is not tamper, GetCapabilities' Extension is read,
and a camera that does not long-poll cannot make the subscription spin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from elvwatch.lab import onvif_xml as X
from elvwatch.lab.onvif import CAMERA_TOPICS, JOB_STATE_TOPIC, OnvifSimulator
from elvwatch.lab.onvif_xml import EventTopic
from elvwatch.probes.base import Check, Status, Target
from elvwatch.probes.onvif import RECORDING_NS, clear_hold_offs, probe_onvif
from elvwatch.probes.onvif_client import (
    CAPABILITY_NAMESPACES,
    close_camera,
    discover_services,
    new_camera,
)
from elvwatch.probes.onvif_event_options import OnvifEventsOptions
from elvwatch.probes.onvif_event_source import advertised_kinds
from elvwatch.probes.onvif_options import OnvifOptions
from elvwatch.probes.onvif_topics import WSTOP, topic_set
from tests.test_onvif_pullpoint import CRED, Run

FIXTURES = Path(__file__).parent / "fixtures" / "onvif"
_BOOL = "xs:boolean"
# The shape of what a Hikvision camera advertises (written for these tests from the
# topic structure such cameras answer, not copied): tamper by its rule engine and by
# "image too dark", disk errors as pulses with only a disk number, no signal loss.
HIKVISION_LIKE = [
    EventTopic("tns1:VideoSource/MotionAlarm", (("Source", "tt:ReferenceToken"),),
               (("State", _BOOL),)),
    EventTopic("tns1:VideoSource/ImageTooDark/ImagingService",
               (("Source", "tt:ReferenceToken"),), (("State", _BOOL),)),
    EventTopic("tns1:RuleEngine/TamperDetector/Tamper",
               (("VideoSourceConfigurationToken", "tt:ReferenceToken"),
                ("Rule", "xs:string")), (("IsTamper", _BOOL),)),
    EventTopic("tns1:Device/HardwareFailure/tnshik:HardDiskFull",
               (("HardDiskNo", "xs:int"),), (), is_property=False),
    EventTopic("tns1:Device/HardwareFailure/tnshik:HardDiskError",
               (("HardDiskNo", "xs:int"),), (), is_property=False),
    EventTopic("tns1:Device/HardwareFailure/StorageFailure",
               (("Token", "tt:ReferenceToken"),), (("Failed", _BOOL),)),
    JOB_STATE_TOPIC,
]


@pytest.fixture(autouse=True)
def _no_hold_offs() -> None:
    clear_hold_offs()


async def watching(sim: OnvifSimulator, **options: Any) -> Run:
    run = Run(sim, **options)
    await run.source.start()
    await run.source.update([(run.target, run.check)])
    await run.started()
    await run.until(lambda: "onvif.events_watched" in run.last().values, "the first pull")
    return run


@pytest.fixture
async def hikvision_like() -> AsyncIterator[OnvifSimulator]:
    async with OnvifSimulator(event_topics=HIKVISION_LIKE, recording_jobs=2) as sim:
        yield sim


# -- advertised topics ------------------------------------------------------------------
async def test_camera_without_a_signal_loss_topic_reports_no_signal_loss_value(
        hikvision_like: OnvifSimulator) -> None:
    run = await watching(hikvision_like)
    try:
        values = run.last().values
        assert "onvif.signal_loss" not in values          # not "0": it cannot tell
        assert (values["onvif.tamper"], values["onvif.storage_failure"],
                values["onvif.storage_full"]) == (0, 0, 0)
        assert values["onvif.events_watched"] == "tamper storage_failure storage_full"
        assert "GetEventProperties" in hikvision_like.calls
    finally:
        await run.source.stop()
    async with OnvifSimulator() as advertises_it:         # the default camera does
        run = await watching(advertises_it)
        try:
            assert run.last().values["onvif.signal_loss"] == 0
        finally:
            await run.source.stop()


async def test_camera_that_cannot_list_its_topics_reports_only_what_it_sent() -> None:
    refused = X.fault("ter:ActionNotSupported", "not supported", "env:Receiver")
    async with OnvifSimulator(responses={"GetEventProperties": refused}) as sim:
        run = await watching(sim)
        try:
            assert run.last().values["onvif.events_watched"] == "none"
            assert "onvif.tamper" not in run.last().values
            sim.tamper(False)                             # it tells: no tamper
            await run.until(lambda: run.last().values.get("onvif.tamper") == 0, "tamper 0")
            assert "onvif.signal_loss" not in run.last().values
        finally:
            await run.source.stop()


def test_recorded_axis_topic_set_gives_tamper_and_storage_but_no_signal_loss() -> None:
    root = etree.parse(str(FIXTURES / "axis-geteventinstances.xml")).getroot()
    element = root.find(f".//{{{WSTOP}}}TopicSet")
    assert element is not None
    topics = topic_set(list(element))
    assert len(topics) == 44
    tampering = next(t for t in topics if t.topic == "tns1:VideoSource/tnsaxis:Tampering")
    assert (tampering.is_property, tampering.data) == (None, ("tampering",))
    assert advertised_kinds(topics, OnvifEventsOptions()) == {"tamper", "storage_failure"}
    assert advertised_kinds(topics, OnvifEventsOptions(motion=True)) == {
        "tamper", "storage_failure", "motion"}


# -- pulses -------------------------------------------------------------------------------
async def test_disk_error_pulse_without_data_is_held_then_ends(
        hikvision_like: OnvifSimulator) -> None:
    run = await watching(hikvision_like, pulse_hold_seconds=1.5)
    try:
        hikvision_like.raise_event("tns1:Device/HardwareFailure/tnshik:HardDiskError",
                                   {"HardDiskNo": "2"}, {}, operation="")
        await run.until(lambda: run.last().values.get("onvif.storage_failure") == 1, "pulse")
        raised = time.monotonic()
        obs = run.last()
        assert obs.status is Status.DEGRADED and obs.error == "storage failure (HardDiskNo=2)"
        await run.until(lambda: run.last().values.get("onvif.storage_failure") == 0,
                        "the hold to run out", timeout=6)
        assert time.monotonic() - raised >= 1.0
        hikvision_like.raise_event("tns1:Device/HardwareFailure/tnshik:HardDiskFull",
                                   {"HardDiskNo": "1"}, {}, operation="")
        await run.until(lambda: run.last().values.get("onvif.storage_full") == 1, "disk full")
        (stats,) = run.source.stats()
        assert stats.received["storage_failure"] == 1 and stats.received["storage_full"] == 1
    finally:
        await run.source.stop()


async def _too_dark_round(sim: OnvifSimulator, counts: bool) -> float:
    """onvif.tamper after the camera says its image is too dark."""
    run = await watching(sim, too_dark_is_tamper=counts)
    try:
        sim.raise_event("tns1:VideoSource/ImageTooDark/ImagingService",
                        {"Source": "VideoSource_1"}, {"State": "true"})
        await run.until(lambda: run.source.stats()[0].received.get("too_dark", 0) >= 1,
                        "too dark received")
        await asyncio.sleep(0.2)
        tamper = run.last().values["onvif.tamper"]
        sim.raise_event("tns1:VideoSource/ImageTooDark/ImagingService",
                        {"Source": "VideoSource_1"}, {"State": "false"})
        assert isinstance(tamper, float)
        return tamper
    finally:
        await run.source.stop()


async def test_image_too_dark_is_not_tamper_unless_asked(hikvision_like: OnvifSimulator) -> None:
    assert await _too_dark_round(hikvision_like, False) == 0
    assert await _too_dark_round(hikvision_like, True) == 1


# -- recording: one meaning ------------------------------------------------------------------
async def test_partially_active_job_is_stopped_in_events_and_poll_and_idle_jobs_are_not(
        ) -> None:
    async with OnvifSimulator(recording_jobs=2, idle_jobs=1) as nvr:
        nvr.job_state(2, "PartiallyActive")
        nvr.job_state(3, "Idle")                  # configured Idle: off on purpose
        run = await watching(nvr)
        try:
            await run.until(lambda: "onvif.recordings_stopped" in run.last().values,
                            "job states")
            events = run.last()
        finally:
            await run.source.stop()
        check = Check("onvif", "onvif", port=nvr.port,
                      options=OnvifOptions(stream=False))
        polled = await probe_onvif(Target("nvr-1", nvr.host, credential=CRED), check)
    assert events.values["onvif.recordings_stopped"] == 1
    assert events.error == "recording stopped (RecordingJobToken=RecordingJob_2)"
    assert (polled.values["onvif.recording_jobs"], polled.values["onvif.recordings_stopped"]) \
        == (2, 1)
    assert polled.error == "recording stopped: 1 of 2 jobs (RecordingJob_2=PartiallyActive)"


# -- GetCapabilities fallback -----------------------------------------------------------------
async def test_recorder_without_get_services_still_gets_its_recording_checked() -> None:
    async with OnvifSimulator(recording_jobs=3, get_services=False) as nvr:
        nvr.fault = nvr.fault.RECORDING_STOPPED
        check = Check("onvif", "onvif", port=nvr.port, options=OnvifOptions(stream=False))
        obs = await probe_onvif(Target("nvr-1", nvr.host, credential=CRED), check)
        assert "GetServices" in nvr.calls and "GetCapabilities" in nvr.calls
    assert obs.values["onvif.recording_supported"] == 1
    assert (obs.values["onvif.recording_jobs"], obs.values["onvif.recordings_stopped"]) == (3, 1)


async def test_recorded_dahua_capabilities_name_deviceio_under_extension() -> None:
    answer = (FIXTURES / "go2rtc-dahua-getcapabilities-compact.xml").read_bytes()
    async with OnvifSimulator(get_services=False,
                              responses={"GetCapabilities": answer}) as sim:
        camera = new_camera(sim.host, sim.port, "admin", "secret")
        try:
            devicemgmt = await camera.create_devicemgmt_service()
            await discover_services(camera, devicemgmt)
            found = dict(camera.xaddrs)
        finally:
            await close_camera(camera)
    base = f"http://{sim.host}:{sim.port}"     # re-pointed from the device's 192.168.1.123
    assert found == {CAPABILITY_NAMESPACES[name]: f"{base}/onvif/{path}" for name, path in (
        ("Analytics", "analytics_service"), ("Device", "device_service"),
        ("Events", "event_service"), ("Imaging", "imaging_service"),
        ("Media", "media_service"), ("DeviceIO", "deviceIO_service"))}
    assert RECORDING_NS not in found


# -- PullPoint floor ---------------------------------------------------------------------------
async def test_camera_answering_pulls_at_once_and_empty_is_not_polled_in_a_hot_loop() -> None:
    async with OnvifSimulator(pull_ignores_timeout=True) as sim:
        run = Run(sim, pull_seconds=8)
        await run.source.start()
        await run.source.update([(run.target, run.check)])
        try:
            await run.started()
            first, began = sim.pulls, time.monotonic()
            await asyncio.sleep(6.0)
            rate = (sim.pulls - first) / (time.monotonic() - began)
            # The floor: 1 s, then 2 s, 4 s … between empty immediate answers (a
            # loop without it made hundreds of requests a second against this camera).
            assert sim.pulls - first <= 4, sim.pulls - first
            assert rate < 1.0
            sim.tamper(True)                      # events still arrive, only later
            await run.until(lambda: run.last().values.get("onvif.tamper") == 1, "tamper",
                            timeout=12)
            # Every pull the camera answered is counted, once its answer is read: the pull
            # right after the event may still be on its way when the event is seen.
            await run.until(lambda: run.source.stats()[0].pulls == sim.pulls,
                            "the source counting the camera's pulls", timeout=5)
        finally:
            await run.source.stop()


async def test_camera_that_long_polls_is_pulled_without_any_floor() -> None:
    async with OnvifSimulator() as sim:
        run = Run(sim, pull_seconds=1)
        await run.source.start()
        await run.source.update([(run.target, run.check)])
        try:
            await run.started()
            first = sim.pulls
            sim.tamper(True)
            await run.until(lambda: run.last().values.get("onvif.tamper") == 1, "tamper",
                            timeout=3)
            await asyncio.sleep(3.0)
            # One long-poll per second (pull_seconds), each held by the camera.
            assert 2 <= sim.pulls - first <= 6
        finally:
            await run.source.stop()


def test_simulator_default_topics_cover_what_its_helpers_raise() -> None:
    topics = {t.topic for t in CAMERA_TOPICS}
    assert {"tns1:VideoSource/GlobalSceneChange/ImagingService", "tns1:VideoSource/SignalLoss",
            "tns1:Device/HardwareFailure/StorageFailure"} <= topics
