"""Read benchmark: people and Prometheus reading a daemon of N devices, and what that
costs its checks.

    python bench/read_bench.py [--devices 20000] [--interval 30] [--clients 10]
                               [--endpoints "site list,full list,overview,device,/metrics"]

It starts N lab devices (helper processes, as bench/scheduler_bench.py does) and the
daemon in this process, one ICMP and one TCP check per device, 50 sites.  After one
warm-up interval it measures three windows of 1.5 intervals each, in this order:

* quiet: nobody reads;
* scrape: /metrics every 15 s, as Prometheus would;
* readers: ``--clients`` clients each reading without pause, in turn, a site's device
  list, the full list, the overview page, one device, and /metrics (``--endpoints``
  leaves some out).

The clients run in a child process (their own CPU is not the daemon's), over loopback
HTTP.  It prints p50/p99 per endpoint, failures, and check lag p50/p99 of each window
with the ratio to the quiet one.  Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduler_bench import percentile, start_labs, stop_labs, write_config

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.web.server import HttpListener

SITES = 50
SCRAPE_EVERY = 15.0
REQUEST_TIMEOUT = 60.0
ENDPOINTS = ("site list", "full list", "overview", "device", "/metrics")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the clients (child process) ------------------------------------------------------
def _path(endpoint: str, devices: int) -> str:
    if endpoint == "site list":
        return f"/api/v1/devices?site=site-{random.randrange(SITES):02d}"
    if endpoint == "full list":
        return "/api/v1/devices"
    if endpoint == "overview":
        return "/"
    if endpoint == "device":
        return f"/api/v1/devices/dev-{random.randrange(devices):05d}"
    return "/metrics"


async def read(base: str, seconds: float, clients: int, devices: int, mode: str,
               endpoints: tuple[str, ...] = ENDPOINTS) -> dict[str, list[float] | int]:
    """Seconds each request took, by endpoint; failures under "failed"."""
    took: dict[str, list[float]] = defaultdict(list)
    failed = 0
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=clients)
    end = time.monotonic() + seconds

    async def one(session: aiohttp.ClientSession, endpoint: str) -> None:
        nonlocal failed
        began = time.perf_counter()
        try:
            async with session.get(base + _path(endpoint, devices)) as resp:
                await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            took[endpoint].append(time.perf_counter() - began)
        else:
            failed += 1

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        turn = number
        while time.monotonic() < end:
            await one(session, endpoints[turn % len(endpoints)])
            turn += 1

    async def scraper(session: aiohttp.ClientSession) -> None:
        while time.monotonic() + SCRAPE_EVERY < end:
            await asyncio.sleep(SCRAPE_EVERY)
            await one(session, "/metrics")

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        if mode == "scrape":
            await scraper(session)
        else:
            await asyncio.gather(*(client(session, n) for n in range(clients)))
    return {**took, "failed": failed}


# -- the daemon (this process) --------------------------------------------------------
async def window(app: App, reader: list[str] | None, seconds: float
                 ) -> tuple[list[float], dict[str, list[float] | int]]:
    """Check lags over ``seconds``, with the reader child ``reader`` (argv) running."""
    stats = app.scheduler.stats
    stats.lag_recent.clear()
    if reader is None:
        await asyncio.sleep(seconds)
        return list(stats.lag_recent), {}
    proc = await asyncio.create_subprocess_exec(*reader, stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), seconds + REQUEST_TIMEOUT + 30)
    lags = list(stats.lag_recent)
    return lags, json.loads(out)


async def run(devices: int, interval: float, clients: int, endpoints: str) -> None:
    procs, hosts = start_labs(devices, "127.100.0.1")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_config(Path(tmp), hosts, interval)
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            port = free_port()
            data["http"]["listen"] = f"127.0.0.1:{port}"
            data["storage"] = {"url": f"sqlite+aiosqlite:///{tmp}/bench.db"}
            path.write_text(yaml.safe_dump(data), encoding="utf-8")
            app = App(load_config(path), HttpListener())
            await app.start()
            try:
                await asyncio.sleep(interval)  # warm-up: every check has run once
                seconds = interval * 1.5
                base = f"http://127.0.0.1:{port}"
                child = [sys.executable, __file__, "--read", base, "--seconds",
                         str(seconds), "--clients", str(clients), "--devices", str(devices),
                         "--endpoints", endpoints]
                results = {"quiet": await window(app, None, seconds),
                           "scrape": await window(app, [*child, "--mode", "scrape"], seconds),
                           "readers": await window(app, [*child, "--mode", "mix"], seconds)}
            finally:
                await app.stop()
    finally:
        stop_labs(procs)
    report(devices, interval, clients, endpoints, results)


def report(devices: int, interval: float, clients: int, endpoints: str,
           results: dict[str, tuple[list[float], dict[str, list[float] | int]]]) -> None:
    print(f"# read benchmark: {devices} devices (1 ICMP + 1 TCP check each, {SITES} sites), "
          f"interval {interval:g}s, {clients} reader clients reading {endpoints}; python "
          f"{sys.version.split()[0]}")
    quiet = percentile(results["quiet"][0], 0.99)
    print(f"{'window':>8} {'checks':>7} {'lag p50':>9} {'lag p99':>9} {'p99 ratio':>9} "
          f"{'failed':>6}")
    for name, (lags, took) in results.items():
        p99 = percentile(lags, 0.99)
        print(f"{name:>8} {len(lags):>7} {percentile(lags, 0.5) * 1000:>7.1f}ms "
              f"{p99 * 1000:>7.1f}ms {p99 / quiet if quiet else float('nan'):>9.2f} "
              f"{took.get('failed', 0):>6}")
    print(f"{'endpoint':>12} {'window':>8} {'requests':>8} {'p50':>9} {'p99':>9}")
    for name in ("scrape", "readers"):
        took = results[name][1]
        for endpoint in ENDPOINTS:
            times = took.get(endpoint)
            if not isinstance(times, list) or not times:
                continue
            print(f"{endpoint:>12} {name:>8} {len(times):>8} "
                  f"{percentile(times, 0.5) * 1000:>7.1f}ms "
                  f"{percentile(times, 0.99) * 1000:>7.1f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS),
                        help="what the readers read, in turn (comma-separated)")
    parser.add_argument("--read", help=argparse.SUPPRESS)  # the child: the daemon's URL
    parser.add_argument("--seconds", type=float, default=45.0, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("mix", "scrape"), default="mix",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.clients <= 100:
        parser.error("--clients: from 1 to 100")
    endpoints = tuple(e.strip() for e in args.endpoints.split(","))
    if not endpoints or not set(endpoints) <= set(ENDPOINTS):
        parser.error(f"--endpoints: some of {', '.join(ENDPOINTS)}")
    if args.read:
        print(json.dumps(asyncio.run(read(args.read, args.seconds, args.clients,
                                          args.devices, args.mode, endpoints))))
        return
    asyncio.run(run(args.devices, args.interval, args.clients, ",".join(endpoints)))


if __name__ == "__main__":
    main()
