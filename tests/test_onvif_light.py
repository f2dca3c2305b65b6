"""Light ONVIF polls (``full_poll_seconds``) against the lab camera and RTSP server: what
goes over the wire between full polls, what the check reports, when it polls in full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.lab.rtsp import RtspResponder
from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target
from elvwatch.probes.memory import CheckMemory, remembering
from elvwatch.probes.onvif import clear_hold_offs, probe_onvif
from elvwatch.probes.onvif_options import OnvifOptions

CRED = Credential("cam", "admin", Secret("secret"))
TIMEOUT = 15.0
FULL = {"GetSystemDateAndTime", "GetDeviceInformation", "GetServices", "GetProfiles",
        "GetStreamUri"}


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
