"""Simulated devices: each on its own loopback address, with TCP listeners and faults.

A :class:`LabDevice` listens on one or more TCP ports of one 127.x.y.z address.  On
connect it writes ``ELVLAB <device-id>\\r\\n``; for every line it receives it answers
``OK\\r\\n``.  Its :class:`Fault` is switched at runtime:

- ``none``  — normal.
- ``down``  — listening sockets closed (connects are refused), open connections dropped.
- ``slow``  — connects are accepted, but the banner and every answer wait ``delay``
  seconds (timers on the event loop: a slow device never holds up the others).
- ``flaky`` — every other connection, starting with the first after the switch, is closed
  at once without a banner.

Leaving ``down`` re-opens the listeners on the same address and ports.

A :class:`LabFleet` is N devices on consecutive loopback addresses (host parts .0 and
.255 skipped), started and stopped together; 20,000 devices with one port each fit in
one process (one listening socket per device and port).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import ipaddress
import math
import resource
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from types import TracebackType

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
DEFAULT_FIRST = "127.1.0.1"
DEFAULT_PORTS = (8080,)
BANNER_PREFIX = "ELVLAB"
ANSWER = b"OK\r\n"
# Connects that may wait to be accepted per listener; enough for bursts from a scheduler
# polling thousands of devices, small enough that 20,000 listeners cost little kernel memory.
BACKLOG = 64
# A SLOW device without an explicit delay waits this long: longer than a probe's usual
# connect time, shorter than the default 5 s check timeout.
DEFAULT_SLOW_DELAY = 2.0
# The control API takes delays from people; keep every timer bounded.
MAX_DELAY = 600.0
# A client that sends a longer line, or queues more delayed answers, is cut off: the lab
# must stay small however a test or benchmark misbehaves.
MAX_LINE = 4096
MAX_PENDING = 1024
# File descriptors kept free for everything that is not a listener (stdio, epoll, the
# control API, connections being served).
FD_RESERVE = 256
# Devices started concurrently; create_server yields once per listener, so batching lets
# the loop keep serving while a large fleet comes up, without one task per device.
START_BATCH = 500


class Fault(StrEnum):
    """The behaviour of a simulated device."""

    NONE = "none"
    DOWN = "down"
    SLOW = "slow"
    FLAKY = "flaky"


class LabError(Exception):
    """The lab cannot do what was asked (bad address, too many devices, bad delay)."""


def parse_fault(text: str) -> Fault:
    """``Fault`` from its name (case-insensitive); ValueError lists the known names."""
    try:
        return Fault(text.strip().lower())
    except ValueError:
        known = ", ".join(f.value for f in Fault)
        raise ValueError(f"unknown fault {text!r} (known: {known})") from None


def check_delay(delay: float) -> float:
    """``delay`` if it is a finite number of seconds in [0, MAX_DELAY]; else ValueError."""
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ValueError(f"delay must be a number of seconds, not {delay!r}")
    if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"delay must be between 0 and {MAX_DELAY:g} seconds, not {delay!r}")
    return float(delay)


def loopback_addresses(first: str, count: int) -> list[str]:
    """``count`` consecutive IPv4 loopback addresses from ``first``, skipping .0 and .255."""
    try:
        address = ipaddress.IPv4Address(first)
    except ValueError:
        raise LabError(f"{first!r} is not an IPv4 address") from None
    if address not in LOOPBACK:
        raise LabError(f"{first} is not a loopback address (127.0.0.0/8)")
    out: list[str] = []
    last = LOOPBACK.broadcast_address
    while len(out) < count:
        if address >= last:
            raise LabError(f"{count} addresses from {first} run past 127.255.255.254")
        if int(address) & 0xFF not in (0, 255):
            out.append(str(address))
        address += 1
    return out


def raise_nofile_limit(needed: int = 0) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (and the hard limit to ``needed``
    when the process may, i.e. runs as root); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and needed > hard:
        # Only a privileged process may raise the hard limit; otherwise stay within it.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # An unlimited hard limit is still capped by fs.nr_open; then keep the soft one.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


class _Connection(asyncio.Protocol):
    """One client connection to a device: banner, then ``OK`` per line, maybe delayed."""

    def __init__(self, device: LabDevice) -> None:
        self._device = device
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        # (due time, payload) in send order; one timer for the head keeps order exact.
        self._pending: deque[tuple[float, bytes]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._close_when_flushed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._device._accepting:
            # Accepted in the same loop turn as the listener closed: refuse it too.
            transport.abort()
            return
        self._device._connections.add(self)
        if self._device._drops_next_connection():
            transport.close()
            return
        self._send(self._device.banner)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            _line, _, self._buffer = self._buffer.partition(b"\n")
            self._send(ANSWER)
        if len(self._buffer) > MAX_LINE:
            self.abort()

    def eof_received(self) -> bool:
        # Keep the socket open until delayed answers are out: a half-closed client
        # still wants its replies.
        if self._pending:
            self._close_when_flushed = True
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        self._transport = None
        self._device._connections.discard(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _send(self, payload: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        delay = self._device.delay if self._device.fault is Fault.SLOW else 0.0
        if delay <= 0 and not self._pending:
            transport.write(payload)
            return
        if len(self._pending) >= MAX_PENDING:
            self.abort()
            return
        loop = asyncio.get_running_loop()
        self._pending.append((loop.time() + delay, payload))
        if self._timer is None:
            self._timer = loop.call_at(self._pending[0][0], self._flush)

    def _flush(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._pending and self._pending[0][0] <= now:
            transport.write(self._pending.popleft()[1])
        if self._pending:
            self._timer = loop.call_at(self._pending[0][0], self._flush)
        elif self._close_when_flushed:
            transport.close()


class LabDevice:
    """One simulated device on ``host`` listening on ``ports``."""

    def __init__(self, device_id: str, host: str, ports: Sequence[int], *,
                 backlog: int = BACKLOG) -> None:
        loopback_addresses(host, 1)  # refuses anything but 127.0.0.0/8
        if not ports:
            raise LabError(f"device {device_id} needs at least one port")
        for port in ports:
            if not 0 <= port <= 65535:
                raise LabError(f"device {device_id}: port {port} is out of range")
        self.id = device_id
        self.host = host
        self.banner = f"{BANNER_PREFIX} {device_id}\r\n".encode()
        self._ports = list(ports)
        self._backlog = backlog
        self._fault = Fault.NONE
        self._delay = 0.0
        self._connection_count = 0
        self._servers: list[asyncio.Server] = []
        self._connections: set[_Connection] = set()
        self._running = False
        self._accepting = False
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"LabDevice({self.id!r}, {self.host!r}, {self.ports!r}, fault={self._fault})"

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports; a port given as 0 reads as the one the system picked once started."""
        return tuple(self._ports)

    @property
    def fault(self) -> Fault:
        return self._fault

    @property
    def delay(self) -> float:
        """Seconds each banner and answer waits while the fault is ``slow``."""
        return self._delay

    @property
    def listening(self) -> bool:
        return bool(self._servers)

    @property
    def connections(self) -> int:
        return len(self._connections)

    def describe(self) -> dict[str, object]:
        """The JSON shape of ``GET /devices`` entries."""
        return {"id": self.id, "host": self.host, "ports": list(self._ports),
                "fault": self._fault.value, "delay": self._delay,
                "listening": self.listening}

    async def start(self) -> None:
        """Open the listeners (unless the device is ``down``)."""
        async with self._guard():
            self._running = True
            if self._fault is not Fault.DOWN:
                await self._open()

    async def stop(self) -> None:
        """Close the listeners and every connection."""
        async with self._guard():
            self._running = False
            await self._close()

    async def set_fault(self, fault: Fault | str, delay: float | None = None) -> None:
        """Switch behaviour; ``delay`` (seconds) applies to ``slow`` and defaults to
        :data:`DEFAULT_SLOW_DELAY` there.  Leaving ``down`` re-opens the listeners."""
        fault = parse_fault(fault) if isinstance(fault, str) else fault
        if delay is None:
            delay = DEFAULT_SLOW_DELAY if fault is Fault.SLOW else 0.0
        delay = check_delay(delay)
        async with self._guard():
            self._fault = fault
            self._delay = delay
            self._connection_count = 0
            if fault is Fault.DOWN:
                await self._close()
            elif self._running and not self._servers:
                await self._open()

    def _guard(self) -> asyncio.Lock:
        # Created on first use: 20,000 idle devices need no lock objects.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _drops_next_connection(self) -> bool:
        if self._fault is not Fault.FLAKY:
            return False
        self._connection_count += 1
        return self._connection_count % 2 == 1

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        factory = functools.partial(_Connection, self)
        self._accepting = True
        try:
            for index, port in enumerate(self._ports):
                server = await loop.create_server(factory, self.host, port,
                                                  reuse_address=True, backlog=self._backlog)
                self._servers.append(server)
                if port == 0:
                    self._ports[index] = server.sockets[0].getsockname()[1]
        except OSError as exc:
            await self._close()
            raise LabError(f"device {self.id}: cannot listen on {self.host}:{port}: "
                           f"{exc.strerror or exc}") from exc

    async def _close(self) -> None:
        self._accepting = False
        servers, self._servers = self._servers, []
        # Stop accepting first and let connections the loop already accepted attach:
        # on Python 3.11 a connection accepted just before Server.close() is leaked
        # (its transport cannot attach to a closed server).
        loop = asyncio.get_running_loop()
        for server in servers:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        for _ in range(3):
            await asyncio.sleep(0)
        for server in servers:
            server.close()
        for connection in list(self._connections):
            connection.abort()
        for server in servers:
            await server.wait_closed()
        # Aborted transports report connection_lost on the next loop turns.
        for _ in range(20):
            if not self._connections:
                break
            await asyncio.sleep(0)


def tcp_check(port: int, expect: str = BANNER_PREFIX) -> dict[str, object]:
    """An elvwatch ``tcp`` check entry that expects the lab banner on ``port``."""
    return {"type": "tcp", "port": port, "params": {"expect": expect}}


def icmp_check() -> dict[str, object]:
    """An elvwatch ``icmp`` check entry (every 127/8 address answers ping on Linux)."""
    return {"type": "icmp"}


def lab_checks(mode: str, port: int) -> list[dict[str, object]]:
    """Checks for a lab device: ``tcp``, ``icmp`` or ``both``."""
    if mode == "tcp":
        return [tcp_check(port)]
    if mode == "icmp":
        return [icmp_check()]
    if mode == "both":
        return [icmp_check(), tcp_check(port)]
    raise ValueError(f"unknown check mode {mode!r} (known: tcp, icmp, both)")


class LabFleet:
    """``count`` devices on consecutive loopback addresses from ``first``."""

    def __init__(self, count: int, first: str = DEFAULT_FIRST,
                 ports: Sequence[int] = DEFAULT_PORTS, *, prefix: str = "lab",
                 backlog: int = BACKLOG) -> None:
        if count < 1:
            raise LabError(f"a fleet needs at least one device, not {count}")
        if not ports or 0 in ports:
            raise LabError("a fleet needs fixed ports (1-65535), the same on every device")
        width = max(5, len(str(count)))
        self._devices: dict[str, LabDevice] = {}
        for number, host in enumerate(loopback_addresses(first, count), start=1):
            device = LabDevice(f"{prefix}-{number:0{width}d}", host, ports, backlog=backlog)
            self._devices[device.id] = device
        self.ports = tuple(ports)
        self.first = first

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[LabDevice]:
        return iter(self._devices.values())

    async def __aenter__(self) -> LabFleet:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def devices(self) -> tuple[LabDevice, ...]:
        return tuple(self._devices.values())

    @property
    def last(self) -> str:
        return list(self._devices.values())[-1].host

    def device(self, device_id: str) -> LabDevice:
        """The device called ``device_id``; KeyError if there is none."""
        try:
            return self._devices[device_id]
        except KeyError:
            raise KeyError(f"no lab device {device_id!r}") from None

    async def set_fault(self, device_id: str, fault: Fault | str,
                        delay: float | None = None) -> LabDevice:
        device = self.device(device_id)
        await device.set_fault(fault, delay)
        return device

    async def start(self) -> None:
        """Open every listener; on failure close what was opened and raise LabError."""
        needed = len(self._devices) * len(self.ports) + FD_RESERVE
        limit = raise_nofile_limit(needed)
        if needed > limit:
            raise LabError(f"{len(self._devices)} devices × {len(self.ports)} ports need "
                           f"about {needed} file descriptors; the limit is {limit} "
                           f"(raise it with `ulimit -n`)")
        devices = list(self._devices.values())
        try:
            for begin in range(0, len(devices), START_BATCH):
                batch = devices[begin:begin + START_BATCH]
                results = await asyncio.gather(*(d.start() for d in batch),
                                               return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every listener and connection."""
        devices = list(self._devices.values())
        for begin in range(0, len(devices), START_BATCH):
            await asyncio.gather(*(d.stop() for d in devices[begin:begin + START_BATCH]))

    def config_devices(self, site: str, kind: str,
                       checks: Sequence[Mapping[str, object]] | None = None,
                       ) -> list[dict[str, object]]:
        """elvwatch ``devices:`` entries for the fleet (YAML-ready).

        ``checks`` is copied into every entry (``None`` leaves them to the kind's
        defaults); see :func:`lab_checks`.
        """
        out: list[dict[str, object]] = []
        for device in self._devices.values():
            entry: dict[str, object] = {"id": device.id, "site": site, "kind": kind,
                                        "host": device.host}
            if checks is not None:
                # Separate copies: a shared object would be written as a YAML alias.
                entry["checks"] = [copy.deepcopy(dict(check)) for check in checks]
            out.append(entry)
        return out
