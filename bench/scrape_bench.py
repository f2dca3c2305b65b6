"""/metrics rendering benchmark: one scrape of N devices, elvwatch's writer vs
prometheus_client's, on the same snapshot in the same run.

    python bench/scrape_bench.py [--devices 20000] [--repeat 3]

Each device has two checks with values (like ICMP + TCP) and vendor/model info; the
figure is the best of ``--repeat`` renders (seconds) and the series count.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from elvwatch.daemon.scheduler import LAG_BUCKETS, SchedulerStats
from elvwatch.exporters.exposition import render
from elvwatch.exporters.metrics import DeviceLabels, Snapshot, families
from elvwatch.probes.base import Observation, Status
from elvwatch.rules.state import StateTracker


def snapshot(count: int) -> Snapshot:
    tracker = StateTracker()
    tracker.configure((f"dev-{i:05d}", ["icmp", "tcp_554"]) for i in range(count))
    labels = []
    for i in range(count):
        device = f"dev-{i:05d}"
        tracker.observe(Observation(device, "icmp", Status.OK, latency=0.0004,
                                    values={"icmp.rtt_seconds": 0.0004,
                                            "icmp.packet_loss_ratio": 0.0},
                                    info={"vendor": "Hikvision", "model": "DS-2CD2185"}))
        tracker.observe(Observation(device, "tcp_554", Status.DOWN if i % 50 == 0
                                    else Status.OK, latency=0.0003,
                                    values={"tcp.connect_seconds": 0.0003}))
        labels.append(DeviceLabels(device, f"site-{i % 50:02d}", "cctv", "camera"))
    stats = SchedulerStats(runs=Counter({"ok": 10, "down": 1}))
    return Snapshot(devices=[(lab, tracker.devices[lab.device]) for lab in labels],
                    scheduler=stats, lag_buckets=LAG_BUCKETS, jobs=count * 2,
                    reload_ok=True, reload_time=time.time(), store_pending=0,
                    store_errors=0, now=time.time())


class _Reference(Collector):
    """The same series through prometheus_client's families, for comparison."""

    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def collect(self):  # type: ignore[no-untyped-def]
        names = ("site", "system", "device", "kind")
        up = GaugeMetricFamily("elvwatch_device_up", "up", labels=names)
        check = GaugeMetricFamily("elvwatch_check_up", "up", labels=(*names, "check"))
        for lab, status in self._snap.devices:
            base = [lab.site, lab.system, lab.device, lab.kind]
            up.add_metric(base, 1.0)
            for name in status.checks:
                check.add_metric([*base, name], 1.0)
        yield up
        yield check


def best(func: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    snap = snapshot(args.devices)
    body = render(families(snap))
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    ours = best(lambda: render(families(snap)), args.repeat)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reference(snap))
    ref_body = generate_latest(registry)
    ref_series = sum(1 for line in ref_body.splitlines()
                     if line and not line.startswith(b"#"))
    reference = best(lambda: generate_latest(registry), args.repeat)
    print(f"devices {args.devices}: elvwatch {series} series in {ours:.3f}s "
          f"({ours / series * 1e6:.2f} µs/series, {len(body) / 1e6:.1f} MB); "
          f"prometheus_client {ref_series} series in {reference:.3f}s "
          f"({reference / ref_series * 1e6:.2f} µs/series); "
          f"per-series ratio {(reference / ref_series) / (ours / series):.1f}x")


if __name__ == "__main__":
    main()
