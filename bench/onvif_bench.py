"""ONVIF at fleet size: N simulated cameras polled by the real onvif probe through the
daemon's Scheduler, and (``--events``) N PullPoint subscriptions held by the events
source.

The cameras (``lab.onvif.OnvifSimulator`` + ``lab.rtsp.RtspResponder``, one loopback
address each, so the scheduler's per-host limit applies as in the field) run in a
child process, so the CPU measured here (``time.process_time``) is the probe's alone.
Reports:

- WSDL warm-up: parsing the bundled WSDLs, once per process, and the RSS it costs;
- time to start: from handing N cameras to the scheduler (no jitter: all due at once)
  until every camera has its first successful poll;
- CPU per poll (process CPU over the steady window / polls), polls per second, and
  the one-core capacity that implies at a 60 s interval;
- where a poll's time goes, steady window: queue wait (due until the scheduler's
  per-host and global slots are held) apart from service time (the probe itself),
  and, for each process (probe, simulators), event-loop lag (how late a 20 ms sleep
  wakes: the loop busy with other work) and garbage-collector pauses — a poll's
  service time includes waiting on either loop;
- memory per camera: RSS growth over the warmed baseline / N, after the steady window;
- with ``--events``: time until all N subscriptions are started, memory per held
  subscription, CPU per subscription-minute of long-polling.

Bounded: at most 1,000 cameras, a steady window of at most 600 s.

    python bench/onvif_bench.py                       # 200 cameras, 15 s interval
    python bench/onvif_bench.py --cameras 1000 --interval 60 --seconds 60 --events
    python bench/onvif_bench.py --no-settle          # WSDL heap left to the collector

The probe process starts as the daemon does: WSDLs parsed (``probes.onvif_wsdl``), then
the long-lived heap frozen (``daemon.app.settle_heap``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, ROOT)

from elvwatch.probes.base import Check, Credential, Observation, Secret, Status, Target  # noqa: E402

MAX_CAMERAS = 1000
MAX_SECONDS = 600.0
BASE_PORT = 8080
TICK = 0.02           # the loop-lag probe's sleep


class LoopWatch:
    """Event-loop lag and GC pauses of this process, timestamped on CLOCK_MONOTONIC
    (shared by all processes, so another process's window can select samples)."""

    def __init__(self) -> None:
        # (when, seconds late, CPU seconds, seconds spent runnable but not running)
        self.lags: list[tuple[float, float, float, float]] = []
        self.pauses: list[tuple[float, int, float]] = []  # (when, generation, seconds)
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
        else:
            now = time.monotonic()
            self.pauses.append((now, info["generation"], now - self._gc_started))

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            after = time.monotonic()
            self.lags.append((after, after - before - TICK, time.process_time(),
                              run_queue_seconds()))

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def summary(self, start: float, end: float) -> dict[str, float]:
        inside = [(lag, cpu, queued) for when, lag, cpu, queued in self.lags
                  if start <= when <= end]
        lags = [lag for lag, _, _ in inside]
        cpu = inside[-1][1] - inside[0][1] if len(inside) > 1 else 0.0
        starved = inside[-1][2] - inside[0][2] if len(inside) > 1 else 0.0
        full = [s for when, gen, s in self.pauses if start <= when <= end and gen == 2]
        young = [s for when, gen, s in self.pauses if start <= when <= end and gen < 2]
        return {"lag_p50": percentile(lags, 0.5), "lag_p95": percentile(lags, 0.95),
                "lag_max": max(lags, default=0.0), "gc_full": len(full),
                "gc_full_seconds": sum(full), "gc_full_max": max(full, default=0.0),
                "gc_young_seconds": sum(young), "cpu": cpu, "starved": starved}


def address(index: int) -> str:
    return f"127.77.{index // 250}.{index % 250 + 1}"


async def serve(cameras: int) -> None:
    """The child: N cameras, each with its RTSP server, until stdin closes."""
    from elvwatch.lab.onvif import OnvifSimulator, scene_jpeg
    from elvwatch.lab.rtsp import RtspResponder

    rtsps = [RtspResponder(address(i), 8554) for i in range(cameras)]
    snapshot = scene_jpeg(640, 360)     # one shared picture, not one encoded per camera
    sims = [OnvifSimulator(address(i), BASE_PORT, rtsp_port=8554, snapshot=snapshot)
            for i in range(cameras)]
    for server in (*rtsps, *sims):
        await server.start()
    watch = LoopWatch()
    watch.start()
    print(json.dumps({"ready": cameras}), flush=True)
    # Commands on stdin: "window START END" answers the loop figures of that window
    # (CLOCK_MONOTONIC); end of input stops.
    while line := await asyncio.to_thread(sys.stdin.readline):
        words = line.split()
        if words[:1] == ["window"]:
            print(json.dumps(watch.summary(float(words[1]), float(words[2]))), flush=True)
    await watch.stop()
    for server in (*sims, *rtsps):
        await server.stop()


def run_queue_seconds() -> float:
    """How long this thread (the event loop's) has waited for a CPU while runnable:
    other processes on a shared machine, not our own work."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def target(index: int) -> Target:
    return Target(f"cam-{index}", address(index), site="bench", system="cctv",
                  kind="camera", credential=Credential("c", "admin", Secret("secret")))


async def wait_until(predicate: object, limit: float) -> float:
    started = time.perf_counter()
    while not predicate():  # type: ignore[operator]
        if time.perf_counter() - started > limit:
            raise SystemExit(f"not reached within {limit:.0f}s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def bench_polls(cameras: int, interval: float, seconds: float,
                      settle: bool = True) -> dict[str, float]:
    from elvwatch.daemon.app import settle_heap
    from elvwatch.daemon.scheduler import Scheduler
    from elvwatch.probes.onvif import probe_onvif
    from elvwatch.probes.onvif_options import OnvifOptions
    from elvwatch.probes.onvif_wsdl import load_wsdls

    options = OnvifOptions()
    checks = [Check("onvif", "onvif", interval=interval, timeout=min(interval, 10.0),
                    port=BASE_PORT, options=options) for _ in range(cameras)]
    # Warm-up as the daemon starts: the WSDLs the probe uses are parsed (once per
    # process), then what is long-lived is frozen out of the collector's reach
    # (daemon.app.settle_heap; --no-settle leaves it in, as before that existed).
    rss_cold = rss_bytes()
    started = time.perf_counter()
    await load_wsdls()
    warm_seconds = time.perf_counter() - started
    first = await probe_onvif(target(0), checks[0])
    assert first.status is Status.OK, first.error
    gc.collect()
    if settle:
        settle_heap(collect=True)
    rss_base = rss_bytes()

    results: dict[str, int] = {}
    failures: list[str] = []

    first_latency: list[float] = []
    latencies: list[float] = []

    def on_observation(obs: Observation) -> None:
        if obs.device not in results and obs.latency is not None:
            first_latency.append(obs.latency)
        elif obs.latency is not None:
            latencies.append(obs.latency)
        results[obs.device] = results.get(obs.device, 0) + 1
        if obs.status is not Status.OK and len(failures) < 5:
            failures.append(f"{obs.device}: {obs.status.value} {obs.error}")

    # Time to start: every camera due at once (no jitter), the worst case.
    scheduler = Scheduler(on_observation, jitter=0.0)
    scheduler.set_targets((target(i), (checks[i],)) for i in range(cameras))
    runner = asyncio.create_task(scheduler.run())
    try:
        start_seconds = await wait_until(lambda: len(results) == cameras, MAX_SECONDS)
    finally:
        await scheduler.stop(drain_timeout=15.0)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    # Steady state as the daemon runs it: phases spread over the interval (jitter 1).
    failures.clear()
    scheduler = Scheduler(on_observation, jitter=1.0)
    scheduler.set_targets((target(i), (checks[i],)) for i in range(cameras))
    runner = asyncio.create_task(scheduler.run())
    watch = LoopWatch()
    watch.start()
    try:
        await asyncio.sleep(interval)          # ramp: every phase has come round once
        latencies.clear()
        scheduler.stats.runs.clear()
        scheduler.stats.lag_recent.clear()
        window_start = time.monotonic()
        polls_before, cpu_before, wall_before = sum(results.values()), time.process_time(), \
            time.perf_counter()
        await asyncio.sleep(seconds)
        polls = sum(results.values()) - polls_before
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        window_end = time.monotonic()
        # Queue wait: from due until both of the scheduler's slots are held.
        waits = list(scheduler.stats.lag_recent)
        gc.collect()
        rss_end = rss_bytes()
    finally:
        await watch.stop()
        await scheduler.stop(drain_timeout=15.0)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    bad = scheduler.stats.runs.get("down", 0) + scheduler.stats.runs.get("degraded", 0)
    if failures:
        print("first failures:", *failures, sep="\n  ")
    return {"warm_seconds": warm_seconds, "warm_rss": rss_base - rss_cold,
            "start_seconds": start_seconds, "polls": polls, "wall": wall, "cpu": cpu,
            "per_camera_rss": (rss_end - rss_base) / cameras, "not_ok": bad,
            "overruns": scheduler.stats.overruns,
            "first_latency_max": max(first_latency, default=0.0),
            "latency_p50": percentile(latencies, 0.5), "latency_p95": percentile(latencies, 0.95),
            "latency_max": max(latencies, default=0.0),
            "wait_p50": percentile(waits, 0.5), "wait_p95": percentile(waits, 0.95),
            "wait_max": max(waits, default=0.0), "window_start": window_start,
            "window_end": window_end,
            **{f"loop_{k}": v for k, v in watch.summary(window_start, window_end).items()}}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench_events(cameras: int, seconds: float) -> dict[str, float]:
    from elvwatch.probes.onvif_event_options import OnvifEventsOptions
    from elvwatch.probes.onvif_event_source import OnvifEventSource
    from elvwatch.probes.onvif_pullpoint import PullPointState

    options = OnvifEventsOptions(pull_seconds=10)
    checks = [(target(i), Check("events", "onvif_events", interval=60, port=BASE_PORT,
                                options=options)) for i in range(cameras)]
    source = OnvifEventSource({}, lambda obs: None)
    await source.start()
    # One subscription first: it parses the events WSDL, once per process.
    await source.update(checks[:1])
    await wait_until(lambda: source.stats()[0].state == PullPointState.STARTED.value, 60)
    gc.collect()
    rss_base = rss_bytes()
    cpu_before = time.process_time()
    await source.update(checks)

    def all_started() -> bool:
        return all(s.state == PullPointState.STARTED.value for s in source.stats())

    try:
        start_seconds = await wait_until(all_started, MAX_SECONDS)
        start_cpu = time.process_time() - cpu_before
        cpu_before = time.process_time()
        await asyncio.sleep(seconds)
        idle_cpu = time.process_time() - cpu_before
        gc.collect()
        rss_end = rss_bytes()
        lost = sum(s.lost for s in source.stats())
    finally:
        stop_started = time.perf_counter()
        await source.stop()
        stop_seconds = time.perf_counter() - stop_started
    return {"start_seconds": start_seconds, "start_cpu": start_cpu,
            "per_camera_rss": (rss_end - rss_base) / cameras,
            "cpu_per_sub_minute": idle_cpu / cameras / seconds * 60, "lost": lost,
            "stop_seconds": stop_seconds}


def run_phase(phase: str, args: argparse.Namespace) -> dict[str, float]:
    """One measurement in its own process: a fresh interpreter gives a clean RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--cameras", str(args.cameras),
         "--interval", str(args.interval), "--seconds", str(args.seconds),
         *(["--no-settle"] if args.no_settle else [])],
        capture_output=True, text=True, timeout=MAX_SECONDS * 2 + 120, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{phase} phase failed:\n{out.stderr[-2000:]}")
    lines = out.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    result: dict[str, float] = json.loads(lines[-1])
    return result


async def phase(name: str, args: argparse.Namespace) -> None:
    if name == "polls":
        result = await bench_polls(args.cameras, args.interval, args.seconds,
                                   settle=not args.no_settle)
    else:
        result = await bench_events(args.cameras, args.seconds)
    print(json.dumps(result))


def main(args: argparse.Namespace) -> int:
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(args.cameras)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        if not line.startswith("{"):
            print("the camera simulator process did not start", file=sys.stderr)
            return 1
        sim_cpu_before = process_cpu(child.pid)
        polls = run_phase("polls", args)
        sim_cpu = process_cpu(child.pid) - sim_cpu_before
        n = args.cameras
        cpu_per_poll = polls["cpu"] / max(polls["polls"], 1)
        print(f"ONVIF probe, {n} simulated cameras, interval {args.interval:g}s, "
              f"steady window {polls['wall']:.1f}s"
              f"{'; WSDL heap NOT frozen (--no-settle)' if args.no_settle else ''}")
        print(f"  WSDL warm-up (once per process): {polls['warm_seconds']:.2f}s, "
              f"{polls['warm_rss'] / 2**20:.1f} MiB")
        print(f"  time to start (all {n} due at once, until every camera polled once): "
              f"{polls['start_seconds']:.2f}s (slowest first poll "
              f"{polls['first_latency_max']:.2f}s)")
        child.stdin.write(f"window {polls['window_start']} {polls['window_end']}\n")
        child.stdin.flush()
        sim_loop = json.loads(child.stdout.readline())
        print(f"  polls: {polls['polls']:.0f} ({polls['polls'] / polls['wall']:.1f}/s), "
              f"not ok: {polls['not_ok']:.0f}, overruns: {polls['overruns']:.0f}")
        print(f"  queue wait (due → scheduler slots held): p50 {ms(polls['wait_p50'])}, "
              f"p95 {ms(polls['wait_p95'])}, max {ms(polls['wait_max'])}")
        print(f"  service time (the probe, slots held): p50 {ms(polls['latency_p50'])}, "
              f"p95 {ms(polls['latency_p95'])}, max {ms(polls['latency_max'])}")
        for name, loop in (("probe", {k[5:]: v for k, v in polls.items()
                                      if k.startswith("loop_")}), ("simulators", sim_loop)):
            print(f"  {name} process: CPU {loop['cpu']:.1f}s "
                  f"({loop['cpu'] / max(polls['polls'], 1) * 1000:.1f} ms per poll), "
                  f"waited {loop['starved']:.1f}s for a CPU (machine busy), "
                  f"event-loop lag p50 {ms(loop['lag_p50'])}, p95 "
                  f"{ms(loop['lag_p95'])}, max {ms(loop['lag_max'])}; full GCs "
                  f"{loop['gc_full']:.0f} ({ms(loop['gc_full_seconds'])} in all, longest "
                  f"{ms(loop['gc_full_max'])}), young GCs {ms(loop['gc_young_seconds'])}")
        print(f"  CPU per poll: {cpu_per_poll * 1000:.1f} ms "
              f"(one core at a 60 s interval: ~{60 / cpu_per_poll:.0f} cameras)")
        print(f"  memory per camera (RSS growth over the warmed baseline / N): "
              f"{polls['per_camera_rss'] / 1024:.1f} KiB")
        print(f"  simulator process CPU during the run: {sim_cpu:.1f}s (not counted above)")
        if args.events:
            events = run_phase("events", args)
            print(f"ONVIF events, {n} PullPoint subscriptions")
            print(f"  time to subscribe all: {events['start_seconds']:.2f}s "
                  f"(CPU {events['start_cpu']:.1f}s)")
            print(f"  memory per held subscription: {events['per_camera_rss'] / 1024:.1f} KiB")
            print(f"  CPU per subscription-minute (10 s long-polls): "
                  f"{events['cpu_per_sub_minute'] * 1000:.1f} ms; lost: {events['lost']:.0f}")
            print(f"  stop (unsubscribe all): {events['stop_seconds']:.2f}s")
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument("--interval", type=float, default=15.0,
                        help="poll interval, shortened from the field's 60 s")
    parser.add_argument("--seconds", type=float, default=30.0, help="steady window")
    parser.add_argument("--events", action="store_true",
                        help="also hold one PullPoint subscription per camera")
    parser.add_argument("--no-settle", action="store_true",
                        help="leave the parsed WSDLs in the collector's reach (no freeze)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=("polls", "events"), help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve is not None:
        asyncio.run(serve(min(parsed.serve, MAX_CAMERAS)))
        sys.exit(0)
    if not 1 <= parsed.cameras <= MAX_CAMERAS:
        parser.error(f"--cameras must be 1..{MAX_CAMERAS}")
    if not 0 < parsed.seconds <= MAX_SECONDS or not 0.5 <= parsed.interval <= 600:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}], --interval in [0.5, 600]")
    if parsed.phase is not None:
        asyncio.run(phase(parsed.phase, parsed))
        sys.exit(0)
    sys.exit(main(parsed))
