"""ICMP benchmark: the daemon's ping checks against fping, the physical floor.

    python bench/icmp_bench.py [--sizes 1000,5000,20000] [--interval 30]

For each fleet size N it picks N loopback addresses (the kernel answers echo requests to
every address of 127.0.0.0/8, so no lab process is needed) and, in one run:

* runs the daemon in this process with one ICMP check per device at ``--interval`` and
  measures, over a window after one warm-up interval, pings done per second, scheduler
  lag p50/p99, and the CPU seconds (user + system) this process spent per 1,000 pings —
  scheduler, probe, state and store included;
* runs ``fping -l`` (loop mode) over the same addresses at the same pace (each target
  every ``--interval`` seconds, requests spaced evenly) for the same window and reads
  its CPU seconds from /proc, per 1,000 pings it sent;
* prints the daemon's CPU per ping as a ratio of fping's.

On loopback the kernel builds each reply inside the sender's ``sendto``, so both sides'
system time includes the same reply work: the ratio compares like with like.  Machines
here are shared and noisy: read the ratio, measured in the same run, not the absolute
figures.  Every loop is bounded in count and time; fping is stopped after its window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.daemon_window import daemon_run
from elvwatch.lab.devices import loopback_addresses

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write_config(directory: Path, hosts: list[str], interval: float) -> Path:
    devices = [{"id": f"dev-{i:05d}", "site": f"site-{i % 50:02d}", "kind": "camera",
                "host": host, "checks": [{"type": "icmp"}]}
               for i, host in enumerate(hosts)]
    config = {
        "http": {"listen": "127.0.0.1:0"},
        "interval": interval, "timeout": 5,
        "scheduler": {"max_concurrency": 512, "jitter": 1.0},
        "sites": [{"id": f"site-{i:02d}", "name": f"Site {i}"} for i in range(50)],
        "devices": devices,
    }
    path = directory / "icmp-bench.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a child process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def fping_run(fping: str, hosts: list[str], interval: float, window: float) -> dict[str, float]:
    """fping in loop mode at the daemon's pace: every target once per ``interval``,
    requests spaced evenly (``-i``, at least fping's 1 ms floor)."""
    spacing_ms = max(1.0, interval * 1000 / len(hosts))
    with tempfile.NamedTemporaryFile("w", suffix=".targets") as targets:
        targets.write("\n".join(hosts))
        targets.flush()
        proc = subprocess.Popen(
            [fping, "-l", "-q", "-p", str(int(interval * 1000)), "-i", f"{spacing_ms:g}",
             "-t", "2000", "-f", targets.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # Warm-up as long as the daemon's (one interval), so both are measured in a
            # steady state with every target in the loop.
            time.sleep(interval)
            cpu0, t0 = process_cpu(proc.pid), time.perf_counter()
            time.sleep(window)
            cpu_used = process_cpu(proc.pid) - cpu0
            elapsed = time.perf_counter() - t0
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    pings = elapsed * min(len(hosts) / interval, 1000.0 / spacing_ms)
    return {"achieved": pings / elapsed, "cpu_per_1000": cpu_used / max(pings, 1) * 1000}


async def main(sizes: list[int], interval: float) -> None:
    fping = shutil.which("fping")
    if fping is None:
        raise SystemExit("fping not found (Debian: apt-get install fping)")
    window = interval * 1.5
    print(f"# ICMP benchmark: one ping per device every {interval:g}s, window {window:g}s, "
          f"python {sys.version.split()[0]}, {'raw' if os.geteuid() == 0 else 'dgram'} "
          f"sockets, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'devices':>8} {'pings/s':>8} {'fping/s':>8} {'lag p50':>8} {'lag p99':>8} "
          f"{'cpu/1k':>8} {'fping/1k':>8} {'ratio':>6} {'KiB/dev':>8} {'failed':>6}")
    for index, size in enumerate(sizes):
        hosts = loopback_addresses(f"127.{150 + index}.0.1", size)
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), hosts, interval)
            ours = await daemon_run(config, len(hosts), interval, window)
        floor = fping_run(fping, hosts, interval, window)
        print(f"{size:>8} {ours['achieved']:>8.0f} {floor['achieved']:>8.0f} "
              f"{ours['lag_p50'] * 1000:>6.1f}ms {ours['lag_p99'] * 1000:>6.1f}ms "
              f"{ours['cpu_per_1000']:>7.3f}s {floor['cpu_per_1000']:>7.3f}s "
              f"{ours['cpu_per_1000'] / floor['cpu_per_1000']:>6.2f} "
              f"{ours['kib_per_device']:>8.1f} {ours['failed']:>6.0f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--interval", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.interval))
