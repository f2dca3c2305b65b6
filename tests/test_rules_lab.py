"""The rule engine fed by the real daemon polling lab devices over loopback TCP.

The engine is not wired into daemon/app.py yet (the lead integrates rules and tickets);
this test hooks it behind App's observation callback the way the wiring will."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import yaml

from daemon.app import App
from daemon.config import Config, load_config
from lab.devices import Fault, LabFleet, tcp_check
from probes.base import Observation
from rules.engine import Engine
from rules.faults import FaultState, FaultTransition, fingerprint
from rules.model import DeviceSpec, build_rules

PORT = 18556


class RulesApp(App):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.engine = Engine(build_rules(), [
            DeviceSpec(id=d.id, site=d.config.site, system=d.system.value, kind=d.config.kind,
                       tags=frozenset(d.config.tags), checks={c.name: c.type for c in d.checks},
                       depends_on=tuple(d.config.depends_on), serial=d.config.serial)
            for d in config.devices.values()])
        self.transitions: list[FaultTransition] = []

    def _on_observation(self, obs: Observation) -> None:
        super()._on_observation(obs)
        status = self.tracker.devices.get(obs.device)
        if status is not None:
            self.transitions += self.engine.observe(obs, status.state)


def open_faults(transitions: list[FaultTransition]) -> dict[str, FaultTransition]:
    last: dict[str, FaultTransition] = {}
    for t in transitions:
        last[t.fingerprint] = t
    return {fp: t for fp, t in last.items()
            if t.state is FaultState.FIRING and t.root_cause is None}


async def wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_failed_lab_switch_gives_one_fault_for_its_cameras_then_one_each(
        tmp_path: Path) -> None:
    first = f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.1"
    async with LabFleet(5, first, [PORT]) as fleet:
        entries = fleet.config_devices("lab", "camera", [tcp_check(PORT)])
        switch = str(entries[0]["id"])
        entries[0]["kind"] = "switch"
        cameras = [str(e["id"]) for e in entries[1:]]
        for entry in entries[1:]:
            entry["depends_on"] = [switch]
        data = {"interval": 0.2, "timeout": 0.2, "scheduler": {"down_after": 2, "jitter": 0.0},
                "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/e.db"},
                "sites": [{"id": "lab", "name": "实验小区"}], "devices": entries}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        app = RulesApp(load_config(path))
        await app.start(http=False)
        try:
            await wait_for(lambda: all(s.state == "up" for s in app.tracker.devices.values()),
                           "every device up")
            assert open_faults(app.transitions) == {}
            for device in [switch, *cameras]:
                await fleet.set_fault(device, Fault.DOWN)
            parent = fingerprint("lab", switch, "device_unreachable")

            def parent_lists_all() -> bool:
                faults = open_faults(app.transitions)
                return list(faults) == [parent] and faults[parent].affected == tuple(cameras)
            await wait_for(parent_lists_all, "one fault listing every camera")
            # The switch comes back, one camera stays dead: it gets its own fault.
            for device in [switch, *cameras[:-1]]:
                await fleet.set_fault(device, Fault.NONE)
            alone = fingerprint("lab", cameras[-1], "device_unreachable")
            await wait_for(lambda: list(open_faults(app.transitions)) == [alone],
                           "the dead camera's own fault")
            await fleet.set_fault(cameras[-1], Fault.NONE)
            await wait_for(lambda: open_faults(app.transitions) == {}, "everything clear")
        finally:
            await app.stop()
