"""The ICMP probe: the shared echo socket against the loopback stack, and its parser."""

from __future__ import annotations

import asyncio
import struct

from probes.base import Check, Status, Target
from probes.icmp import probe_icmp
from probes.icmp_echo import (
    ECHO_REPLY,
    checksum,
    close_echo_sockets,
    echo_request,
    parse_reply,
)


async def test_many_concurrent_pings_share_one_socket_and_all_get_their_reply() -> None:
    try:
        results = await asyncio.gather(*(
            probe_icmp(Target(f"d{i}", f"127.0.{i // 200}.{i % 200 + 1}"),
                       Check("icmp", "icmp", timeout=2.0)) for i in range(300)))
    finally:
        await close_echo_sockets()
    assert all(o.status is Status.OK for o in results)
    assert all(0 < float(o.values["icmp.rtt_seconds"]) < 1 for o in results)
    assert {o.values["icmp.packet_loss_ratio"] for o in results} == {0.0}


async def test_several_requests_per_check_and_host_names_through_icmplib() -> None:
    try:
        three = await probe_icmp(Target("a", "127.0.0.1"),
                                 Check("icmp", "icmp", timeout=2.0, params={"count": 3}))
        named = await probe_icmp(Target("b", "localhost"), Check("icmp", "icmp", timeout=2.0))
    finally:
        await close_echo_sockets()
    assert three.status is Status.OK and three.values["icmp.packet_loss_ratio"] == 0.0
    assert named.status is Status.OK


def test_echo_request_checksum_verifies() -> None:
    packet = echo_request(0x1234, 7, b"payload!")
    assert checksum(packet) == 0  # a packet with its checksum sums to zero


def test_replies_are_parsed_strictly() -> None:
    reply = struct.pack("!BBHHH", ECHO_REPLY, 0, 0, 0x1234, 7) + b"x" * 8
    ip_header = bytes([0x45]) + b"\0" * 19
    assert parse_reply(ip_header + reply, raw=True) == (0x1234, 7)
    assert parse_reply(reply, raw=False) == (0x1234, 7)
    request = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 7)
    assert parse_reply(request, raw=False) is None          # our own request looped back
    assert parse_reply(reply[:5], raw=False) is None         # truncated
    assert parse_reply(b"\x60" + b"\0" * 40, raw=True) is None  # not IPv4
    assert parse_reply(bytes([0x4F]) + b"\0" * 30, raw=True) is None  # header past the end
