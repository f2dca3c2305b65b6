"""What one read costs the daemon's event loop: each endpoint on its own, in process.

    python bench/read_cost_bench.py [--devices 20000] [--repeat 6]

The daemon's state for N devices (50 sites, an ICMP and a TCP check each, one in fifty
failing) is put together without probes: the config is put to work as ``start`` does,
but the checks do not run; observations go through the daemon's own path (state
tracker, rules) instead.  Its web app then answers over loopback HTTP, one request at a
time, while a task measures how long the event loop was held at a stretch (what the
checks due meanwhile would wait).  Between two requests 2 % of the devices get a new
observation and a few of them change state, as between two reads of a running daemon.

Unlike bench/read_bench.py this needs no lab and little wall time, and the CPU of one
request hardly depends on what else runs on the machine: it is the figure to compare
before and after a change.  Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.probes.base import Observation, Status
from elvwatch.tickets.store import Store
from elvwatch.web.server import build_web_app

SITES = 50
PATHS = (("full list", "/api/v1/devices"), ("site list", "/api/v1/devices?site=site-07"),
         ("page of 1000", "/api/v1/devices?limit=1000"), ("overview", "/"),
         ("device", "/api/v1/devices/dev-00042"), ("/metrics", "/metrics"))


def config_file(directory: Path, count: int) -> Path:
    devices = [{"id": f"dev-{i:05d}", "site": f"site-{i % SITES:02d}", "kind": "camera",
                "host": f"127.1.{i // 250}.{i % 250 + 1}",
                "checks": [{"type": "icmp"}, {"type": "tcp", "port": 554}]}
               for i in range(count)]
    data = {"http": {"listen": "127.0.0.1:0"}, "interval": 30,
            "sites": [{"id": f"site-{i:02d}", "name": f"Site {i}"} for i in range(SITES)],
            "devices": devices}
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Fleet:
    def __init__(self, app: App) -> None:
        self.app = app
        self.ids = list(app.config.devices)
        first = next(iter(app.config.devices.values()))
        self.checks = [c.name for c in first.checks]

    def observe(self, number: int, at: float, down: bool = False) -> None:
        device = self.ids[number % len(self.ids)]
        failing = down or number % 50 == 0
        self.app._on_observation(Observation(
            device, self.checks[0], Status.OK, time=at, latency=0.0004,
            values={"icmp.rtt_seconds": 0.0004}))
        self.app._on_observation(Observation(
            device, self.checks[1], Status.DOWN if failing else Status.OK, time=at,
            latency=0.0003, values={"tcp.connect_seconds": 0.0003},
            error="connection refused" if failing else None))


async def measure(count: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(config_file(Path(tmp), count))
        app = App(config)
        # What start() does but for the checks, the store writer and the ticker.
        app.store = await Store.open(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await app.ticket_stage.start(app.store)
        await app._swap(await app._prepare(config, None))
        try:
            await requests(app, count, repeat)
        finally:
            await app.store.close()
            await app.ticket_stage.close()


async def requests(app: App, count: int, repeat: int) -> None:
    fleet = Fleet(app)
    for number in range(count):
        fleet.observe(number, 1.0)
    gc.collect()
    gc.freeze()  # as the daemon does once started (daemon.app.settle_heap)
    server = TestServer(build_web_app(app))
    await server.start_server()
    held: list[float] = []

    async def watch() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            held.append(now - last - 0.001)
            last = now

    print(f"# read cost: {count} devices, {SITES} sites, python {sys.version.split()[0]}; "
          "wall ms per request (first, then median), longest hold of the loop, CPU ms "
          "per request (median), both after the first")
    watcher = asyncio.create_task(watch())
    step = max(1, count // 50)
    try:
        async with aiohttp.ClientSession() as session:
            for label, path in PATHS:
                walls, cpus, longest, size = [], [], 0.0, 0
                for turn in range(repeat):
                    for number in range(turn * step, (turn + 1) * step):
                        fleet.observe(number, 2.0 + turn, down=number % 20 == 0)
                    held.clear()
                    wall, cpu = time.perf_counter(), time.process_time()
                    async with session.get(server.make_url(path)) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            raise SystemExit(f"{path}: {resp.status} {body[:200]!r}")
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
                    size = len(body)
                    if turn:  # the first builds what later ones reuse
                        longest = max([longest, *held])
                wall_ms, cpu_ms = (statistics.median(walls[1:]) * 1000,
                                   statistics.median(cpus[1:]) * 1000)
                print(f"{label:>13}: {walls[0] * 1000:7.1f} / {wall_ms:7.1f} ms  held "
                      f"{longest * 1000:6.1f} ms  cpu {cpu_ms:7.1f} ms  {size / 1e6:6.2f} MB",
                      flush=True)
    finally:
        watcher.cancel()
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=6)
    args = parser.parse_args()
    if not 1 <= args.devices <= 100_000 or not 2 <= args.repeat <= 100:
        parser.error("--devices: 1 to 100000; --repeat: 2 to 100")
    asyncio.run(measure(args.devices, args.repeat))


if __name__ == "__main__":
    main()
