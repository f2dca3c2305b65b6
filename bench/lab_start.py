"""Start a large lab fleet, report start time and memory, probe a sample, stop.

    python bench/lab_start.py [--count 20000] [--first 127.10.0.1] [--port 18080]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from elvwatch.lab.devices import FD_RESERVE, LabFleet, raise_nofile_limit

SAMPLE = 200  # devices connected to after start, to prove they answer
# Client and server ends of a sample connection both live in this process and share
# the lab's small file-descriptor reserve: keep few open at once.
SAMPLE_CONCURRENCY = 16
TIMEOUT = 120.0  # the whole run, start to stop


def rss_mib() -> float:
    """Current resident set size in MiB (from /proc; peak from getrusage as fallback)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def banner(host: str, port: int, limit: asyncio.Semaphore) -> bytes:
    async with limit:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(reader.readline(), 5.0)
        finally:
            writer.close()
            await writer.wait_closed()


async def run(count: int, first: str, port: int) -> None:
    limit = raise_nofile_limit(count + FD_RESERVE)
    if count + FD_RESERVE > limit:
        fitting = limit - FD_RESERVE
        print(f"note: RLIMIT_NOFILE is {limit} and cannot be raised here; "
              f"measuring {fitting} devices instead of {count}")
        count = fitting
    before = rss_mib()
    fleet = LabFleet(count, first, (port,))
    started = time.perf_counter()
    await fleet.start()
    start_seconds = time.perf_counter() - started
    after = rss_mib()
    try:
        sample = random.sample(fleet.devices, min(SAMPLE, count))
        probe_started = time.perf_counter()
        slots = asyncio.Semaphore(SAMPLE_CONCURRENCY)
        answers = await asyncio.gather(*(banner(d.host, port, slots) for d in sample))
        probe_seconds = time.perf_counter() - probe_started
        good = sum(a.startswith(b"ELVLAB") for a in answers)
    finally:
        stop_started = time.perf_counter()
        await fleet.stop()
        stop_seconds = time.perf_counter() - stop_started
    print(f"devices={count} ports=1 first={first} last={fleet.last}")
    print(f"start_seconds={start_seconds:.2f} ({count / start_seconds:,.0f} devices/s)")
    print(f"rss_before_mib={before:.1f} rss_after_start_mib={after:.1f} "
          f"per_device_kib={(after - before) * 1024 / count:.2f}")
    print(f"sample_banners={good}/{len(sample)} in {probe_seconds:.2f}s")
    print(f"stop_seconds={stop_seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--first", default="127.10.0.1")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    asyncio.run(asyncio.wait_for(run(args.count, args.first, args.port), TIMEOUT))


if __name__ == "__main__":
    main()
