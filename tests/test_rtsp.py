"""RTSP stream check against the lab's RTSP responder over real sockets; SDP parsing."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator

import pytest

from elvwatch.lab.onvif import OnvifSimulator
from elvwatch.lab.rtsp import RtspResponder
from elvwatch.probes.adhoc import parse_target, probe_all
from elvwatch.probes.base import Check, Credential, Observation, Reason, Secret, Status, Target
from elvwatch.probes.rtsp import RtspOptions, probe_rtsp
from elvwatch.probes.sdp import h264_sps_size, parse_sdp

CRED = Credential("cam", "admin", Secret("secret"))


@pytest.fixture
async def rtsp() -> AsyncIterator[RtspResponder]:
    async with RtspResponder() as server:
        yield server


async def run(server: RtspResponder, path: str,
              credential: Credential | None = CRED) -> Observation:
    target = Target("cam-1", server.host, credential=credential)
    check = Check("rtsp", "rtsp", port=server.port, options=RtspOptions(path=path))
    async with asyncio.timeout(5):
        return await probe_rtsp(target, check)


@pytest.mark.parametrize(("path", "codec", "size"), [
    ("/Streaming/Channels/101", "H264", (1920, 1080)),   # a=framesize
    ("/Streaming/Channels/201", "H264", (640, 360)),     # SPS in sprop-parameter-sets only
    ("/Streaming/Channels/301", "H265", (2560, 1440)),
])
async def test_good_sdp_passes_with_codec_and_resolution(
        rtsp: RtspResponder, path: str, codec: str, size: tuple[int, int]) -> None:
    obs = await run(rtsp, path)
    assert obs.status is Status.OK, obs.error
    assert obs.values["rtsp.codec"] == codec
    assert (obs.values["rtsp.width"], obs.values["rtsp.height"]) == size
    assert obs.values["rtsp.streams"] == 2
    assert rtsp.requests == ["OPTIONS", "DESCRIBE", "DESCRIBE"]   # challenge, then digest


async def test_unknown_path_is_down_with_404(rtsp: RtspResponder) -> None:
    obs = await run(rtsp, "/nope")
    assert obs.status is Status.DOWN
    assert obs.error == "no stream: stream not found (404)"
    assert obs.reason is Reason.NO_STREAM


async def test_wrong_password_is_an_authentication_failure(rtsp: RtspResponder) -> None:
    obs = await run(rtsp, "/Streaming/Channels/101", Credential("c", "admin", Secret("x")))
    assert obs.error is not None and obs.error.startswith("authentication")
    assert obs.reason is Reason.AUTH
    obs = await run(rtsp, "/Streaming/Channels/101", None)
    assert obs.error is not None and obs.error.startswith("authentication")


async def test_silent_server_is_ended_by_the_timeout(rtsp: RtspResponder) -> None:
    rtsp.silent = True
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await run(rtsp, "/Streaming/Channels/101")
    assert time.monotonic() - started < 6


async def test_refused_port_is_unreachable(rtsp: RtspResponder) -> None:
    await rtsp.stop()
    obs = await run(rtsp, "/Streaming/Channels/101")
    assert obs.error is not None and obs.error.startswith("unreachable")
    assert obs.reason is Reason.REFUSED


async def test_garbage_answer_is_a_protocol_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        target = Target("x", "127.0.0.1")
        async with asyncio.timeout(5):
            obs = await probe_rtsp(target, Check("rtsp", "rtsp", port=port))
        assert obs.error is not None and obs.error.startswith("protocol: not an RTSP answer")
    finally:
        server.close()
        await server.wait_closed()


def test_sdp_without_media_is_refused_and_axis_dimensions_are_read() -> None:
    with pytest.raises(ValueError, match="no media"):
        parse_sdp("v=0\r\ns=x\r\n")
    media = parse_sdp("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                      "a=x-dimensions:1280,720\r\n")
    assert (media[0].codec, media[0].width, media[0].height) == ("H264", 1280, 720)


def test_high_profile_sps_with_cropping_gives_1080() -> None:
    sps = base64.b64decode("Z2QAKKzZQHgCJ+XARAAAAwAEAAADAPA8YMZY")
    assert h264_sps_size(sps) == (1920, 1080)


async def test_adhoc_onvif_and_rtsp_urls(rtsp: RtspResponder,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELVWATCH_ONVIF_PASSWORD", "secret")
    monkeypatch.setenv("ELVWATCH_RTSP_PASSWORD", "secret")
    async with OnvifSimulator(rtsp_port=rtsp.port) as sim:
        adhoc = parse_target(f"onvif://admin@127.0.0.1:{sim.port}", env=os.environ)
        [obs] = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
        assert obs.status is Status.OK, obs.error
        assert obs.info["serial"] == sim.info.serial
    adhoc = parse_target(f"rtsp://admin@127.0.0.1:{rtsp.port}/Streaming/Channels/101",
                         env=os.environ)
    [obs] = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
    assert obs.status is Status.OK, obs.error
    shown = repr(adhoc.target) + os.linesep.join(map(str, adhoc.checks)) + str(obs)
    assert "'secret'" not in shown and "Secret('***')" in shown
