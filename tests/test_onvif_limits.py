"""Answer size limits over real sockets: a huge SOAP answer (chunked, or announced in
Content-Length) ends the onvif check and the events subscription near the limit, and a
huge RTSP DESCRIBE body is refused from its header.  The simulators count the bytes
their sockets took, which shows the answer was not read whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from elvwatch.lab.onvif import HUGE_BYTES, OnvifFault, OnvifSimulator
from elvwatch.lab.rtsp import HUGE_SDP_BYTES, RtspResponder
from elvwatch.probes.base import Check, Credential, Secret, Status, Target
from elvwatch.probes.onvif import clear_hold_offs, probe_onvif
from elvwatch.probes.onvif_event_options import OnvifEventsOptions
from elvwatch.probes.onvif_options import MAX_ANSWER_BYTES, OnvifOptions
from elvwatch.probes.onvif_pullpoint import PullPointState
from elvwatch.probes.rtsp import RtspOptions, probe_rtsp
from tests.helpers import until
from tests.test_onvif_pullpoint import FAST, Run

CRED = Credential("cam", "admin", Secret("secret"))
LIMIT = 256 * 1024
# What may sit in socket buffers (both ends, loopback autotuning) when the reader stops:
# a few MiB, far below the 64 MiB a whole answer is.
IN_FLIGHT = HUGE_BYTES // 4


@pytest.fixture(autouse=True)
def _no_hold_offs() -> None:
    clear_hold_offs()


@pytest.fixture
async def camera() -> AsyncIterator[OnvifSimulator]:
    async with OnvifSimulator() as sim:
        yield sim


def test_default_limit_is_a_few_mib_and_configurable() -> None:
    assert OnvifOptions().max_answer_bytes == MAX_ANSWER_BYTES == 4 * 1024 * 1024
    assert OnvifEventsOptions().max_answer_bytes == MAX_ANSWER_BYTES
    with pytest.raises(ValueError, match="max_answer_bytes"):
        OnvifOptions(max_answer_bytes=1024)


@pytest.mark.parametrize(("fault", "detail"), [
    (OnvifFault.HUGE, "stopped reading after"),       # chunked: counted while reading
    (OnvifFault.HUGE_SIZED, f"it announced {HUGE_BYTES} bytes"),   # refused from the header
])
async def test_huge_answer_ends_the_check_near_the_limit_naming_device_and_limit(
        camera: OnvifSimulator, fault: OnvifFault, detail: str) -> None:
    camera.fault = fault
    target = Target("cam-gate-01", camera.host, credential=CRED)
    check = Check("onvif", "onvif", port=camera.port,
                  options=OnvifOptions(max_answer_bytes=LIMIT, stream=False))
    async with asyncio.timeout(15):
        obs = await probe_onvif(target, check)
    assert obs.status is Status.DOWN
    assert obs.error is not None and obs.error.startswith(
        f"too large: cam-gate-01 sent an answer over the {LIMIT}-byte limit "
        "(max_answer_bytes)"), obs.error
    assert detail in obs.error
    if fault is OnvifFault.HUGE:
        read = int(obs.error.rsplit(" ", 2)[-2])
        assert LIMIT < read <= LIMIT + 65536
    await until(lambda: len(camera.huge_sent) == 1, "the simulator to end the answer")
    [(operation, sent)] = camera.huge_sent
    assert operation == "GetSystemDateAndTime" and sent < IN_FLIGHT, camera.huge_sent
    assert camera.calls == ["GetSystemDateAndTime"]    # the first answer was the last


async def test_huge_pullmessages_answer_fails_the_subscription_near_the_limit(
        camera: OnvifSimulator) -> None:
    run = Run(camera)
    run.check = Check("events", "onvif_events", interval=60, port=camera.port,
                      options=OnvifEventsOptions.model_validate(
                          {**FAST, "max_answer_bytes": LIMIT}))
    await run.source.start()
    await run.source.update([(run.target, run.check)])
    try:
        await run.started()
        camera.fault = OnvifFault.HUGE
        # The pending long-poll answers huge; the quiet resubscribe answers huge too.
        await run.until(lambda: run.pullpoint.state is PullPointState.FAILED, "failed")
        error = run.pullpoint.error
        assert error.startswith(f"too large: cam-1 sent an answer over the {LIMIT}-byte "
                                "limit"), error
        assert run.last().status is Status.DOWN and run.last().error == error
    finally:
        await run.source.stop()
    await until(lambda: len(camera.huge_sent) >= 2, "both huge answers to end")
    assert [op for op, _ in camera.huge_sent[:2]] == ["PullMessages", "GetSystemDateAndTime"]
    assert max(sent for _, sent in camera.huge_sent) < IN_FLIGHT, camera.huge_sent


async def test_huge_rtsp_describe_body_is_refused_from_its_header() -> None:
    async with RtspResponder() as rtsp:
        rtsp.huge_sdp = True
        target = Target("cam-gate-01", rtsp.host, credential=CRED)
        check = Check("rtsp", "rtsp", port=rtsp.port,
                      options=RtspOptions(path="/Streaming/Channels/101"))
        async with asyncio.timeout(10):
            obs = await probe_rtsp(target, check)
        assert obs.status is Status.DOWN
        assert obs.error == (f"too large: 127.0.0.1:{rtsp.port} announced a DESCRIBE answer "
                             f"of {HUGE_SDP_BYTES} bytes, over the 65536-byte limit")
        await until(lambda: len(rtsp.huge_sent) == 1, "the responder to end the body")
        assert rtsp.huge_sent[0] < HUGE_SDP_BYTES // 4, rtsp.huge_sent
