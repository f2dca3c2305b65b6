"""ICMP echo probe on icmplib: raw sockets as root, unprivileged datagram sockets
where ``net.ipv4.ping_group_range`` allows our group.

Values: ``icmp.rtt_seconds`` (average), ``icmp.packet_loss_ratio``.
Some replies lost → ``degraded``; all lost → ``down``.
"""

from __future__ import annotations

import functools
import os

from icmplib import async_ping
from icmplib.exceptions import ICMPLibError, SocketPermissionError

from probes.base import Check, Observation, ProbeConfigError, Status, Target, down


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
    count = int(check.params.get("count", 1) or 1)
    # Leave the scheduler's timeout room to cancel us first if the host hangs DNS.
    per_reply = max(0.05, check.timeout / max(count, 1) * 0.9)
    try:
        host = await async_ping(target.host, count=count, interval=0.05, timeout=per_reply,
                                privileged=privileged())
    except SocketPermissionError as exc:
        raise ProbeConfigError(
            "icmp", "needs root, CAP_NET_RAW, or net.ipv4.ping_group_range covering this "
            "user's group") from exc
    except ICMPLibError as exc:
        return down(target, check, f"icmp: {exc}")
    except OSError as exc:
        return down(target, check, f"icmp: {exc.strerror or exc}")
    values = {"icmp.packet_loss_ratio": float(host.packet_loss)}
    if host.packets_received == 0:
        return down(target, check, f"no echo reply in {count} tries", values=values)
    rtt = host.avg_rtt / 1000.0
    values["icmp.rtt_seconds"] = rtt
    status = Status.OK if host.packets_received == count else Status.DEGRADED
    error = None if status is Status.OK else f"{count - host.packets_received} of {count} lost"
    return Observation(target.device, check.name, status, values=values, latency=rtt,
                       error=error)
