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
import heapq
import itertools
import logging
import os
import socket
import struct
import time
from collections.abc import Callable

from elvwatch.probes.sharing import close_loose, shared

ECHO_REQUEST, ECHO_REPLY = 8, 0
RECEIVE_BUFFER = 8 * 1024 * 1024
SOL_RAW, ICMP_FILTER = 255, 1  # linux/icmp.h
_HEADER = struct.Struct("!BBHHH")
# Every request carries the same payload (the send time is kept in the waiter), so its
# checksum is a precomputed sum plus the sequence number.
PAYLOAD = b"elvwatch"
_REQUEST = struct.Struct(f"!BBHHH{len(PAYLOAD)}s")
# Expired requests are swept this late at most, so those due together go in one pass.
SWEEP_SLACK = 0.005

log = logging.getLogger(__name__)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request built plainly: the reference :func:`fast_request` is tested against."""
    header = _HEADER.pack(ECHO_REQUEST, 0, 0, ident, seq)
    return _HEADER.pack(ECHO_REQUEST, 0, checksum(header + payload), ident, seq) + payload


def request_sum(ident: int) -> int:
    """The one's-complement sum of a request of ours but for its sequence number."""
    words = struct.unpack(f"!{len(PAYLOAD) // 2}H", PAYLOAD)
    return (ECHO_REQUEST << 8) + ident + int(sum(words))


def fast_request(partial: int, ident: int, seq: int) -> bytes:
    """``echo_request(ident, seq, PAYLOAD)`` from :func:`request_sum`'s ``partial``."""
    total = partial + seq
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return _REQUEST.pack(ECHO_REQUEST, 0, ~total & 0xFFFF, ident, seq, PAYLOAD)


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


Answer = Callable[[float | None], None]  # called once: round-trip seconds, or None


class EchoSocket:
    """Sends echo requests and calls each one's answer when its reply (or its deadline)
    comes.

    No task, future or timer per ping: a waiter is a dict entry, and one timer per
    socket, set for the earliest deadline, sweeps the expired ones.  The ICMP bench
    (bench/icmp_bench.py) put the per-ping ``asyncio.timeout`` (a timer handle and its
    cancellation) plus the task of each check at about a third of the daemon's CPU per
    ping; fping, the floor, spends none of that.  Checks of one timeout send in
    deadline order, so the heap is appended to at its end and the sweep timer is moved
    only when an earlier deadline arrives.
    """

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
        self._partial_sum = request_sum(self._ident)
        self._seq = itertools.count(1)
        # seq -> (address, sent at, deadline, answer)
        self._waiting: dict[int, tuple[str, float, float, Answer]] = {}
        self._deadlines: list[tuple[float, int]] = []  # (deadline, seq), a heap
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = 0.0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def send(self, address: str, wait: float, answer: Answer) -> int:
        """Send one echo request; ``answer`` gets the round-trip seconds, or None when no
        reply came within ``wait`` seconds.  Returns the request's sequence number (for
        :meth:`forget`).  Raises OSError when the request cannot be sent (``answer`` is
        then never called)."""
        seq = self._next_seq()
        sent = time.perf_counter()
        self._sock.sendto(fast_request(self._partial_sum, self._ident, seq), (address, 0))
        deadline = self._loop.time() + wait
        self._waiting[seq] = (address, sent, deadline, answer)
        heapq.heappush(self._deadlines, (deadline, seq))
        if self._sweep is None or deadline < self._sweep_at:
            self._arm(deadline)
        return seq

    def forget(self, seq: int) -> None:
        """Drop a request whose waiter went away (its check was cancelled)."""
        self._waiting.pop(seq, None)

    async def ping(self, address: str, wait: float) -> float | None:
        """Round-trip time in seconds, or None when no reply came within ``wait``."""
        future: asyncio.Future[float | None] = self._loop.create_future()

        def answer(rtt: float | None) -> None:
            if not future.done():
                future.set_result(rtt)

        seq = self.send(address, wait, answer)
        try:
            return await future
        finally:
            self.forget(seq)

    def _next_seq(self) -> int:
        for _ in range(0x10000):
            seq = next(self._seq) & 0xFFFF
            if seq and seq not in self._waiting:
                return seq
        raise OSError("every ICMP sequence number is in use")

    def _arm(self, when: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        # A little late on purpose: deadlines that fall due together expire in one sweep.
        self._sweep_at = when
        self._sweep = self._loop.call_at(when + SWEEP_SLACK, self._expire)

    def _expire(self) -> None:
        self._sweep = None
        now = self._loop.time()
        deadlines, waiting = self._deadlines, self._waiting
        while deadlines and deadlines[0][0] <= now:
            deadline, seq = heapq.heappop(deadlines)
            entry = waiting.get(seq)
            if entry is not None and entry[2] == deadline:  # not answered, not reused
                del waiting[seq]
                _call(entry[3], None)
        if deadlines:
            self._arm(deadlines[0][0])

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
            if entry is None or entry[0] != source:
                continue
            del self._waiting[seq]
            _call(entry[3], now - entry[1])

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        waiting = list(self._waiting.values())
        self._waiting.clear()
        self._deadlines.clear()
        for entry in waiting:
            _call(entry[3], None)


def _call(answer: Answer, rtt: float | None) -> None:
    """An answer that raises is a bug in its caller; it must not stop the other replies."""
    try:
        answer(rtt)
    except Exception:
        log.exception("ICMP answer callback failed")


def echo_socket(raw: bool) -> EchoSocket:
    """The daemon's shared socket (probes/sharing.py; opened on first use)."""
    return shared().get(EchoSocket, lambda: EchoSocket(raw))


async def close_echo_sockets() -> None:
    """Close the socket runs outside a daemon opened on this loop (a daemon closes its
    own when it stops)."""
    await close_loose(EchoSocket)
