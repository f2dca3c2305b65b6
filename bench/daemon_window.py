"""The daemon measured over a window: what the scheduler, ICMP and fleet benches share.

:func:`daemon_run` starts an :class:`~elvwatch.daemon.app.App` on a config file in this
process, lets one interval pass (every check has run once), then measures over a window:
checks done per second, scheduler lag p50/p99 (how late each check started after it was
due), CPU seconds (user + system) of this process per 1,000 checks, RSS added per device,
the checks that came back down or unknown, and the share of the window the event loop
waited for a CPU while it had work (``waited_for_cpu``: the machine busy with others).
With ``scrape_every`` it also scrapes /metrics during the window through the HTTP
handler's own path, as Prometheus would, so the lag includes what a scrape costs.
"""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

from elvwatch.config.loading import load_config
from elvwatch.daemon.app import App
from elvwatch.web.server import HttpListener, metrics_body


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_queue_seconds() -> float:
    """How long this process's main thread has waited for a CPU while runnable: other
    processes on a shared machine, not its own work."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def scrape_loop(app: App, took: list[float], until: float, every: float) -> None:
    """Scrape every ``every`` seconds (more often in a short window, three times at
    least) until ``until`` (perf_counter); wall seconds each scrape took go to ``took``."""
    every = min(every, (until - time.perf_counter()) / 3.5)
    while time.perf_counter() + every < until:
        await asyncio.sleep(every)
        began = time.perf_counter()
        await metrics_body(app)
        took.append(time.perf_counter() - began)


async def daemon_run(config: Path, devices: int, warmup: float, window: float,
                     scrape_every: float | None = None,
                     base_rss: float | None = None) -> dict[str, float]:
    """Figures of the daemon on ``config`` (``devices`` devices) over ``window`` seconds
    after ``warmup`` seconds; RSS per device counts from ``base_rss`` MiB (default: now,
    before the config is loaded); ``start_seconds``: config loaded until every check is
    scheduled (``App.start`` returned)."""
    base = rss_mib() if base_rss is None else base_rss
    began = time.perf_counter()
    app = App(load_config(config), HttpListener())
    await app.start()
    started = time.perf_counter() - began
    try:
        await asyncio.sleep(warmup)
        stats = app.scheduler.stats
        runs0, cpu0, t0 = sum(stats.runs.values()), cpu(), time.perf_counter()
        queued0 = run_queue_seconds()
        bad0 = stats.runs.get("down", 0) + stats.runs.get("unknown", 0)
        stats.lag_recent.clear()
        scrapes: list[float] = []
        if scrape_every is None:
            await asyncio.sleep(window)
        else:
            await scrape_loop(app, scrapes, t0 + window, scrape_every)
            await asyncio.sleep(max(0.0, t0 + window - time.perf_counter()))
        elapsed = time.perf_counter() - t0
        runs = sum(stats.runs.values()) - runs0
        cpu_used = cpu() - cpu0
        queued = run_queue_seconds() - queued0
        lags = list(stats.lag_recent)
        rss = rss_mib()
        failed = stats.runs.get("down", 0) + stats.runs.get("unknown", 0) - bad0
        body = await metrics_body(app) if scrape_every is not None else b""
    finally:
        await app.stop()
    return {"achieved": runs / elapsed, "runs": runs, "start_seconds": started,
            "lag_p50": percentile(lags, 0.5), "lag_p99": percentile(lags, 0.99),
            "cpu_per_1000": cpu_used / max(runs, 1) * 1000,
            "kib_per_device": (rss - base) * 1024 / devices, "rss_mib": rss,
            "waited_for_cpu": queued / elapsed,
            "failed": failed,
            "scrape_seconds": sum(scrapes) / len(scrapes) if scrapes else float("nan"),
            "scrape_bytes": len(body)}
