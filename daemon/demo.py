"""``elvwatch demo``: a small simulated community on loopback, monitored by the daemon.

Every demo device is a lab device on its own loopback address.  Checks run every few
seconds and a device goes down after two failed runs, so the first injected fault
shows within a minute; the injector takes one device down now and then and brings it
back later, so a newcomer sees both transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from daemon.app import App
from daemon.config import load_config
from lab.devices import Fault, LabDevice, tcp_check

log = logging.getLogger(__name__)

SITE = "demo-garden"
# Loopback block of the demo's devices; nothing else of ours uses 127.77/16.
BASE = "127.77.0."
INTERVAL = 5.0
TIMEOUT = 2.0
FIRST_FAULT_AFTER = 20.0    # seconds: the first device goes down early
FAULT_LASTS = (30.0, 60.0)  # seconds a device stays down
FAULT_GAP = (30.0, 60.0)    # seconds between the end of one fault and the next

# (id, kind, name, ports, depends_on, location)
DEVICES: list[tuple[str, str, str, list[int], list[str], dict[str, str]]] = [
    ("core-sw", "switch", "核心交换机", [8022], [], {"building": "物业中心", "place": "弱电机房"}),
    ("poe-sw-1", "switch", "1号楼 PoE 交换机", [8022], ["core-sw"],
     {"building": "1号楼", "floor": "B1", "place": "弱电井"}),
    ("nvr-1", "nvr", "监控中心 NVR", [8080, 8554], ["core-sw"],
     {"building": "物业中心", "place": "监控室"}),
    ("cam-gate-01", "camera", "南门入口枪机", [8080, 8554], ["poe-sw-1"],
     {"building": "南门", "place": "入口岗亭上方"}),
    ("cam-gate-02", "camera", "南门出口枪机", [8080, 8554], ["poe-sw-1"],
     {"building": "南门", "place": "出口道闸"}),
    ("cam-b1-lobby", "camera", "1号楼大堂半球", [8080, 8554], ["poe-sw-1"],
     {"building": "1号楼", "floor": "1", "place": "大堂"}),
    ("cam-b1-lift", "camera", "1号楼电梯厅", [8080, 8554], ["poe-sw-1"],
     {"building": "1号楼", "floor": "1", "place": "电梯厅"}),
    ("door-b1", "door_station", "1号楼单元门口机", [5060], ["poe-sw-1"],
     {"building": "1号楼", "floor": "1", "place": "单元门"}),
    ("acp-gate", "access_panel", "南门门禁控制器", [8080], ["core-sw"],
     {"building": "南门", "place": "门卫室"}),
    ("alarm-1", "alarm_panel", "周界报警主机", [1502], ["core-sw"],
     {"building": "物业中心", "place": "监控室"}),
]


def demo_config(listen: str) -> dict[str, Any]:
    devices = []
    for index, (dev_id, kind, name, ports, parents, location) in enumerate(DEVICES, start=1):
        devices.append({
            "id": dev_id, "site": SITE, "kind": kind, "name": name,
            "host": f"{BASE}{index}", "location": location, "depends_on": parents,
            # TCP only: every loopback address answers ping, so ICMP could not fail here.
            "checks": [{**tcp_check(port), "name": f"tcp_{port}"} for port in ports],
        })
    return {
        "http": {"listen": listen},
        "interval": INTERVAL,
        "timeout": TIMEOUT,
        "scheduler": {"down_after": 2, "jitter": 0.5},
        "sites": [{"id": SITE, "name": "阳光花园（演示）", "language": "zh-CN",
                   "contract": {"start": time.strftime("%Y-%m-01"), "months": 12},
                   "contacts": [{"name": "演示 物业代表", "role": "site representative"}]}],
        "devices": devices,
    }


async def _inject_faults(lab: dict[str, LabDevice], rng: random.Random) -> None:
    await asyncio.sleep(FIRST_FAULT_AFTER)
    # Leaf devices only: a switch going down would take its cameras with it, which the
    # rule engine handles, but a first-time viewer should see one clear fault.
    leaves = [d for d in lab.values() if not d.id.endswith("-sw") and "sw-" not in d.id]
    while True:
        device = rng.choice(leaves)
        print(f"demo: taking {device.id} down", flush=True)
        await device.set_fault(Fault.DOWN)
        await asyncio.sleep(rng.uniform(*FAULT_LASTS))
        print(f"demo: bringing {device.id} back", flush=True)
        await device.set_fault(Fault.NONE)
        await asyncio.sleep(rng.uniform(*FAULT_GAP))


async def run_demo(listen: str = "127.0.0.1:9780", directory: Path | None = None,
                   duration: float = 0.0) -> int:
    workdir = directory or Path(tempfile.mkdtemp(prefix="elvwatch-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(listen), allow_unicode=True,
                                          sort_keys=False), encoding="utf-8")
    config = load_config(config_path)
    lab = {dev.id: LabDevice(dev.id, dev.config.host, [c.port for c in dev.checks if c.port])
           for dev in config.devices.values()}
    for device in lab.values():
        await device.start()
    app = App(config)
    injector: asyncio.Task[None] | None = None
    try:
        await app.start()
        base = f"http://{listen}"
        print(f"elvwatch demo: {len(lab)} simulated devices of site {SITE} on {BASE}0/24\n"
              f"  config     {config_path}\n"
              f"  devices    {base}/api/v1/devices\n"
              f"  metrics    {base}/metrics\n"
              f"  health     {base}/healthz\n"
              f"  status     elvwatch status -c {config_path}\n"
              f"A device is taken down about {FIRST_FAULT_AFTER:.0f}s from now and brought "
              f"back later; Ctrl-C stops.", flush=True)
        injector = asyncio.create_task(_inject_faults(lab, random.Random()))
        if duration > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration):
                    await app.run_forever()
        else:
            await app.run_forever()
    finally:
        if injector is not None:
            injector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await injector
        await app.stop()
        for device in lab.values():
            await device.stop()
    return 0
