"""TCP connect probe, with an optional send/expect exchange (a banner or a reply).

Values: ``tcp.connect_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from elvwatch.probes.base import (
    Check,
    Observation,
    ProbeConfigError,
    Reason,
    Status,
    Target,
    down,
)
from elvwatch.probes.network import network_failure

# What a refused or unreachable port looks like to asyncio; anything else is a bug.
CONNECT_ERRORS = (OSError, asyncio.IncompleteReadError, ConnectionError)
MAX_READ = 4096


async def probe_tcp(target: Target, check: Check) -> Observation:
    port = check.port
    if port is None:
        raise ProbeConfigError("tcp", f"check {check.name!r} of {target.device} has no port")
    send = check.params.get("send")
    expect = check.params.get("expect")
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(target.host, port)
    except CONNECT_ERRORS as exc:
        failure = network_failure(exc)
        return down(target, check, f"connect to port {port}: {failure.text}",
                    latency=time.perf_counter() - started, reason=failure.reason)
    connected = time.perf_counter() - started
    try:
        if isinstance(send, str) and send:
            writer.write(send.encode())
            await writer.drain()
        if isinstance(expect, str) and expect:
            data = await _read_until(reader, expect.encode())
            if expect.encode() not in data:
                return down(target, check, f"port {port} did not answer {expect!r}",
                            latency=time.perf_counter() - started,
                            values={"tcp.connect_seconds": connected},
                            reason=Reason.PROTOCOL)
    except CONNECT_ERRORS as exc:
        failure = network_failure(exc)
        return down(target, check, f"port {port}: {failure.text}",
                    latency=time.perf_counter() - started,
                    values={"tcp.connect_seconds": connected}, reason=failure.reason)
    finally:
        writer.close()
        with contextlib.suppress(*CONNECT_ERRORS):
            await writer.wait_closed()
    return Observation(target.device, check.name, Status.OK,
                       values={"tcp.connect_seconds": connected},
                       latency=time.perf_counter() - started)


async def _read_until(reader: asyncio.StreamReader, needle: bytes) -> bytes:
    data = b""
    while needle not in data and len(data) < MAX_READ:
        chunk = await reader.read(MAX_READ - len(data))
        if not chunk:
            break
        data += chunk
    return data

