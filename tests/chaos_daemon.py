"""A small daemon-like loop for the kill-and-restart test (run as a subprocess).

Faults on a handful of devices come and go on a fixed schedule of steps (30 simulated
minutes each).  Each step hands the rule transitions to the TicketManager, runs its
clocks and counts healthy polls, then records the step in a progress file.  Started
again after a SIGKILL it does what the real daemon does: its rule engine starts blank,
sees the faults firing now (FIRING again), and ``resync`` settles the rest.

    python -m tests.chaos_daemon STORE_URL PROGRESS_FILE STEPS DELAY_SECONDS
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from elvwatch.rules.faults import FaultState, FaultTransition, fingerprint
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.sla import SiteTerms
from elvwatch.tickets.store import Store

T0 = 1772438400.0  # 2026-03-02 08:00 UTC
STEP = 1800.0
SITE = "chaos"
TERMS = SiteTerms(site=SITE, name="Chaos Gardens", language="en")
SEVERITY = {"cam-01": "emergency", "cam-02": "major"}
CAMERAS = [f"cam-{i:02d}" for i in range(1, 6)]
QUIET_TAIL = 12  # last steps without faults, so every ticket ends verified and closed
# Nobody signs off here: the system closes a verified ticket after this long.  Shorter
# than the reopen window less the verification's polls, so a run killed and restarted
# (whose verification may come a poll earlier) reopens and opens the same tickets.
CLOSE_AFTER = 2 * 3600.0


def firing(step: int, steps: int) -> dict[str, str | None]:
    """device -> root cause (None: its own fault) of the faults firing at ``step``."""
    if step < 0 or step >= steps - QUIET_TAIL:
        return {}
    out: dict[str, str | None] = {}
    for i, cam in enumerate(CAMERAS, start=1):
        period = 6 + 3 * i
        if (step + 5 * i) % period < period // 3 + (i % 2):
            out[cam] = None
    if step % 40 in range(10, 16):  # the switch, with cam-06 behind it
        out["sw-01"] = None
        out["cam-06"] = "sw-01"
    return out


def transition(device: str, root: str | None, previous: FaultState, state: FaultState,
               at: float) -> FaultTransition:
    return FaultTransition(
        fingerprint=fingerprint(SITE, device, "device_unreachable"), rule="device_unreachable",
        device=device, site=SITE, system="network" if device.startswith("sw") else "cctv",
        kind="ipc", name_zh="设备离线", name_en="device unreachable",
        severity=SEVERITY.get(device, "general"), previous=previous, state=state, at=at,
        root_cause=root)


async def run(url: str, progress: Path, steps: int, delay: float) -> None:
    store = await Store.open(url)
    try:
        manager = TicketManager(store, lambda: {SITE: TERMS}, lambda: T0,
                                verify_after_polls=3, reopen_window=6 * 3600.0,
                                close_after=CLOSE_AFTER)
        start = int(progress.read_text()) if progress.exists() else 0  # noqa: ASYNC240
        if start > 0:  # restarted: a blank rule engine sees what fires now
            # It sees the world as it is now (at the step it resumes), never in the past.
            now_firing = firing(start, steps)
            at = T0 + start * STEP
            await manager.handle([transition(d, r, FaultState.PENDING, FaultState.FIRING, at)
                                  for d, r in now_firing.items()])
            await manager.resync({transition(d, r, FaultState.FIRING, FaultState.FIRING,
                                             at).fingerprint for d, r in now_firing.items()},
                                 at)
        for step in range(start, steps):
            at = T0 + step * STEP
            manager.clock = lambda at=at: at  # type: ignore[misc]
            before, now = firing(step - 1, steps), firing(step, steps)
            batch = [transition(d, r, FaultState.PENDING, FaultState.FIRING, at)
                     for d, r in now.items() if d not in before]
            batch += [transition(d, r, FaultState.FIRING, FaultState.CLEARED, at)
                      for d, r in before.items() if d not in now]
            await manager.handle(batch)
            await manager.tick(at)
            await manager.devices_healthy(d for d in [*CAMERAS, "cam-06", "sw-01"]
                                          if d not in now)
            tmp = progress.with_suffix(".tmp")
            tmp.write_text(str(step + 1))
            os.replace(tmp, progress)  # atomic: a kill leaves the old or the new count
            if delay:
                await asyncio.sleep(delay)
    finally:
        await store.close()


if __name__ == "__main__":
    url, path, count, pause = sys.argv[1:5]
    asyncio.run(run(url, Path(path), int(count), float(pause)))
