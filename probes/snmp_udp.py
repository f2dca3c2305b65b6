"""A lean asyncio UDP client for SNMP v1/v2c: one socket per address family and event
loop, shared by every v1/v2c request of every check, replies matched by request-id.

A reply is accepted only if it decodes (probes.snmp_ber), carries a request-id we are
waiting for, comes from the address the request went to and repeats the request's
version and community; anything else is dropped and remembered per source address,
so a timeout can say "the agent answered, but garbage" instead of just "no answer".
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import weakref
from dataclasses import dataclass
from typing import cast

from elvwatch.probes import snmp_ber as ber

Address = tuple[str, int]
# Bursts of replies from many concurrent checks must not overflow the kernel queue.
RECEIVE_BUFFER_BYTES = 1 << 20
REJECT_MEMORY = 1024  # source addresses whose last rejected datagram is remembered


class UdpAddressError(OSError):
    """The agent's host name does not resolve."""


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[ber.Message | None]
    address: Address
    version: int
    community: bytes


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, _Waiter] = {}
        self.rejected: dict[Address, str] = {}
        self._next_id = random.randrange(1, 2**31 - 1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        for waiter in self.waiting.values():
            if not waiter.future.done():
                waiter.future.set_exception(ConnectionError("SNMP socket closed"))
        self.waiting.clear()

    def request_id(self) -> int:
        while True:
            self._next_id = self._next_id % (2**31 - 1) + 1
            if self._next_id not in self.waiting:
                return self._next_id

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source: Address = (str(addr[0]), int(addr[1]))
        try:
            message = ber.decode_message(data)
        except ber.BerError as exc:
            self._reject(source, f"undecodable reply: {exc}")
            return
        waiter = self.waiting.get(message.request_id)
        if waiter is None or waiter.future.done():
            return  # a late answer to a request that timed out: harmless
        if (waiter.address != source or message.version != waiter.version
                or message.community != waiter.community or message.pdu != ber.RESPONSE):
            self._reject(source, "reply not matching the request (source, version, "
                                 "community or PDU type)")
            return
        del self.waiting[message.request_id]
        waiter.future.set_result(message)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable on some systems: the request simply times out

    def _reject(self, source: Address, reason: str) -> None:
        if len(self.rejected) >= REJECT_MEMORY and source not in self.rejected:
            self.rejected.pop(next(iter(self.rejected)))
        self.rejected[source] = reason


_ENDPOINTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, asyncio.Future[_Endpoint]]] = (
    weakref.WeakKeyDictionary())


async def _endpoint(family: int) -> _Endpoint:
    loop = asyncio.get_running_loop()
    per_loop = _ENDPOINTS.setdefault(loop, {})
    made = per_loop.get(family)
    if made is None:
        # A future, not the endpoint: concurrent first checks must share one socket.
        made = per_loop[family] = loop.create_future()
        try:
            bind = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
            _, protocol = await loop.create_datagram_endpoint(
                _Endpoint, local_addr=bind, family=family)
        except BaseException as exc:
            del per_loop[family]
            made.set_exception(exc)
            made.exception()  # retrieved here; later callers get a fresh attempt
            raise
        made.set_result(protocol)
    return await asyncio.shield(made)


async def resolve(host: str, port: int) -> tuple[int, Address]:
    """(address family, (address, port)); IP literals without a resolver round trip."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        loop = asyncio.get_running_loop()
        # IPv4 first, as pysnmp's UdpTransportTarget did: "localhost" must reach an
        # agent listening on 127.0.0.1 only, not ::1.
        error: Exception | None = None
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                infos = await loop.getaddrinfo(host, port, family=family,
                                               type=socket.SOCK_DGRAM)
            except (socket.gaierror, UnicodeError) as exc:
                error = error or exc
                continue
            sockaddr = infos[0][4]
            return family, (str(sockaddr[0]), int(sockaddr[1]))
        raise UdpAddressError(f"cannot resolve {host!r}: {error}") from None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return family, (str(ip), port)


@dataclass(slots=True)
class Outcome:
    message: ber.Message | None  # None: no acceptable answer in time
    rejected: str | None  # why the last datagram from the agent was dropped, if any


async def exchange(family: int, address: Address, version: int, community: bytes,
                   pdu: int, oids: list[ber.Oid], per_try: float, retries: int,
                   max_repetitions: int = 0) -> Outcome:
    """Send one request (and up to ``retries`` resends with the same request-id, so a
    late answer to an earlier try still counts); wait ``per_try`` seconds each."""
    endpoint = await _endpoint(family)
    transport = endpoint.transport
    if transport is None or transport.is_closing():
        raise ConnectionError("SNMP socket closed")
    request_id = endpoint.request_id()
    payload = ber.encode_request(version, community, pdu, request_id, oids,
                                 0, max_repetitions)
    loop = asyncio.get_running_loop()
    # None: every try timed out.  Timers, not asyncio.wait/timeout: this is the hot path.
    future: asyncio.Future[ber.Message | None] = loop.create_future()
    timer: list[asyncio.TimerHandle] = []

    def resend(left: int) -> None:
        if future.done():
            return
        if left < 0:
            future.set_result(None)
            return
        if not transport.is_closing():
            transport.sendto(payload, address)
        timer[:] = [loop.call_later(per_try, resend, left - 1)]

    endpoint.waiting[request_id] = _Waiter(future, address, version, community)
    endpoint.rejected.pop(address, None)
    try:
        resend(retries)
        message = await future
        return Outcome(message, None if message else endpoint.rejected.get(address))
    finally:
        for handle in timer:
            handle.cancel()
        waiter = endpoint.waiting.get(request_id)
        if waiter is not None and waiter.future is future:
            del endpoint.waiting[request_id]
        if not future.done():
            future.cancel()


async def close_endpoints() -> None:
    """Close the running loop's sockets (daemon stop, test teardown)."""
    for made in _ENDPOINTS.pop(asyncio.get_running_loop(), {}).values():
        if made.done() and not made.cancelled() and made.exception() is None:
            transport = made.result().transport
            if transport is not None:
                transport.close()
    await asyncio.sleep(0)  # let the transports' connection_lost run
