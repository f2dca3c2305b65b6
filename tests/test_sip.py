"""SIP OPTIONS probe against sipp (Debian sip-tester) and raw sockets on loopback."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from pydantic import ValidationError

from elvwatch.lab.sip import SipResponder
from elvwatch.probes.adhoc import parse_target, probe_all
from elvwatch.probes.base import Check, Observation, Reason, Status, Target
from elvwatch.probes.sip import MalformedSip, SipOptions, parse_response, probe_sip

SCENARIO = Path(__file__).parents[1] / "lab" / "sipp" / "options_uas.xml"
TARGET = Target("door-1", "127.0.0.1")
SIPP_START = 10.0  # seconds; sipp listens within ~50 ms here, CI machines are slower


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    # A port free for both UDP and TCP, so sipp can use either transport.
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def _check(port: int, timeout: float = 2.0, **params: str) -> Check:
    return Check("sip", "sip", timeout=timeout, port=port, params=params)


SippFactory = Callable[..., int]


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[SippFactory]:
    """Start sipp as an OPTIONS UAS: ``sipp(transport="udp", code=200, reason="OK")``."""
    binary = shutil.which("sipp")
    if binary is None:
        pytest.fail("sipp not found: install the Debian package 'sip-tester' "
                    "(bash .ci/run does)", pytrace=False)
    procs: list[subprocess.Popen[bytes]] = []

    def start(transport: str = "udp", code: int = 200, reason: str = "OK") -> int:
        scenario = tmp_path / f"uas_{code}.xml"
        # sipp checks response codes when it loads a scenario: one file per code.
        scenario.write_text(SCENARIO.read_text().replace("SIP/2.0 200 OK",
                                                         f"SIP/2.0 {code} {reason}"))
        port = _free_port()
        log = (tmp_path / f"sipp_{port}.log").open("wb")
        procs.append(subprocess.Popen(
            [binary, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port),
             "-t", "u1" if transport == "udp" else "t1", "-nostdin", "-nd",
             "-timeout", "120s", "-timeout_error"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))
        log.close()
        _wait_listening(port, transport)
        return port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(port: int, transport: str) -> None:
    deadline = time.monotonic() + SIPP_START
    while time.monotonic() < deadline:
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return  # sipp holds the port
        time.sleep(0.05)
    pytest.fail(f"sipp did not listen on {transport} port {port} in {SIPP_START:g}s")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_options_answered_200_is_ok(sipp: SippFactory, transport: str) -> None:
    port = sipp(transport)
    obs = await probe_sip(TARGET, _check(port, transport=transport))
    assert (obs.status, obs.error) == (Status.OK, None)
    assert obs.values["sip.status_code"] == 200.0
    assert 0 < float(obs.values["sip.rtt_seconds"]) < 2.0
    assert obs.values["sip.server"] == "SIPp elvwatch-lab"


@pytest.mark.parametrize(("code", "reason"), [(401, "Unauthorized"), (404, "Not Found"),
                                              (405, "Method Not Allowed")])
async def test_any_final_answer_means_the_device_is_alive(sipp: SippFactory, code: int,
                                                          reason: str) -> None:
    port = sipp("udp", code, reason)
    obs = await probe_sip(TARGET, _check(port))
    assert obs.status is Status.OK
    assert obs.values["sip.status_code"] == float(code)


async def test_unexpected_code_is_degraded_when_codes_are_configured(
        sipp: SippFactory) -> None:
    port = sipp("tcp", 403, "Forbidden")
    obs = await probe_sip(TARGET, _check(port, transport="tcp", expect="200,401"))
    assert obs.status is Status.DEGRADED
    assert obs.error == "answered 403 Forbidden, expected 200, 401"


async def test_silent_udp_peer_is_down_after_retransmits() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        obs = await probe_sip(TARGET, _check(port, timeout=1.0))
        sink.setblocking(False)
        received = 0
        while True:
            try:
                sink.recv(65536)
            except BlockingIOError:
                break
            received += 1
    assert obs.status is Status.DOWN
    assert obs.error == f"no SIP answer over udp from port {port} within 0.9s"
    assert received == 2  # sent at 0 and 0.5 s (RFC 3261 timer A), none after the deadline


async def test_closed_ports_are_down_at_once() -> None:
    port = _free_port()
    for transport in ("udp", "tcp"):
        obs = await probe_sip(TARGET, _check(port, transport=transport))
        assert obs.status is Status.DOWN
        assert obs.error == f"{transport} port {port}: connection refused (port closed)"
        assert obs.reason is Reason.REFUSED
        assert obs.latency is not None and obs.latency < 0.5


async def _raw_udp_peer(reply: bytes) -> tuple[asyncio.DatagramTransport, int]:
    class Peer(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # asyncio's selector datagram transport does not subclass DatagramTransport.
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
            self.transport.sendto(reply, addr)

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        Peer, local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


@pytest.fixture
async def raw_tcp_peer() -> AsyncIterator[Callable[[bytes], asyncio.Future[int]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: bytes) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


async def _probe_via_scheduler(port: int, transport: str) -> Observation:
    from elvwatch.probes.runner import (
        run_check,  # the path ProbeProtocolError takes in production
    )
    return await run_check(TARGET, _check(port, transport=transport))


async def test_non_sip_udp_answer_is_unknown_with_reason() -> None:
    transport, port = await _raw_udp_peer(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        obs = await _probe_via_scheduler(port, "udp")
    finally:
        transport.close()
    assert obs.status is Status.UNKNOWN
    assert obs.error == ("door-1: rejected SIP answer: not a SIP status line: "
                         "'HTTP/1.1 400 Bad Request'")


@pytest.mark.parametrize(("reply", "reason"), [
    (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "bad header line: 'no colon here'"),
    (b"SIP/2.0 200 OK\r\nContent-Length: lots\r\n\r\n", "bad Content-Length 'lots'"),
    (b"SIP/2.0 200 OK\r\nX: " + b"a" * 70000, "headers longer than 65536 bytes"),
    (b"SIP/2.0 200 OK\r\nCall-ID: x", "connection closed inside a message"),
])
async def test_malformed_tcp_answers_are_rejected_with_reason(
        raw_tcp_peer: Callable[[bytes], asyncio.Future[int]], reply: bytes,
        reason: str) -> None:
    port = await raw_tcp_peer(reply)
    obs = await _probe_via_scheduler(port, "tcp")
    assert obs.status is Status.UNKNOWN
    assert obs.error == f"door-1: rejected SIP answer: {reason}"


def test_parser_reads_compact_headers_and_bounds_device_text() -> None:
    response = parse_response(b"SIP/2.0 486 Busy \x1b[31mHere\r\ni: abc\r\nl: 0\r\n"
                              b"Server: " + b"x" * 500 + b"\r\n\r\n")
    assert response.code == 486
    assert response.reason == "Busy  [31mHere"  # control character blanked
    assert response.headers["call-id"] == "abc"
    assert response.headers["content-length"] == "0"
    with pytest.raises(MalformedSip, match="no end of headers"):
        parse_response(b"SIP/2.0 200 OK\r\n")
    with pytest.raises(MalformedSip, match="not a SIP status line"):
        parse_response(b"SIP/2.0 99 Odd\r\n\r\n")


def test_options_are_strict() -> None:
    with pytest.raises(ValidationError, match="Input should be 'udp' or 'tcp'"):
        SipOptions.model_validate({"transport": "tls"})
    with pytest.raises(ValidationError, match="not a final SIP code"):
        SipOptions.model_validate({"expect": "180"})
    with pytest.raises(ValidationError, match="letters, digits"):
        SipOptions.model_validate({"user": "a@b>"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        SipOptions.model_validate({"port": 5060})


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_lab_responder_and_adhoc_url(transport: str) -> None:
    responder = SipResponder("127.0.0.1", _free_port())
    await responder.start()
    try:
        adhoc = parse_target(f"sip://127.0.0.1:{responder.port}?transport={transport}")
        [obs] = await probe_all(adhoc.target, adhoc.checks, adhoc.plan)
        assert (obs.check, obs.status) == (f"sip_{responder.port}", Status.OK)
        responder.silent = True
        [obs] = await probe_all(adhoc.target,
                                (_check(responder.port, 1.0, transport=transport),))
        assert obs.status is Status.DOWN
    finally:
        await responder.stop()
