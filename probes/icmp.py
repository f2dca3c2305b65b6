"""ICMP echo probe: raw sockets as root (or with CAP_NET_RAW), unprivileged datagram
sockets where ``net.ipv4.ping_group_range`` allows our group.  IPv4 addresses are pinged
through one shared socket per event loop (probes/icmp_echo.py); host names and IPv6
through icmplib.

Values: ``icmp.rtt_seconds`` (average), ``icmp.packet_loss_ratio``.
Some replies lost → ``degraded``; all lost → ``down``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
from collections.abc import Callable

from icmplib import async_ping
from icmplib.exceptions import ICMPLibError, SocketPermissionError

from elvwatch.probes.base import (
    Check,
    Observation,
    ProbeConfigError,
    Reason,
    Status,
    Target,
    down,
)
from elvwatch.probes.icmp_echo import echo_socket

INTERVAL = 0.05  # seconds between the echo requests of one check


@functools.cache
def privileged() -> bool:
    """Raw sockets as root; otherwise the kernel's unprivileged ICMP sockets if allowed."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", encoding="ascii") as fh:
            low, high = (int(part) for part in fh.read().split())
    except (OSError, ValueError):
        return True
    # Outside the range, raw sockets may still work through CAP_NET_RAW (systemd unit).
    return not any(low <= gid <= high for gid in [*os.getgroups(), os.getegid()])


async def probe_icmp(target: Target, check: Check) -> Observation:
    count = _count(check)
    per_reply = _per_reply(check, count)
    try:
        if is_ipv4(target.host):
            rtts = await _ping_shared(target.host, count, per_reply)
        else:  # host names and IPv6: icmplib resolves and pings
            host = await async_ping(target.host, count=count, interval=INTERVAL,
                                    timeout=per_reply, privileged=privileged())
            rtts = [rtt / 1000.0 for rtt in host.rtts]
    except (PermissionError, SocketPermissionError) as exc:
        raise _permission_error() from exc
    except ICMPLibError as exc:  # a name that does not resolve, or cannot be pinged
        return down(target, check, f"icmp: {exc}", reason=Reason.UNREACHABLE)
    except OSError as exc:
        return down(target, check, f"icmp: {exc.strerror or exc}", reason=Reason.UNREACHABLE)
    return _observation(target, check, rtts, count)


def start_icmp(target: Target, check: Check, done: Callable[[Observation], None]) -> bool:
    """Start a one-request check of an IPv4 address without a task or a timer of its own
    (the scheduler's fast path): ``done`` gets the Observation when the reply or the
    deadline comes.  Returns False, having started nothing, for anything else (several
    requests, host names, IPv6); the caller then awaits :func:`probe_icmp`."""
    if _count(check) != 1 or not is_ipv4(target.host):
        return False
    try:
        sock = echo_socket(raw=privileged())
    except PermissionError as exc:
        raise _permission_error() from exc

    def answer(rtt: float | None) -> None:
        done(_observation(target, check, [] if rtt is None else [rtt], 1))

    try:
        sock.send(target.host, _per_reply(check, 1), answer)
    except PermissionError as exc:
        raise _permission_error() from exc
    except OSError as exc:
        done(down(target, check, f"icmp: {exc.strerror or exc}", reason=Reason.UNREACHABLE))
    return True


def _count(check: Check) -> int:
    return int(check.params.get("count", 1) or 1)


def _per_reply(check: Check, count: int) -> float:
    # Leave the scheduler's timeout room to cancel us first if the host hangs DNS.
    return max(0.05, check.timeout / max(count, 1) * 0.9)


def _permission_error() -> ProbeConfigError:
    return ProbeConfigError(
        "icmp", "needs root, CAP_NET_RAW, or net.ipv4.ping_group_range covering this "
        "user's group")


def _observation(target: Target, check: Check, rtts: list[float], count: int) -> Observation:
    values = {"icmp.packet_loss_ratio": 1.0 - len(rtts) / count}
    if not rtts:
        return down(target, check, f"no echo reply in {count} tries", values=values,
                    reason=Reason.TIMEOUT)
    rtt = sum(rtts) / len(rtts)
    values["icmp.rtt_seconds"] = rtt
    status = Status.OK if len(rtts) == count else Status.DEGRADED
    error = None if status is Status.OK else f"{count - len(rtts)} of {count} lost"
    return Observation(target.device, check.name, status, values=values, latency=rtt,
                       error=error)


async def _ping_shared(address: str, count: int, wait: float) -> list[float]:
    sock = echo_socket(raw=privileged())
    rtts: list[float] = []
    for attempt in range(count):
        if attempt:
            await asyncio.sleep(INTERVAL)
        rtt = await sock.ping(address, wait)
        if rtt is not None:
            rtts.append(rtt)
    return rtts


@functools.lru_cache(maxsize=65536)
def is_ipv4(host: str) -> bool:
    """Cached: parsing the address every run was a measurable share of a ping's CPU."""
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False
