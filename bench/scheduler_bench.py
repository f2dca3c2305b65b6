"""Scheduler benchmark: the daemon against lab devices, and the bare-library floor.

    python bench/scheduler_bench.py [--sizes 1000,5000,20000] [--interval 30]

For each fleet size N it starts N lab devices (in helper processes, at most 9,000 per
process because of the open-file limit), runs the daemon in this process with one
ICMP and one TCP check per device at the shortened interval, and measures over a
window after one warm-up interval:

* checks per second achieved vs scheduled;
* scheduler lag (how late a check started after it was due), p50 and p99;
* CPU seconds per 1,000 checks (this process: scheduler, probes, state, store);
* memory: peak RSS, and RSS added per device once configured and running;
* /metrics: scraped every 15 s during the window through the HTTP handler's path
  (rendered in slices, the checks running in between), so the lag includes scrapes;
  the wall time of one scrape.

In the same run it measures the floor: the CPU the bare libraries spend on the same
work with no daemon around them — plain ``asyncio.open_connection`` + banner read and
plain ``icmplib.async_ping`` over the same devices at the same concurrency — so the
daemon's overhead is printed as a ratio.  Machines here are shared and noisy: read the
ratios, not the absolute numbers.  Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from icmplib import async_ping
from icmplib.exceptions import ICMPLibError

from bench.daemon_window import cpu, daemon_run
from elvwatch.lab.devices import loopback_addresses, tcp_check

PORT = 18080
PER_PROCESS = 9_000
CONCURRENCY = 512
SCRAPE_EVERY = 15.0


def start_labs(count: int, first: str) -> tuple[list[subprocess.Popen[str]], list[str]]:
    """Lab processes serving ``count`` devices; returns them and every device host."""
    hosts = loopback_addresses(first, count)
    procs = []
    for begin in range(0, count, PER_PROCESS):
        chunk = hosts[begin:begin + PER_PROCESS]
        proc = subprocess.Popen(
            [sys.executable, "-m", "elvwatch.lab", "serve", "--count", str(len(chunk)),
             "--first", chunk[0], "--ports", str(PORT), "--control", "127.0.0.1:0",
             "--prefix", f"lab{begin // PER_PROCESS}"],
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "lab ready" not in line:
            raise SystemExit(f"lab did not start: {line!r}")
    return procs, hosts


def stop_labs(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def write_config(directory: Path, hosts: list[str], interval: float) -> Path:
    devices = [{"id": f"dev-{i:05d}", "site": f"site-{i % 50:02d}", "kind": "camera",
                "host": host, "checks": [{"type": "icmp"}, tcp_check(PORT)]}
               for i, host in enumerate(hosts)]
    config = {
        "http": {"listen": "127.0.0.1:0"},
        "interval": interval, "timeout": 5,
        "scheduler": {"max_concurrency": CONCURRENCY, "jitter": 1.0},
        "sites": [{"id": f"site-{i:02d}", "name": f"Site {i}"} for i in range(50)],
        "devices": devices,
    }
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def floor_run(hosts: list[str], interval: float, window: float) -> float:
    """CPU seconds per 1,000 checks of the bare libraries doing the same work at the same
    pace: one ICMP echo and one TCP connect + banner read per device per interval, each
    started at its own moment in the interval — what the daemon does, minus the daemon."""
    privileged = os.geteuid() == 0
    tasks: set[asyncio.Task[None]] = set()
    # The same cap the daemon runs under, so neither side runs out of sockets.
    limit = asyncio.Semaphore(CONCURRENCY)
    failures = 0

    async def tcp(host: str) -> None:
        nonlocal failures
        async with limit:
            try:
                reader, writer = await asyncio.open_connection(host, PORT)
                try:
                    await asyncio.wait_for(reader.readuntil(b"ELVLAB"), 5)
                finally:
                    writer.close()
                    await writer.wait_closed()
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                failures += 1

    async def icmp(host: str) -> None:
        nonlocal failures
        async with limit:
            try:
                await async_ping(host, count=1, timeout=2, privileged=privileged)
            except (OSError, ICMPLibError):
                failures += 1

    work = [(icmp, h) for h in hosts] + [(tcp, h) for h in hosts]
    random.shuffle(work)
    step = interval / len(work)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    cpu0 = cpu()
    done = 0
    deadline = begin + window
    index = 0
    while loop.time() < deadline:
        due = begin + (done * step)
        now = loop.time()
        if due > now:
            await asyncio.sleep(due - now)
        while begin + done * step <= loop.time() and done < window / step:
            func, host = work[index]
            index = (index + 1) % len(work)
            task = asyncio.create_task(func(host))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            done += 1
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    if failures:
        print(f"# floor: {failures} of {done} bare checks failed", flush=True)
    return (cpu() - cpu0) / max(done, 1) * 1000


async def main(sizes: list[int], interval: float, block: int = 100) -> None:
    print(f"# scheduler benchmark: 1 ICMP + 1 TCP check per device, interval {interval:g}s, "
          f"max_concurrency {CONCURRENCY}, python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'devices':>8} {'sched/s':>8} {'done/s':>8} {'lag p50':>8} {'lag p99':>8} "
          f"{'cpu/1k':>8} {'floor/1k':>8} {'ratio':>6} {'KiB/dev':>8} {'scrape':>7} "
          f"{'failed':>6}")
    for size in sizes:
        first = f"127.{block + sizes.index(size)}.0.1"
        procs, hosts = start_labs(size, first)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                config = write_config(Path(tmp), hosts, interval)
                result = await daemon_run(config, len(hosts), interval, interval * 1.5,
                                          scrape_every=SCRAPE_EVERY)
            floor = await floor_run(hosts, interval, interval * 1.5)
        finally:
            stop_labs(procs)
        print(f"{size:>8} {size * 2 / interval:>8.0f} {result['achieved']:>8.0f} "
              f"{result['lag_p50'] * 1000:>6.1f}ms {result['lag_p99'] * 1000:>6.1f}ms "
              f"{result['cpu_per_1000']:>7.3f}s {floor:>7.3f}s "
              f"{result['cpu_per_1000'] / floor:>6.2f} "
              f"{result['kib_per_device']:>8.1f} {result['scrape_seconds']:>6.2f}s "
              f"{result['failed']:>6.0f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# peak RSS of the daemon process: {peak:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--interval", type=float, default=30.0)
    # Another bench on the same box may hold 127.100.x.y; each size takes the next /16.
    parser.add_argument("--block", type=int, default=100, choices=range(1, 250),
                        metavar="1..249", help="the sizes' labs start at 127.BLOCK.0.1")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.interval, args.block))
