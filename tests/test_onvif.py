"""ONVIF probe against the lab's simulated camera and RTSP server, over real sockets:
full polls, and the light polls between them (``full_poll_seconds``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from elvwatch.lab.onvif import OnvifFault, OnvifSimulator, scene_jpeg
from elvwatch.lab.rtsp import RtspResponder
from elvwatch.probes.base import Check, Credential, Observation, Reason, Secret, Status, Target
from elvwatch.probes.memory import CheckMemory, remembering
from elvwatch.probes.onvif import clear_hold_offs, probe_onvif
from elvwatch.probes.onvif_clock import camera_utc, tz_offset
from elvwatch.probes.onvif_options import OnvifOptions

FIXTURES = Path(__file__).parent / "fixtures" / "onvif"
CRED = Credential("cam", "admin", Secret("secret"))
# Bounds every probe in these tests, as the scheduler does in the daemon.
TIMEOUT = 15.0


@pytest.fixture(autouse=True)
def _no_hold_offs() -> None:
    clear_hold_offs()


@pytest.fixture
async def rtsp() -> AsyncIterator[RtspResponder]:
    async with RtspResponder() as server:
        yield server


@pytest.fixture
async def camera(rtsp: RtspResponder) -> AsyncIterator[OnvifSimulator]:
    async with OnvifSimulator(rtsp_port=rtsp.port) as sim:
        yield sim


async def run(sim: OnvifSimulator, credential: Credential | None = CRED,
              **options: object) -> Observation:
    target = Target("cam-1", sim.host, kind="camera", credential=credential)
    check = Check("onvif", "onvif", port=sim.port,
                  options=OnvifOptions.model_validate(options))
    async with asyncio.timeout(TIMEOUT):
        return await probe_onvif(target, check)


async def test_healthy_camera_reports_identity_profiles_and_stream(
        camera: OnvifSimulator) -> None:
    obs = await run(camera)
    assert obs.status is Status.OK, obs.error
    assert dict(obs.info) == {"vendor": "HIKVISION", "model": "DS-2CD2143G2-I",
                              "firmware": "V5.7.3 build 220112",
                              "serial": "DS-2CD2143G2-I20220301AAWRJ12345678"}
    assert obs.values["onvif.profiles"] == 2
    assert obs.values["onvif.profile1.stream_uri"] == (
        f"rtsp://127.0.0.1:{camera.rtsp_port}/Streaming/Channels/101")
    assert obs.values["onvif.profile2.width"] == 640
    assert obs.values["onvif.stream_up"] == 1
    assert obs.values["onvif.stream.codec"] == "H264"
    assert (obs.values["onvif.stream.width"], obs.values["onvif.stream.height"]) == (1920, 1080)
    assert obs.values["onvif.events_supported"] == 1


@pytest.mark.parametrize(("fixture", "expected"), [
    ("go2rtc-dahua-getstreamuri-compact.xml",
     "rtsp://192.168.1.123:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif"),
    ("go2rtc-dahua-getstreamuri-formatted.xml",
     "rtsp://192.168.1.123:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif"),
    ("go2rtc-go2rtc-1.9.4-getstreamuri.xml", "rtsp://192.168.1.123:8554/rtsp-dahua1"),
    ("go2rtc-go2rtc-1.9.8-getstreamuri.xml", "rtsp://192.168.1.123:8554/rtsp-dahua2"),
])
async def test_recorded_stream_uri_answers_parse_to_their_uri(
        camera: OnvifSimulator, fixture: str, expected: str) -> None:
    camera.responses["GetStreamUri"] = (FIXTURES / fixture).read_bytes()
    obs = await run(camera, stream=False)
    assert obs.status is Status.OK, obs.error
    assert obs.values["onvif.profile1.stream_uri"] == expected


@pytest.mark.parametrize("fixture", ["go2rtc-dahua-getsnapshoturi-compact.xml",
                                     "go2rtc-dahua-getsnapshoturi-formatted.xml"])
async def test_recorded_snapshot_uri_is_read_and_pointed_at_the_configured_host(
        camera: OnvifSimulator, fixture: str) -> None:
    camera.responses["GetSnapshotUri"] = (FIXTURES / fixture).read_bytes()
    obs = await run(camera, stream=False, snapshot=True)
    # The Dahua path does not exist on the simulator: the fetch fails, on OUR host.
    assert obs.values["onvif.snapshot_uri"] == (
        f"http://127.0.0.1:{camera.port}/onvifsnapshot/media_service/snapshot"
        "?channel=1&subtype=1")
    assert obs.status is Status.DEGRADED
    assert obs.error is not None and obs.error.startswith("snapshot: protocol: ")


@pytest.mark.parametrize("fixture", ["go2rtc-dahua-getcapabilities-compact.xml",
                                     "go2rtc-dahua-getcapabilities-formatted-elided.xml"])
async def test_recorded_capabilities_serve_old_firmware_without_getservices(
        camera: OnvifSimulator, fixture: str) -> None:
    camera.responses["GetServices"] = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault>'
        b"<s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text xml:lang=\"en\">"
        b"Action not supported</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>")
    camera.responses["GetCapabilities"] = (FIXTURES / fixture).read_bytes()
    obs = await run(camera)
    # The Dahua XAddrs (192.168.1.123) are re-pointed at the simulator, so media works.
    assert obs.status is Status.OK, obs.error
    assert obs.values["onvif.events_supported"] == 1
    assert obs.values["onvif.stream_up"] == 1


async def test_malformed_vendor_answer_ends_in_a_clear_error(camera: OnvifSimulator) -> None:
    camera.responses["GetStreamUri"] = (
        FIXTURES / "go2rtc-unknown-vendor-getstreamuri-mc-prefix.xml").read_bytes()
    obs = await run(camera, stream=False)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("no stream: GetStreamUri")
    assert obs.reason is Reason.NO_STREAM
    assert "malformed" in obs.error


@pytest.mark.parametrize("offset", [3600.0, -125.0, 0.0])
async def test_clock_offset_is_camera_minus_daemon_and_skew_still_authenticates(
        camera: OnvifSimulator, offset: float) -> None:
    camera.clock_offset = offset
    obs = await run(camera, max_clock_offset_seconds=10)
    measured = obs.values["onvif.clock_offset_seconds"]
    assert isinstance(measured, float) and abs(measured - offset) <= 1.5
    assert obs.info["vendor"] == "HIKVISION"          # authenticated despite the skew
    if offset:
        assert obs.status is Status.DEGRADED
        assert obs.error is not None and obs.error.startswith("clock: ")
    else:
        assert obs.status is Status.OK


async def test_without_time_adjustment_a_skewed_camera_refuses_the_login(
        camera: OnvifSimulator) -> None:
    camera.clock_offset = 3600
    obs = await run(camera, adjust_time=False)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("authentication")
    assert obs.reason is Reason.AUTH


@pytest.mark.parametrize(("tz", "hours"), [("CST-8", 8), ("CST-8:00:00", 8),
                                           ("GMT+08:00", 8), ("EST5EDT", -5), ("UTC", 0)])
async def test_local_time_only_firmware_is_converted_with_its_time_zone(
        camera: OnvifSimulator, tz: str, hours: float) -> None:
    camera.utc_field, camera.tz, camera.tz_hours = False, tz, hours
    obs = await run(camera)
    measured = obs.values["onvif.clock_offset_seconds"]
    assert isinstance(measured, float) and abs(measured) <= 1.5


def test_unreadable_clock_is_said_not_guessed() -> None:
    answer = {"LocalDateTime": {"Date": {"Year": 2024, "Month": 0, "Day": 1},
                                "Time": {"Hour": 0, "Minute": 0, "Second": 0}}}
    assert camera_utc(answer)[0] is None
    assert tz_offset("Mars/Olympus") is None
    good = {"UTCDateTime": {"Date": {"Year": 2024, "Month": 2, "Day": 29},
                            "Time": {"Hour": 23, "Minute": 59, "Second": 58}}}
    assert camera_utc(good)[0] == dt.datetime(2024, 2, 29, 23, 59, 58, tzinfo=dt.UTC)


async def test_auth_failure_holds_off_the_credentials(camera: OnvifSimulator) -> None:
    camera.fault = OnvifFault.AUTH_FAIL
    first = await run(camera, hold_off_seconds=1.0)
    assert first.status is Status.DOWN
    assert first.error is not None and first.error.startswith("authentication")
    assert camera.auth_failures == 1
    camera.calls.clear()
    second = await run(camera, hold_off_seconds=1.0)
    assert second.error is not None and second.error.startswith("authentication")
    assert camera.calls == ["GetSystemDateAndTime"]       # no login attempt
    assert camera.auth_failures == 1
    assert "onvif.clock_offset_seconds" in second.values   # still reachable, still timed
    await asyncio.sleep(1.1)
    camera.fault = OnvifFault.NONE
    third = await run(camera, hold_off_seconds=1.0)
    assert third.status is Status.OK, third.error


async def test_changed_password_is_tried_at_once(camera: OnvifSimulator) -> None:
    await run(camera, credential=Credential("cam", "admin", Secret("wrong")))
    obs = await run(camera)
    assert obs.status is Status.OK, obs.error


async def test_without_credentials_only_reachability_and_clock(
        camera: OnvifSimulator) -> None:
    obs = await run(camera, credential=None)
    assert obs.status is Status.OK
    assert "onvif.clock_offset_seconds" in obs.values
    assert camera.calls == ["GetSystemDateAndTime"]


async def test_no_stream_fault_and_rtsp_404_are_down(camera: OnvifSimulator,
                                                     rtsp: RtspResponder) -> None:
    camera.fault = OnvifFault.NO_STREAM
    obs = await run(camera)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("no stream: GetStreamUri")
    camera.fault = OnvifFault.NONE
    rtsp.no_stream = True
    obs = await run(camera)
    assert obs.status is Status.DOWN and obs.values["onvif.stream_up"] == 0
    assert obs.error is not None and "404" in obs.error


async def test_unreachable_camera_is_down(camera: OnvifSimulator) -> None:
    await camera.stop()
    obs = await run(camera)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith("unreachable")
    assert obs.reason is Reason.REFUSED


@pytest.mark.parametrize(("fault", "reason"), [(OnvifFault.GARBAGE, "malformed"),
                                               (OnvifFault.TRUNCATED, "truncated"),
                                               (OnvifFault.HUGE, "too large")])
async def test_broken_answers_end_in_a_clear_error(camera: OnvifSimulator,
                                                   fault: OnvifFault, reason: str) -> None:
    camera.fault = fault
    started = time.monotonic()
    obs = await run(camera)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith(reason), obs.error
    assert time.monotonic() - started < 10


async def test_hanging_camera_is_ended_by_the_callers_timeout(camera: OnvifSimulator) -> None:
    camera.fault = OnvifFault.HANG
    target = Target("cam-1", camera.host, credential=CRED)
    check = Check("onvif", "onvif", port=camera.port, options=OnvifOptions())
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await probe_onvif(target, check)
    assert time.monotonic() - started < 3
    await asyncio.sleep(0.1)   # let the shielded close finish


async def test_polls_cut_short_by_the_timeout_leave_no_http_session_open(
        camera: OnvifSimulator) -> None:
    # The library opens a service's aiohttp session before its setup and lists the
    # service for closing only after it: a poll timed out in between must close it too.
    target = Target("cam-1", camera.host, credential=CRED)
    check = Check("onvif", "onvif", port=camera.port, options=OnvifOptions(stream=False))
    gc.collect()
    before = {id(s) for s in gc.get_objects() if isinstance(s, aiohttp.ClientSession)}
    timeouts = 0
    for seconds in (0.001, 0.003, 0.01, 0.02, 0.05, 0.1):
        try:
            async with asyncio.timeout(seconds):
                await probe_onvif(target, check)
        except TimeoutError:
            timeouts += 1
    assert timeouts >= 2
    gc.collect()
    left_open = [s for s in gc.get_objects() if isinstance(s, aiohttp.ClientSession)
                 and id(s) not in before and not s.closed]
    assert left_open == []


async def test_snapshot_scene_passes_black_and_wrong_size_fail(
        camera: OnvifSimulator) -> None:
    obs = await run(camera, snapshot=True, snapshot_width=1920, snapshot_height=1080)
    assert obs.status is Status.OK, obs.error
    assert obs.values["onvif.snapshot_ok"] == 1
    camera.snapshot = scene_jpeg(1920, 1080, black=True)
    obs = await run(camera, snapshot=True)
    assert obs.status is Status.DEGRADED and obs.values["onvif.snapshot_ok"] == 0
    assert obs.error is not None and obs.error.startswith("snapshot: black image")
    camera.snapshot = scene_jpeg(640, 480)
    obs = await run(camera, snapshot=True, snapshot_width=1920, snapshot_height=1080)
    assert obs.error is not None and "size 640x480" in obs.error
    camera.snapshot = b"\xff\xd8\xff\xe0 truncated"
    obs = await run(camera, snapshot=True)
    assert obs.error is not None and "not a decodable image" in obs.error


async def test_snapshot_with_wrong_password_is_an_auth_problem(camera: OnvifSimulator) -> None:
    camera._digest.password = "other"
    obs = await run(camera, snapshot=True)
    assert obs.error is not None and obs.error.startswith("snapshot: authentication")


# Every operation of a full poll of the lab camera (a light poll makes only the first).
FULL = {"GetSystemDateAndTime", "GetDeviceInformation", "GetServices", "GetProfiles",
        "GetStreamUri"}


async def poll(sim: OnvifSimulator, memory: CheckMemory, **options: object) -> Observation:
    """One run of the check, remembering into ``memory`` as the scheduler's runs do."""
    target = Target("cam-1", sim.host, kind="camera", credential=CRED)
    check = Check("onvif", "onvif", port=sim.port,
                  options=OnvifOptions.model_validate(options))
    sim.calls.clear()
    with remembering(memory):
        async with asyncio.timeout(TIMEOUT):
            return await probe_onvif(target, check)


async def test_between_full_polls_only_the_clock_and_the_stream_are_asked(
        camera: OnvifSimulator, rtsp: RtspResponder) -> None:
    memory = CheckMemory()
    full = await poll(camera, memory, full_poll_seconds=3600)
    assert full.status is Status.OK, full.error
    assert set(camera.calls) >= FULL
    rtsp.requests.clear()
    light = await poll(camera, memory, full_poll_seconds=3600)
    assert light.status is Status.OK, light.error
    assert camera.calls == ["GetSystemDateAndTime"]
    assert "DESCRIBE" in rtsp.requests
    # The full poll's identity and profile values again; clock and stream read afresh.
    assert dict(light.info) == dict(full.info)
    for key in ("onvif.profiles", "onvif.profile1.stream_uri", "onvif.profile2.width",
                "onvif.events_supported", "onvif.stream_up", "onvif.stream.codec"):
        assert light.values[key] == full.values[key], key
    offset = light.values["onvif.clock_offset_seconds"]
    assert isinstance(offset, float) and abs(offset) < 2


async def test_a_stream_gone_on_a_light_poll_is_down_and_the_next_poll_is_full(
        camera: OnvifSimulator, rtsp: RtspResponder) -> None:
    memory = CheckMemory()
    assert (await poll(camera, memory, full_poll_seconds=3600)).status is Status.OK
    rtsp.no_stream = True
    light = await poll(camera, memory, full_poll_seconds=3600)
    assert camera.calls == ["GetSystemDateAndTime"]
    assert light.status is Status.DOWN
    assert light.values["onvif.stream_up"] == 0
    assert light.error is not None and light.error.startswith("no stream")
    rtsp.no_stream = False
    again = await poll(camera, memory, full_poll_seconds=3600)
    assert set(camera.calls) >= FULL
    assert again.status is Status.OK, again.error


async def test_an_unreachable_camera_forgets_and_polls_in_full_once_back(
        camera: OnvifSimulator) -> None:
    memory = CheckMemory()
    assert (await poll(camera, memory, full_poll_seconds=3600)).status is Status.OK
    await camera.stop()
    down = await poll(camera, memory, full_poll_seconds=3600)
    assert down.status is Status.DOWN
    await camera.start()
    back = await poll(camera, memory, full_poll_seconds=3600)
    assert back.status is Status.OK, back.error
    assert set(camera.calls) >= FULL


async def test_the_full_poll_comes_round_again_when_its_time_is_up(
        camera: OnvifSimulator) -> None:
    memory = CheckMemory()
    assert (await poll(camera, memory, full_poll_seconds=0.2)).status is Status.OK
    await asyncio.sleep(0.3)
    camera.info.serial = "SWAPPED-CAMERA-0001"
    obs = await poll(camera, memory, full_poll_seconds=0.2)
    assert set(camera.calls) >= FULL
    assert obs.info["serial"] == "SWAPPED-CAMERA-0001"


@pytest.mark.parametrize("options", [{}, {"full_poll_seconds": 3600, "snapshot": True},
                                     {"full_poll_seconds": 3600, "stream": False}])
async def test_without_full_poll_seconds_with_a_snapshot_or_no_stream_every_poll_is_full(
        camera: OnvifSimulator, options: dict[str, object]) -> None:
    memory = CheckMemory()
    for _ in range(2):
        obs = await poll(camera, memory, **options)
        assert obs.status is Status.OK, obs.error
        assert set(camera.calls) >= FULL
