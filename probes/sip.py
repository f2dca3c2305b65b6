"""SIP OPTIONS probe for intercom door stations and SIP servers, over UDP or TCP.

Any final response (2xx-6xx) means the SIP stack is alive: 200, and also 401/403/404/405
from devices that challenge or refuse OPTIONS, are ``ok`` unless ``params.expect``
lists the acceptable codes (then others are ``degraded``).  No answer is ``down``; an
answer that is not SIP is ``unknown`` with the reason.  Provisional responses (1xx) are
skipped.  Over UDP the request is retransmitted as RFC 3261 timer A says (0.5 s,
doubling), until an answer or the deadline.

Values: ``sip.status_code``, ``sip.rtt_seconds`` (request to final response), and
``sip.server`` (the bounded Server/User-Agent header; text, not exported as a metric).
Everything the device sends is untrusted: size-capped, parsed defensively, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from elvwatch.probes.base import (
    Check,
    Observation,
    ProbeProtocolError,
    Reason,
    Status,
    Target,
    bounded,
    check_options,
    down,
)
from elvwatch.probes.network import network_failure

DEFAULT_PORT = 5060
T1 = 0.5  # RFC 3261 round-trip estimate; UDP retransmits at T1, 2*T1, 4*T1, ...
T2 = 4.0  # ... capped at T2
# Our deadline sits inside the scheduler's so a silent device gives a clear "down".
DEADLINE_SHARE = 0.9
MAX_MESSAGE = 65536  # larger than any UDP datagram; a TCP peer sending more is cut off
MAX_HEADERS = 100
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9])(?: (.*))?$")
_HEADER = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*(.*)$")
_USER = re.compile(r"^[A-Za-z0-9._~+-]{1,64}$")
# Compact header forms (RFC 3261 7.3.3) for the headers we read.
_COMPACT = {"i": "call-id", "l": "content-length", "v": "via"}


class SipOptions(BaseModel):
    """``params`` of a ``sip`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # udp (retransmitted per RFC 3261) or tcp.
    transport: Literal["udp", "tcp"] = "udp"
    user: str = Field("", description="user part of the request URI, e.g. an extension")
    expect: str = Field("", description="acceptable final codes, e.g. '200,401'; "
                                        "empty: any final response")

    @field_validator("user")
    @classmethod
    def _user_ok(cls, value: str) -> str:
        if value and not _USER.match(value):
            raise ValueError("user may hold letters, digits and ._~+- only")
        return value

    @field_validator("expect")
    @classmethod
    def _codes_ok(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not part.isdigit() or not 200 <= int(part) <= 699:
                raise ValueError(f"expect: {part!r} is not a final SIP code (200-699)")
        return value

    @property
    def expected_codes(self) -> frozenset[int]:
        return frozenset(int(p) for p in self.expect.split(",") if p.strip())


@dataclass(frozen=True, slots=True)
class SipResponse:
    code: int
    reason: str
    headers: dict[str, str]


class MalformedSip(ValueError):
    """What the peer sent is not a SIP response; the message says why."""


def parse_response(data: bytes) -> SipResponse:
    """Status line and headers of one SIP response; ``MalformedSip`` otherwise."""
    if len(data) > MAX_MESSAGE:
        raise MalformedSip(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    head, sep, _body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, _body = data.partition(b"\n\n")  # bare LF from sloppy stacks
    if not sep:
        raise MalformedSip("no end of headers")
    text = head.decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    match = _STATUS_LINE.match(lines[0])
    if not match:
        raise MalformedSip(f"not a SIP status line: {bounded(lines[0], 60)!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            continue  # folded continuation of a header we do not need verbatim
        found = _HEADER.match(line)
        if not found:
            raise MalformedSip(f"bad header line: {bounded(line, 60)!r}")
        name = found.group(1).lower()
        headers.setdefault(_COMPACT.get(name, name), found.group(2).strip())
        if len(headers) > MAX_HEADERS:
            raise MalformedSip(f"more than {MAX_HEADERS} headers")
    return SipResponse(int(match.group(1)), bounded(match.group(2) or "", 80), headers)


def build_options(host: str, port: int, transport: str, local: tuple[str, int],
                  call_id: str, branch: str, tag: str, user: str = "") -> bytes:
    """A minimal RFC 3261 OPTIONS request."""
    target = f"[{host}]" if ":" in host else host
    local_host = f"[{local[0]}]" if ":" in local[0] else local[0]
    uri = f"sip:{user + '@' if user else ''}{target}:{port}"
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {local_host}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:elvwatch@{local_host}>;tag={tag}",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:elvwatch@{local_host}:{local[1]};transport={transport}>",
        "Accept: application/sdp",
        "User-Agent: elvwatch",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()




async def probe_sip(target: Target, check: Check) -> Observation:
    options = check_options(check, SipOptions)
    port = check.port or DEFAULT_PORT
    deadline = check.timeout * DEADLINE_SHARE
    started = time.perf_counter()
    exchange = _udp_exchange if options.transport == "udp" else _tcp_exchange
    try:
        async with asyncio.timeout(deadline):
            response = await exchange(target.host, port, options)
    except TimeoutError:
        return down(target, check, f"no SIP answer over {options.transport} from port "
                                   f"{port} within {deadline:.3g}s",
                    latency=time.perf_counter() - started, reason=Reason.TIMEOUT)
    except (OSError, asyncio.IncompleteReadError) as exc:
        failure = network_failure(exc)
        # Over UDP "refused" is the host's ICMP port unreachable: say what it means.
        closed = " (port closed)" if failure.reason is Reason.REFUSED else ""
        return down(target, check, f"{options.transport} port {port}: {failure.text}{closed}",
                    latency=time.perf_counter() - started, reason=failure.reason)
    except MalformedSip as exc:
        raise ProbeProtocolError(target.device, f"rejected SIP answer: {exc}") from None
    rtt = time.perf_counter() - started
    values: dict[str, float | str] = {"sip.status_code": float(response.code),
                                      "sip.rtt_seconds": rtt}
    server = response.headers.get("server") or response.headers.get("user-agent")
    if server:
        values["sip.server"] = bounded(server, 64)
    expected = options.expected_codes
    if expected and response.code not in expected:
        return Observation(target.device, check.name, Status.DEGRADED, values=values,
                           latency=rtt, error=f"answered {response.code} {response.reason}"
                           f", expected {', '.join(map(str, sorted(expected)))}",
                           reason=Reason.PROTOCOL)
    return Observation(target.device, check.name, Status.OK, values=values, latency=rtt)


async def exchange(host: str, port: int, options: SipOptions) -> SipResponse:
    """One OPTIONS transaction with ``host:port`` for ``sip:[user@]host:port``; the
    final response, or OSError/TimeoutError (the caller bounds it)/MalformedSip."""
    if options.transport == "udp":
        return await _udp_exchange(host, port, options)
    return await _tcp_exchange(host, port, options)


def _ids() -> tuple[str, str, str]:
    return (secrets.token_hex(12), "z9hG4bK" + secrets.token_hex(8), secrets.token_hex(6))


def _final_for_us(response: SipResponse, call_id: str) -> bool:
    """A final response to our request (strays and provisionals are skipped)."""
    return response.code >= 200 and response.headers.get("call-id") == call_id


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | OSError] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a flood is dropped, not buffered
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):  # ICMP port unreachable on a connected socket
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(exc)


async def _udp_exchange(host: str, port: int, options: SipOptions) -> SipResponse:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _UdpProtocol, remote_addr=(host, port))
    try:
        local = transport.get_extra_info("sockname")
        call_id, branch, tag = _ids()
        request = build_options(host, port, "udp", (local[0], local[1]), call_id, branch, tag,
                                options.user)
        rejected: MalformedSip | None = None
        interval = T1
        while True:
            transport.sendto(request)
            try:
                async with asyncio.timeout(interval):
                    while True:
                        item = await protocol.queue.get()
                        if isinstance(item, OSError):
                            raise item
                        try:
                            response = parse_response(item)
                        except MalformedSip as exc:
                            rejected = exc  # maybe a stray; keep waiting for ours
                            continue
                        if _final_for_us(response, call_id):
                            return response
            except TimeoutError:
                if rejected is not None:
                    raise rejected from None
                interval = min(interval * 2, T2)
    finally:
        transport.close()


async def _tcp_exchange(host: str, port: int, options: SipOptions) -> SipResponse:
    reader, writer = await asyncio.open_connection(host, port, limit=MAX_MESSAGE)
    try:
        local = writer.get_extra_info("sockname")
        call_id, branch, tag = _ids()
        writer.write(build_options(host, port, "tcp", (local[0], local[1]), call_id, branch,
                                   tag, options.user))
        await writer.drain()
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise MalformedSip(f"headers longer than {MAX_MESSAGE} bytes") from None
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise MalformedSip("connection closed inside a message") from None
                raise
            response = parse_response(head)
            length = response.headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_MESSAGE:
                raise MalformedSip(f"bad Content-Length {bounded(length, 20)!r}")
            await reader.readexactly(int(length))
            if _final_for_us(response, call_id):
                return response
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await writer.wait_closed()
