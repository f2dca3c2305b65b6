"""Modbus polls per second against the lab gateway, with the prober's CPU per poll.

The lab server runs in its own process (``python -m elvwatch.lab.modbus``) so the CPU figure is
the probe's alone.  Polls go through ``probe_modbus`` exactly as the scheduler calls it,
back to back over the one pooled connection per gateway (one request in flight).  Each
map is polled for at most ``--seconds`` or ``--polls``, whichever ends first::

    python bench/modbus_bench.py [--seconds 5] [--polls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elvwatch.lab.modbus import DEFAULT_UNITS, READY_PREFIX
from elvwatch.probes.base import Check, Status, Target
from elvwatch.probes.modbus import close_connections, probe_modbus
from elvwatch.probes.modbus_maps import load_profile, plan_reads

START_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _bench(port: int, seconds: float, max_polls: int) -> None:
    target = Target("bench", "127.0.0.1")
    print(f"{'map':<22}{'requests/poll':>14}{'polls/s':>10}{'requests/s':>12}"
          f"{'CPU ms/poll':>13}{'p50 ms':>9}{'p99 ms':>9}")
    for unit, name in DEFAULT_UNITS.items():
        check = Check("m", "modbus", timeout=5.0, port=port,
                      params={"profile": name, "unit": unit})
        requests = len(plan_reads(load_profile(name)))
        await probe_modbus(target, check)  # connect outside the measurement
        latencies: list[float] = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while len(latencies) < max_polls and time.perf_counter() - wall0 < seconds:
            t0 = time.perf_counter()
            obs = await probe_modbus(target, check)
            latencies.append(time.perf_counter() - t0)
            if obs.status is not Status.OK:
                raise SystemExit(f"poll failed: {obs.error}")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        n = len(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98] if n >= 100 else max(latencies)
        print(f"{name:<22}{requests:>14}{n / wall:>10.0f}{n * requests / wall:>12.0f}"
              f"{cpu / n * 1000:>13.3f}{statistics.median(latencies) * 1000:>9.3f}"
              f"{p99 * 1000:>9.3f}")
    await close_connections()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per map (max 60)")
    parser.add_argument("--polls", type=int, default=20000, help="per map (max 1,000,000)")
    args = parser.parse_args()
    seconds, polls = min(args.seconds, 60.0), min(args.polls, 1_000_000)
    port = _free_port()
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen([sys.executable, "-m", "elvwatch.lab.modbus", "--listen",
                               f"127.0.0.1:{port}"], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line = server.stdout.readline()
        if not line.startswith(READY_PREFIX) or time.monotonic() > deadline:
            raise SystemExit(f"lab did not start: {line!r}")
        print(f"lab gateway {line[len(READY_PREFIX):].strip()} (separate process); "
              f"up to {seconds:g}s or {polls} polls per map")
        asyncio.run(_bench(port, seconds, polls))
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
