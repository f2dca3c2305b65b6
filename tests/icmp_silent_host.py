"""Run by tests/test_icmp.py inside a network namespace of its own (``unshare --net``,
as root): the namespace's kernel is told to ignore echo requests, then to answer them
again, while a scheduler pings its loopback addresses on the fast path.  Prints one JSON
line per observation: {"phase", "device", "status", "error", "after"}."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from elvwatch.daemon.scheduler import Scheduler
from elvwatch.probes.base import Check, Observation, Target
from elvwatch.probes.icmp_echo import close_echo_sockets

IGNORE = Path("/proc/sys/net/ipv4/icmp_echo_ignore_all")


def answer_echo(on: bool) -> None:
    """The namespace's kernel answers echo requests, or ignores them (a tiny sysctl)."""
    IGNORE.write_text("0" if on else "1")


async def main() -> None:
    phase = {"name": "silent", "began": time.monotonic()}

    def seen(obs: Observation) -> None:
        print(json.dumps({"phase": phase["name"], "device": obs.device,
                          "status": obs.status.value, "error": obs.error,
                          "after": round(time.monotonic() - phase["began"], 3)}), flush=True)

    answer_echo(False)
    sched = Scheduler(seen, jitter=0.0)
    sched.set_targets((Target(f"d{i}", f"127.0.0.{i + 1}"),
                       (Check("icmp", "icmp", interval=1.0, timeout=0.5),)) for i in range(20))
    task = asyncio.create_task(sched.run())
    try:
        await asyncio.sleep(1.6)
        answer_echo(True)
        phase.update(name="answering", began=time.monotonic())
        await asyncio.sleep(1.6)
    finally:
        await sched.stop(drain_timeout=2)
        await task
        await close_echo_sockets()


if __name__ == "__main__":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    asyncio.run(main())
