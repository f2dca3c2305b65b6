"""Fleet benchmark: a mixed fleet on one host, the daemon in its own process, side by
side with the floor measured in the same run.

    python bench/fleet_bench.py [--devices 2000] [--interval 60] [--onvif-interval 900]
    python bench/fleet_bench.py --devices 50000            # the full figure
    python bench/fleet_bench.py --onvif-interval 300 --onvif-full-poll 3600   # light polls

The fleet (``bench/fleet_lab.py``): cameras (ICMP every interval + ONVIF every
``--onvif-interval``), switches/NVRs/UPSes (SNMP), alarm panels (Modbus behind
gateways) and access controllers (MQTT), every device on its own loopback address, the
simulators in processes of their own.  The daemon runs in a child process
(``daemon_window.daemon_run``): one interval of warm-up, then a window of ``--window``
seconds (default one interval).  Printed:

* devices per kind and who answers for them (where one simulator serves many devices);
* checks per second scheduled and done, lag p50/p99, checks that failed;
* the daemon's CPU (cores, and per check: MQTT messages count as checks), RSS per device;
* start-up: from starting the process until every check is scheduled (interpreter,
  imports, config, WSDLs, store), and the part ``App.start`` took;
* the floor (``bench/fleet_floor.py``): CPU per operation of each kind's bare library
  (fping for ICMP), the floor's cores for the work the daemon got done (scaled down when
  it fell behind), and the ratio.

Also the simulators' CPU over the window: they share the box with the daemon.  Bounded:
at most 60,000 devices, a window of at most 600 s; every child is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench import fleet_floor as floor
from bench.daemon_window import daemon_run, rss_mib
from bench.fleet_lab import (
    MIX,
    Fleet,
    Labs,
    daemon_env,
    plan,
    publish,
    serve_cameras,
    serve_gateways,
    start_labs,
    stop_labs,
    write_config,
)
from bench.icmp_bench import process_cpu

MAX_DEVICES = 60_000
MAX_WINDOW = 600.0
FLOOR_SECONDS = 20.0


def run_daemon(config: Path, devices: int, warmup: float, window: float) -> dict[str, float]:
    """The daemon in a child process; its figures."""
    began = time.monotonic()
    out = subprocess.run(
        [sys.executable, __file__, "--daemon", str(config), "--devices", str(devices),
         "--warmup", str(warmup), "--window", str(window), "--began", repr(began)],
        env=daemon_env(), capture_output=True, text=True,
        timeout=warmup + window + 600, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the daemon failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def daemon_child(config: Path, devices: int, warmup: float, window: float,
                       began: float) -> None:
    entered = time.monotonic()
    base = rss_mib()
    result = await daemon_run(config, devices, warmup, window, scrape_every=15.0,
                              base_rss=base)
    result["process_start_seconds"] = entered - began + result["start_seconds"]
    result["base_rss_mib"] = base
    print(json.dumps(result), flush=True)


def labs_cpu(labs: Labs) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in labs.procs:
        total = 0.0
        for pid in labs.pids(name):
            with contextlib.suppress(OSError):
                total += process_cpu(pid)
        out[name] = total
    return out


async def floors(fleet: Fleet, labs: Labs, rates: dict[str, float],
                 seconds: float) -> dict[str, float]:
    """CPU seconds per operation of each kind's bare library."""
    found: dict[str, float] = {}
    cameras = fleet.hosts["camera"]
    if fleet.snmp_hosts:
        found["snmp"] = await floor.snmp_floor(fleet.snmp_hosts, rates["snmp"], seconds)
    if fleet.panels:
        found["modbus"] = await floor.modbus_floor(fleet.panels, rates["modbus"], seconds)
    if cameras:
        found["onvif"] = await floor.onvif_floor(cameras, rates["onvif"], seconds)
    if cameras and rates["onvif_light"]:
        found["onvif_light"] = await floor.onvif_light_floor(
            cameras, rates["onvif_light"], seconds)
    if fleet.hosts["access_panel"]:
        found["mqtt"] = await floor.mqtt_floor(labs.mqtt_port, seconds)
    return found


def main(args: argparse.Namespace) -> int:
    fleet = plan(args.devices)
    interval, onvif_interval = args.interval, args.onvif_interval
    window = args.window or interval
    full_poll = args.onvif_full_poll
    # Light polls between full ones (full_poll_seconds): full at most every full_poll s.
    onvif_rate = fleet.count("camera") / onvif_interval
    full_rate = min(onvif_rate, fleet.count("camera") / full_poll) if full_poll else onvif_rate
    rates = {"icmp": fleet.count("camera") / interval, "onvif": full_rate,
             "onvif_light": onvif_rate - full_rate,
             "snmp": len(fleet.snmp_hosts) / interval,
             "modbus": len(fleet.panels) / interval,
             "mqtt": fleet.count("access_panel") / interval}
    print(f"# fleet benchmark {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: "
          f"{fleet.devices} devices, interval {interval:g}s, ONVIF every "
          f"{onvif_interval:g}s (full polls at most every {full_poll:g}s), window "
          f"{window:g}s, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    print("# devices: " + ", ".join(f"{kind} {fleet.count(kind)}" for kind, _ in MIX))
    started = time.perf_counter()
    labs = start_labs(fleet, interval)
    try:
        print(f"# simulators up in {time.perf_counter() - started:.0f}s", flush=True)
        for note in labs.notes:
            print(f"#   {note}")
        with tempfile.TemporaryDirectory(prefix="elvwatch-fleet-") as tmp:
            config = write_config(Path(tmp), fleet, interval, onvif_interval,
                                  labs.mqtt_port, full_poll)
            # The simulators' CPU over the daemon's warm-up and window together.
            sims0 = labs_cpu(labs)
            ours = run_daemon(config, fleet.devices, interval, window)
            sims = {k: v - sims0[k] for k, v in labs_cpu(labs).items()}
        load = os.getloadavg()[0]
        per_op = asyncio.run(floors(fleet, labs, rates, min(FLOOR_SECONDS, window)))
        per_op["icmp"] = floor.icmp_floor(fleet.hosts["camera"], interval,
                                          min(FLOOR_SECONDS * 2, window))
    finally:
        stop_labs(labs)
    scheduled = rates["icmp"] + onvif_rate + rates["snmp"] + rates["modbus"]
    cores = ours["cpu_per_1000"] / 1000 * ours["runs"] / window
    # The floor of the work the daemon got done: a daemon that fell behind did less.
    floor_cores = sum(rates[k] * per_op[k] for k in per_op) * \
        min(1.0, ours["achieved"] / scheduled)
    per_check = cores / (ours["achieved"] + rates["mqtt"])
    print(f"{'checks/s sched':>15} {'done':>6} {'lag p50':>8} {'lag p99':>8} "
          f"{'failed':>6} {'cores':>6} {'ms/check':>8} {'floor':>6} {'ratio':>6} "
          f"{'KiB/dev':>8} {'start':>6}")
    print(f"{scheduled:>15.0f} {ours['achieved']:>6.0f} "
          f"{ours['lag_p50'] * 1000:>6.1f}ms {ours['lag_p99'] * 1000:>6.0f}ms "
          f"{ours['failed']:>6.0f} {cores:>6.2f} {per_check * 1000:>8.3f} "
          f"{floor_cores:>6.2f} {cores / floor_cores:>6.2f} "
          f"{ours['kib_per_device']:>8.1f} {ours['process_start_seconds']:>5.1f}s")
    print(f"# plus MQTT {rates['mqtt']:.0f} messages/s; /metrics scraped every 15 s in the "
          f"window, {ours['scrape_seconds']:.2f}s each; daemon RSS {ours['rss_mib']:.0f} "
          f"MiB ({ours['base_rss_mib']:.0f} MiB before the config); App.start "
          f"{ours['start_seconds']:.1f}s; the daemon's loop waited for a CPU "
          f"{ours['waited_for_cpu']:.0%} of the window; load at the end {load:.2f}")
    print("# floor per operation: " + ", ".join(
        f"{k} {per_op[k] * 1000:.3f} ms × {rates[k]:.0f}/s" for k in
        ("icmp", "snmp", "modbus", "onvif", "onvif_light", "mqtt") if k in per_op))
    total = interval + window
    print("# simulators' CPU over warm-up + window (cores): " + ", ".join(
        f"{k} {v / total:.2f}" for k, v in sims.items()))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=60.0,
                        help="every check but ONVIF (the field's 60 s)")
    parser.add_argument("--onvif-interval", type=float, default=900.0)
    parser.add_argument("--onvif-full-poll", type=float, default=0.0,
                        help="the onvif checks' full_poll_seconds (0: every poll full)")
    parser.add_argument("--window", type=float, default=0.0,
                        help="measured seconds after one interval of warm-up (default: "
                             "one interval)")
    parser.add_argument("--daemon", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--began", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve:
        kind, *rest = parsed.serve
        lines = Path(rest[0]).read_text().split()
        if kind == "cameras":
            asyncio.run(serve_cameras(lines))
        elif kind == "gateways":
            asyncio.run(serve_gateways(lines, int(rest[1])))
        else:
            asyncio.run(publish(int(rest[1]), lines, float(rest[2])))
        sys.exit(0)
    if parsed.daemon is not None:
        asyncio.run(daemon_child(parsed.daemon, parsed.devices, parsed.warmup,
                                 parsed.window, parsed.began))
        sys.exit(0)
    if not 10 <= parsed.devices <= MAX_DEVICES:
        parser.error(f"--devices must be 10..{MAX_DEVICES}")
    if not 0 <= parsed.window <= MAX_WINDOW or not 5 <= parsed.interval <= 600 or \
            not 5 <= parsed.onvif_interval <= 3600:
        parser.error(f"--window 0..{MAX_WINDOW:g}, --interval 5..600, "
                     "--onvif-interval 5..3600")
    sys.exit(main(parsed))
