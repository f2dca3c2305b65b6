"""The ICMP probe: the shared echo socket against the loopback stack, and its parser."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from elvwatch.daemon.scheduler import Scheduler
from elvwatch.probes.base import Check, Observation, Status, Target
from elvwatch.probes.icmp import probe_icmp
from elvwatch.probes.icmp_echo import (
    ECHO_REPLY,
    PAYLOAD,
    checksum,
    close_echo_sockets,
    echo_request,
    fast_request,
    parse_reply,
    request_sum,
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


def test_fast_request_is_the_same_packet_as_echo_request() -> None:
    for ident in (0, 0x1234, 0xFFFF):
        partial = request_sum(ident)
        for seq in range(0x10000):
            assert fast_request(partial, ident, seq) == echo_request(ident, seq, PAYLOAD), seq


async def test_scheduler_pings_without_a_task_per_check() -> None:
    loop = asyncio.get_running_loop()
    created: list[str] = []
    default = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        created.append(getattr(coro, "__qualname__", "?"))
        if default is not None:
            return default(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    seen: list[Observation] = []
    sched = Scheduler(seen.append, jitter=0.0)
    sched.set_targets((Target(f"d{i}", f"127.0.{i // 200}.{i % 200 + 1}"),
                       (Check("icmp", "icmp", interval=0.5, timeout=2.0),)) for i in range(300))
    loop.set_task_factory(counting)
    try:
        runner = asyncio.create_task(sched.run())
        for _ in range(100):
            if len({o.device for o in seen}) == 300:
                break
            await asyncio.sleep(0.05)
        await sched.stop(drain_timeout=2)
        await runner
    finally:
        loop.set_task_factory(default)
        await close_echo_sockets()
    assert len({o.device for o in seen}) == 300
    assert all(o.status is Status.OK for o in seen)
    assert sched.stats.in_flight == 0
    assert "Scheduler.run" in created  # the factory saw the dispatcher start...
    assert "Scheduler._run" not in created  # ...and no check ran as a task of its own


async def test_fast_path_queues_as_a_task_when_the_global_cap_is_full() -> None:
    seen: list[Observation] = []
    sched = Scheduler(seen.append, jitter=0.0, max_concurrency=5)
    sched.set_targets((Target(f"d{i}", f"127.0.1.{i + 1}"),
                       (Check("icmp", "icmp", interval=5.0, timeout=2.0),)) for i in range(40))
    peak = 0
    runner = asyncio.create_task(sched.run())
    try:
        for _ in range(200):
            peak = max(peak, sched.stats.in_flight)
            if len(seen) >= 40:
                break
            await asyncio.sleep(0.005)
    finally:
        await sched.stop(drain_timeout=2)
        await runner
        await close_echo_sockets()
    assert len(seen) == 40 and all(o.status is Status.OK for o in seen)
    assert peak <= 5


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) for a network namespace")
def test_unanswered_pings_go_down_by_their_deadline_and_recover() -> None:
    script = Path(__file__).with_name("icmp_silent_host.py")
    result = subprocess.run(["unshare", "--net", sys.executable, str(script)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    silent = [r for r in rows if r["phase"] == "silent"]
    answering = [r for r in rows if r["phase"] == "answering"]
    assert {r["device"] for r in silent} == {f"d{i}" for i in range(20)}
    assert all(r["status"] == "down" and r["error"] == "no echo reply in 1 tries"
               for r in silent)
    # Down at 0.9 × the 0.5 s timeout (swept a few ms late), not before.
    assert 0.44 <= min(r["after"] for r in silent) < 1.0
    assert {r["device"] for r in answering} == {f"d{i}" for i in range(20)}
    assert all(r["status"] == "ok" for r in answering if r["after"] > 0.5)
