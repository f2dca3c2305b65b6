"""Many communities, one centre: what the centre costs and how fast it recovers.

    python bench/multisite_bench.py [--pollers 10] [--devices 5000] [--store URL]

A centre (``App`` with role centre: intake → state tracker → rule engine → ticket
stage → store; SQLite in a temp folder unless ``--store`` names a PostgreSQL URL) runs in
this process with ``pollers × devices`` devices, each poller serving one site.  The
pollers are simulated: their batches go straight to ``App.ingest`` (the HTTP and TLS
layer is left out; tests/test_multisite.py covers it with real processes).  It prints:

* **CPU per 1,000 observations** at the centre in steady state (every device up, no
  transition), process CPU time over observations applied;
* **catch-up rate**: after an outage a poller's buffer arrives as fast as the centre
  takes it; every observation here is a state change (down_after 1, alternating), and
  the figure counts until the transitions are written to the store (transitions/s);
* **takeover time**: two pollers for one site renew their leases at the rate the centre
  asks; one stops; the time from its last renewal until the other's batch is applied.
Every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

import trustme
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.probes.base import Observation, Status
from elvwatch.tickets.poller_marks import Taken
from elvwatch.tickets.store import StoreError

BATCH = 500
T0 = 1_780_000_000.0


def write_config(folder: Path, pollers: int, devices: int, interval: float,
                 store: str | None) -> Path:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    issued.private_key_and_cert_chain_pem.write_to_path(str(folder / "centre.pem"))
    sites = [f"site-{p}" for p in range(pollers)]
    for p in range(pollers):
        (folder / f"p{p}.token").write_text(f"token-{p}\n", encoding="utf-8")
    (folder / "spare.token").write_text("token-spare\n", encoding="utf-8")
    pollers_config = {f"p{p}": {"token": {"file": str(folder / f"p{p}.token")},
                                "sites": [sites[p]]} for p in range(pollers)}
    pollers_config["spare"] = {"token": {"file": str(folder / "spare.token")},
                               "sites": [sites[0]]}
    data = {
        "role": "centre",
        "http": {"tls_cert": str(folder / "centre.pem"), "tls_key": str(folder / "centre.pem")},
        "storage": {"url": store or f"sqlite+aiosqlite:///{folder / 'centre.db'}"},
        "interval": interval,
        "timeout": min(interval, 1.0),
        "scheduler": {"down_after": 1},
        # The simulated pollers take turns: no site counts as silent meanwhile.
        "centre": {"pollers": pollers_config, "not_reporting_after": 1000},
        # The catch-up flips every device of a site: its faults are evaluated and kept,
        # not ticketed one by one (a real outage's catch-up carries a few faults).
        "silences": [{"matchers": {"rule": "device_unreachable"}, "who": "bench",
                      "why": "catch-up of a whole site", "until": "2099-01-01T00:00:00+00:00"}],
        "sites": [{"id": s, "name": s} for s in sites],
        "devices": [{"id": f"d{p}-{i}", "site": sites[p], "kind": "camera",
                     "host": f"10.{p}.{i // 250}.{i % 250 + 1}",
                     "checks": [{"type": "tcp", "port": 554}]}
                    for p in range(pollers) for i in range(devices)],
    }
    path = folder / "centre.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Poller:
    """One simulated poller: numbered observations of its devices."""

    def __init__(self, name: str, prefix: str, devices: int) -> None:
        self.name, self.prefix, self.devices = name, prefix, devices
        self.seq = 0

    def round(self, status: Status, at: float) -> list[tuple[int, Observation]]:
        out = []
        for i in range(self.devices):
            self.seq += 1
            out.append((self.seq, Observation(device=f"{self.prefix}-{i}", check="tcp_554",
                                              status=status, time=at)))
        return out


RETRIED = [0]  # batches the store refused for a moment (SQLite busy): sent again


async def take(app: App, poller: str, batch: list[tuple[int, Observation]]) -> Taken:
    """One batch, sent again while the centre answers 503 (its store busy), as the
    forwarder does."""
    for _ in range(200):
        try:
            return await app.ingest(poller, batch)
        except StoreError:
            RETRIED[0] += 1
            await asyncio.sleep(0.1)
    raise SystemExit("the centre's store refused a batch 200 times")


async def send(app: App, poller: Poller, batch: list[tuple[int, Observation]]) -> int:
    """``batch`` in slices of BATCH."""
    applied = 0
    for start in range(0, len(batch), BATCH):
        applied += (await take(app, poller.name, batch[start:start + BATCH])).applied
    return applied


async def drained(app: App, limit: float) -> None:
    """Until the store writer has written every transition (at most ``limit`` s)."""
    for _ in range(int(limit / 0.05)):
        if not app.store_pending:
            return
        await asyncio.sleep(0.05)


async def run(pollers: int, devices: int, interval: float, store: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="elvwatch-multisite-bench-") as tmp:
        config = load_config(write_config(Path(tmp), pollers, devices, interval, store))
        app = App(config)
        await app.start()
        try:
            sim = [Poller(f"p{p}", f"d{p}", devices) for p in range(pollers)]
            # First round: every device's unknown → up, written before measuring.
            for poller in sim:
                await send(app, poller, poller.round(Status.OK, T0))
            await drained(app, 300)

            cpu, wall, count = time.process_time(), time.perf_counter(), 0
            for r in range(1, 4):
                for poller in sim:
                    count += await send(app, poller, poller.round(Status.OK, T0 + r))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"steady state: {count} observations from {pollers} pollers × {devices} "
                  f"devices in {wall:.2f}s; centre CPU {1000 * cpu / count * 1000:.1f} ms "
                  f"per 1,000 observations")

            start, transitions = time.perf_counter(), 0
            for r in range(4, 8):  # alternating: every observation changes the state
                status = Status.DOWN if r % 2 == 0 else Status.OK
                transitions += await send(app, sim[0], sim[0].round(status, T0 + r))
            await drained(app, 600)
            took = time.perf_counter() - start
            print(f"catch-up: {transitions} transitions of one poller applied and stored in "
                  f"{took:.2f}s: {transitions / took:.0f} transitions/s")

            spare = Poller("spare", "d0", devices)
            spare.seq = 10 ** 12
            await take(app, "p0", [])  # p0 holds site-0
            gone = time.perf_counter()  # p0's last renewal
            renew = (await take(app, "spare", [])).renew_seconds
            deadline = gone + 20 * interval
            while time.perf_counter() < deadline:
                await asyncio.sleep(renew)
                taken = await take(app, "spare", spare.round(Status.OK, time.time())[:1])
                if taken.applied:
                    break
            print(f"takeover: {time.perf_counter() - gone:.2f}s after the last renewal, "
                  f"check interval {interval:g}s (renewals every {renew:.2f}s)")
            print(f"batches sent again after the store was busy: {RETRIED[0]}")
        finally:
            await app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pollers", type=int, default=10)
    parser.add_argument("--devices", type=int, default=5000, help="per poller")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="check interval: the lease's time to live")
    parser.add_argument("--store", help="a PostgreSQL URL (default: SQLite in a temp folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.pollers, args.devices, args.interval, args.store))


if __name__ == "__main__":
    main()
