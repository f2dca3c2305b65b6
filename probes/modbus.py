"""Modbus TCP probe: reads a device's register map and turns it into values and faults.

The map (``params.profile``) says what to read and what each value means; see
``probes/modbus_maps.py``.  Values: ``modbus.<point>`` for each point of the map (bit
fields one per bit, enums also ``<point>_label``).  Status:

- ``down``     no connection, no answer, connection lost, or a gateway exception (10/11:
               the device behind the gateway did not answer) — or a map fault of
               status down;
- ``degraded`` a map fault (AC fail, battery low, tamper, ...);
- ``unknown``  the map does not match the device: exception response (illegal address,
               function, value), short read, NaN float, enum code not in the map.

Connections are kept per (host, port) in the daemon's pool (probes/sharing.py: the
daemon closes it when it stops), with one request in flight each (Modbus TCP gateways
often serve one transaction at a time and mix up pipelined ones).  A failed connect is
retried with exponential backoff; a dropped connection is re-opened on the next poll.
``close_connections()`` closes those of runs outside a daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from elvwatch.probes.base import (
    Check,
    Observation,
    ProbeConfigError,
    Reason,
    Status,
    Target,
    bounded,
    check_options,
    down,
    worst,
)
from elvwatch.probes.modbus_maps import (
    Block,
    Profile,
    ProfileError,
    decode_block,
    load_profile,
    plan_reads,
)
from elvwatch.probes.modbus_options import ModbusOptions
from elvwatch.probes.network import network_failure
from elvwatch.probes.sharing import close_loose, shared

log = logging.getLogger(__name__)

DEFAULT_PORT = 502
PREFIX = "modbus."
# Backoff after failed connects: 1 s doubling to 30 s — short enough that a panel back
# from a power cut is seen within one usual 60 s poll, long enough not to hammer a
# gateway that refuses us every few seconds of a short interval.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# Our own deadline is a little inside the scheduler's, so a slow device gives a clear
# "no answer" observation (and a closed connection) instead of a bare cancellation.
DEADLINE_SHARE = 0.9
# What a dead or dropped TCP peer looks like through pymodbus.
CONNECTION_ERRORS = (ModbusException, OSError, ConnectionError, asyncio.IncompleteReadError)

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# Exceptions that mean the device behind a gateway is not there: the device is down,
# not the map wrong.
GATEWAY_DOWN = {10, 11}


class _BlockError(Exception):
    """A block read that the device answered wrongly; ``status`` says how bad."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class _Connection:
    host: str
    port: int
    client: AsyncModbusTcpClient | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""
    last_reason: Reason = Reason.UNREACHABLE
    # Set when the peer closes the connection: pymodbus does not fail a request in
    # flight when that happens, it would wait out its whole timeout.
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    def drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def on_connection_change(self, connected: bool) -> None:
        if connected:
            self.lost.clear()
        else:
            self.lost.set()


class ModbusPool:
    """Open connections of one event loop, one per (host, port)."""

    def __init__(self) -> None:
        self._conns: dict[tuple[str, int], _Connection] = {}

    def get(self, host: str, port: int) -> _Connection:
        conn = self._conns.get((host, port))
        if conn is None:
            conn = self._conns[(host, port)] = _Connection(host, port)
        return conn

    def __len__(self) -> int:
        return sum(1 for c in self._conns.values() if c.client is not None)

    async def close(self) -> None:
        for conn in self._conns.values():
            conn.drop()
        self._conns.clear()
        # Let the transports run their connection_lost callbacks before the loop ends.
        await asyncio.sleep(0)


def pool() -> ModbusPool:
    """The daemon's pool (probes/sharing.py; clients are bound to the loop that opened
    them, as the daemon's are)."""
    return shared().get(ModbusPool)


async def release(host: str, port: int | None) -> None:
    """Close the connection to ``host:port`` unless a poll is using it (ad-hoc probes
    run once; a daemon poll holding it keeps it)."""
    found = shared().find(ModbusPool)
    conn = found._conns.pop((host, port or DEFAULT_PORT), None) if found else None
    if conn is not None and not conn.lock.locked():
        conn.drop()
        await asyncio.sleep(0)
    elif conn is not None and found is not None:
        found._conns[(host, port or DEFAULT_PORT)] = conn


async def close_connections() -> None:
    """Close the connections runs outside a daemon opened on this loop (a daemon closes
    its own when it stops)."""
    await close_loose(ModbusPool)




async def probe_modbus(target: Target, check: Check) -> Observation:
    options = check_options(check, ModbusOptions)
    try:
        profile = load_profile(options.profile)
    except ProfileError as exc:
        raise ProbeConfigError("modbus", str(exc)) from None
    port = check.port or DEFAULT_PORT
    budget = check.timeout * DEADLINE_SHARE
    started = time.perf_counter()
    conn = pool().get(target.host, port)
    try:
        async with asyncio.timeout(budget), conn.lock:
            return await _poll(target, check, conn, profile, options.unit, budget, started)
    except TimeoutError:
        conn.drop()  # a late answer would be taken for the next request's
        return down(target, check, f"no answer from port {port} within {budget:.3g}s",
                    latency=time.perf_counter() - started, reason=Reason.TIMEOUT)
    except asyncio.CancelledError:
        conn.drop()
        raise


async def _poll(target: Target, check: Check, conn: _Connection, profile: Profile,
                unit: int, budget: float, started: float) -> Observation:
    if conn.client is None or not conn.client.connected:
        conn.drop()
        wait = conn.retry_at - time.monotonic()
        if wait > 0:
            return down(target, check, f"{conn.last_error}; next connect attempt in "
                                       f"{wait:.1f}s", latency=time.perf_counter() - started,
                        reason=conn.last_reason)
        if not await _connect(conn, budget):
            return down(target, check, conn.last_error, latency=time.perf_counter() - started,
                        reason=conn.last_reason)
    client = conn.client
    assert client is not None
    values: dict[str, float | str] = {}
    faults: list[tuple[Status, str]] = []
    for block in plan_reads(profile):
        try:
            data = await _read(client, block, unit, conn.lost)
        except CONNECTION_ERRORS as exc:
            conn.drop()
            failure = network_failure(exc)
            return down(target, check, f"connection lost reading {block.describe()}: "
                                       f"{failure.text}",
                        latency=time.perf_counter() - started, values=values,
                        reason=failure.reason)
        except _BlockError as exc:
            faults.append((exc.status, f"{block.describe()}: {exc.reason}"))
            continue
        decoded = decode_block(block, data, PREFIX)
        values.update(decoded.values)
        faults += [(Status(status), reason) for status, reason in decoded.faults]
        faults += [(Status.UNKNOWN, f"map {profile.name!r} does not fit: {problem}")
                   for problem in decoded.problems]
    status = worst([s for s, _ in faults]) if faults else Status.OK
    error = bounded("; ".join(reason for _, reason in faults), 512) if faults else None
    return Observation(target.device, check.name, status, values=values,
                       latency=time.perf_counter() - started, error=error)


async def _connect(conn: _Connection, budget: float) -> bool:
    """Open the connection; if it failed, say why in ``conn`` and set the next backoff."""
    # retries=0 and no reconnect_delay: the scheduler decides when to try again, and a
    # retried read would only stretch one poll past its timeout.
    client = AsyncModbusTcpClient(conn.host, port=conn.port, timeout=budget, retries=0,
                                  reconnect_delay=0, reconnect_delay_max=0,
                                  trace_connect=conn.on_connection_change)
    try:
        ok = await client.connect()
    except CONNECTION_ERRORS as exc:
        ok, (reason, detail) = False, network_failure(exc)
    else:
        # pymodbus says no more than that: which of the two it was is not known.
        reason, detail = Reason.UNREACHABLE, "connection refused or unreachable"
    if ok and client.connected:
        conn.client, conn.failures, conn.retry_at, conn.last_error = client, 0, 0.0, ""
        return True
    client.close()
    conn.failures += 1
    conn.last_error, conn.last_reason = f"connect to port {conn.port}: {detail}", reason
    conn.retry_at = time.monotonic() + min(BACKOFF_MAX,
                                           BACKOFF_FIRST * 2 ** (conn.failures - 1))
    return False


async def _read(client: AsyncModbusTcpClient, block: Block, unit: int,
                lost: asyncio.Event) -> Sequence[int] | Sequence[bool]:
    reader = {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[block.function]
    request = asyncio.ensure_future(reader(block.address, count=block.count, device_id=unit))
    closed = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait((request, closed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        if not request.done():
            request.cancel()
    if not request.done() or request.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            await request
        raise ConnectionError("connection closed by the device")
    response: ModbusPDU = request.result()
    if response.isError():
        code = response.exception_code
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        if code in GATEWAY_DOWN:
            raise _BlockError(Status.DOWN, f"exception {code} ({name}): unit {unit} "
                                           "behind the gateway did not answer")
        raise _BlockError(Status.UNKNOWN, f"exception {code} ({name}) — the map does not "
                                          "match this device")
    bit_read = block.function in ("coil", "discrete")
    data: Sequence[int] | Sequence[bool] = response.bits if bit_read else response.registers
    # Bits arrive padded to whole bytes, so a short bit read shows as fewer bytes.
    if len(data) < block.count:
        raise _BlockError(Status.UNKNOWN, f"short read: asked {block.count}, got {len(data)}")
    return data
