"""One ICMP echo socket per event loop, shared by every IPv4 ping.

icmplib opens, binds and closes a socket for every ping and fills each request with
random bytes; at 20,000 devices that was most of the ICMP check's CPU.  Here one socket
(raw as root / CAP_NET_RAW, the kernel's unprivileged "ping" datagram socket otherwise)
sends every request, and replies are matched to their waiter by sequence number (and, on
a raw socket, which also sees other programs' pings, by identifier and source address).
Replies are untrusted bytes: anything short, malformed or unmatched is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import struct
import time

ECHO_REQUEST, ECHO_REPLY = 8, 0
RECEIVE_BUFFER = 8 * 1024 * 1024
SOL_RAW, ICMP_FILTER = 255, 1  # linux/icmp.h
_HEADER = struct.Struct("!BBHHH")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    header = _HEADER.pack(ECHO_REQUEST, 0, 0, ident, seq)
    return _HEADER.pack(ECHO_REQUEST, 0, checksum(header + payload), ident, seq) + payload


def parse_reply(data: bytes, raw: bool) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply, or None for anything else."""
    if raw:
        if len(data) < 20 or data[0] >> 4 != 4:
            return None
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < _HEADER.size:
        return None
    kind, code, _, ident, seq = _HEADER.unpack_from(data)
    if kind != ECHO_REPLY or code != 0:
        return None
    return ident, seq


class EchoSocket:
    """Sends echo requests and wakes the waiter of each reply."""

    def __init__(self, raw: bool) -> None:
        kind = socket.SOCK_RAW if raw else socket.SOCK_DGRAM
        self._sock = socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP)
        self._sock.setblocking(False)
        # Thousands of replies can arrive together (and a raw socket also sees the
        # requests looped back): the default ~200 KB buffer drops them.
        for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if option is None:
                continue
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
                break
            except OSError:
                continue  # FORCE needs CAP_NET_ADMIN; the plain one is capped by rmem_max
        if raw:
            # Linux ICMP_FILTER: queue echo replies only, not the requests looped back
            # or the rest of the host's ICMP traffic.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(SOL_RAW, ICMP_FILTER,
                                      struct.pack("I", ~(1 << ECHO_REPLY) & 0xFFFFFFFF))
        self._raw = raw
        # A datagram ping socket gets its identifier from the kernel (its port).
        self._ident = os.getpid() & 0xFFFF if raw else 0
        self._seq = itertools.count(1)
        self._waiting: dict[int, tuple[str, asyncio.Future[float]]] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    async def ping(self, address: str, wait: float) -> float | None:
        """Round-trip time in seconds, or None when no reply came within ``wait``."""
        seq = self._next_seq()
        future: asyncio.Future[float] = self._loop.create_future()
        self._waiting[seq] = (address, future)
        sent = time.perf_counter()
        try:
            self._sock.sendto(echo_request(self._ident, seq, struct.pack("!d", sent)),
                              (address, 0))
            async with asyncio.timeout(wait):
                received = await future
            return received - sent
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(seq, None)

    def _next_seq(self) -> int:
        for _ in range(0x10000):
            seq = next(self._seq) & 0xFFFF
            if seq and seq not in self._waiting:
                return seq
        raise OSError("every ICMP sequence number is in use")

    def _on_readable(self) -> None:
        while True:
            try:
                data, (source, _) = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            now = time.perf_counter()
            parsed = parse_reply(data, self._raw)
            if parsed is None:
                continue
            ident, seq = parsed
            if self._raw and ident != self._ident:
                continue  # another program's ping
            entry = self._waiting.get(seq)
            if entry is None or entry[0] != source or entry[1].done():
                continue
            entry[1].set_result(now)

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for _, future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()


_sockets: dict[asyncio.AbstractEventLoop, EchoSocket] = {}


def echo_socket(raw: bool) -> EchoSocket:
    """This event loop's shared socket (opened on first use)."""
    loop = asyncio.get_running_loop()
    found = _sockets.get(loop)
    if found is None:
        found = _sockets[loop] = EchoSocket(raw)
    return found


async def close_echo_sockets() -> None:
    loop = asyncio.get_running_loop()
    found = _sockets.pop(loop, None)
    if found is not None:
        found.close()
