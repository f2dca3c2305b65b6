"""The rule engine fed by the real daemon polling lab devices over loopback TCP.

The daemon's own engine is used, as wired in daemon/app.py; the test records what it
emits."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import yaml

from elvwatch.config.loading import load_config
from elvwatch.lab.devices import Fault, LabFleet, tcp_check
from elvwatch.rules.faults import fingerprint
from tests.helpers import until
from tests.rules_daemon import RulesApp, open_faults

PORT = 18556


async def test_failed_lab_switch_gives_one_ticket_for_its_12_cameras_then_one_each(
        tmp_path: Path) -> None:
    first = f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.1"
    async with LabFleet(13, first, [PORT]) as fleet:  # a switch and 12 cameras
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
        await app.start()
        try:
            await until(lambda: all(s.state == "up" for s in app.tracker.devices.values()),
                        what="every device up")
            assert open_faults(app.transitions) == {}
            for device in [switch, *cameras]:
                await fleet.set_fault(device, Fault.DOWN)
            parent = fingerprint("lab", switch, "device_unreachable")

            def parent_lists_all() -> bool:
                faults = open_faults(app.transitions)
                return list(faults) == [parent] and faults[parent].affected == tuple(cameras)
            await until(parent_lists_all, what="one fault listing every camera")
            # Exactly one ticket: the switch's, listing the 12 cameras.
            assert app.tickets is not None
            for _ in range(100):
                live = await app.tickets.list_tickets(state="live", kind="fault")
                if live:
                    break
                await asyncio.sleep(0.05)
            assert [(t.device, t.affected) for t in live] == [(switch, tuple(cameras))]
            assert len(cameras) == 12
            # The switch comes back, one camera stays dead: it gets its own fault.
            for device in [switch, *cameras[:-1]]:
                await fleet.set_fault(device, Fault.NONE)
            alone = fingerprint("lab", cameras[-1], "device_unreachable")
            await until(lambda: list(open_faults(app.transitions)) == [alone],
                        what="the dead camera's own fault")
            # Its ticket is a second one; the switch's resolved itself.
            for _ in range(100):
                live = await app.tickets.list_tickets(state="open", kind="fault")
                if [t.device for t in live] == [cameras[-1]]:
                    break
                await asyncio.sleep(0.05)
            assert [t.device for t in live] == [cameras[-1]]
            await fleet.set_fault(cameras[-1], Fault.NONE)
            await until(lambda: open_faults(app.transitions) == {}, what="everything clear")
        finally:
            await app.stop()
