"""The real daemon App with its rule engine's fault transitions recorded, for tests that
drive lab devices into faults and watch the built-in rules fire and clear."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from elvwatch.config.resolved import Config
from elvwatch.daemon.app import App
from elvwatch.probes.base import Observation
from elvwatch.rules.faults import FaultState, FaultTransition, fingerprint
from elvwatch.tickets.ticket_store import Ticket
from tests.helpers import until


def mqtt_lab_config(tmp: Path, broker: Any, username: str, client_id: str,
                    devices: list[dict[str, Any]], *, interval: float,
                    site: str = "lab") -> dict[str, Any]:
    """A daemon config for lab devices behind one Mosquitto (``lab.mosquitto``): the
    login read from ``tmp/mq-password``, quick sweeps and reconnects, SQLite in ``tmp``."""
    return {
        "interval": interval, "timeout": interval,
        "scheduler": {"down_after": 2, "jitter": 0.0},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp}/e.db"},
        "credentials": {"mq": {"username": username,
                               "password_file": str(tmp / "mq-password")}},
        "sources": {"mqtt": {
            "brokers": {"site": {"host": broker.host, "port": broker.port,
                                 "credentials": "mq", "client_id": client_id}},
            "sweep_seconds": 0.1, "reconnect_min_seconds": 0.1}},
        "sites": [{"id": site, "name": "实验小区", "contract": {"start": "2026-01-01"}}],
        "devices": devices}


class RulesApp(App):
    """The daemon as wired, recording every fault transition its rule engine emits."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.transitions: list[FaultTransition] = []
        observe, tick = self.engine.observe, self.engine.tick

        def recording_observe(obs: Observation, state: Any) -> list[FaultTransition]:
            out = observe(obs, state)
            self.transitions += out
            return out

        def recording_tick(now: float | None = None) -> list[FaultTransition]:
            out = tick(now)
            self.transitions += out
            return out

        self.engine.observe = recording_observe  # type: ignore[method-assign]
        self.engine.tick = recording_tick  # type: ignore[method-assign]


def open_faults(transitions: list[FaultTransition]) -> dict[str, FaultTransition]:
    last: dict[str, FaultTransition] = {}
    for t in transitions:
        last[t.fingerprint] = t
    return {fp: t for fp, t in last.items()
            if t.state is FaultState.FIRING and t.root_cause is None}


class HasApp(Protocol):
    app: RulesApp


def fault_fp(app: App, device: str, rule: str) -> str:
    """The fingerprint of ``rule`` on ``device``, the site read from the config."""
    return fingerprint(app.config.devices[device].config.site, device, rule)


def faults_of(lab: HasApp, device: str) -> list[str]:
    """The device's open faults (not behind a root cause), by fingerprint."""
    return sorted(fp for fp, t in open_faults(lab.app.transitions).items()
                  if t.device == device)


async def fires(lab: HasApp, device: str, rule: str, timeout: float = 10.0) -> None:
    """Wait until ``rule`` is the device's one open fault."""
    await until(lambda: faults_of(lab, device) == [fault_fp(lab.app, device, rule)],
                timeout=timeout, what=f"{rule} firing on {device}")


async def clears(lab: HasApp, device: str, rule: str, timeout: float = 10.0) -> None:
    """Wait until ``rule`` cleared on the device, then see nothing of it open."""
    fp = fault_fp(lab.app, device, rule)

    def cleared() -> bool:
        last = [t for t in lab.app.transitions if t.fingerprint == fp]
        return bool(last) and last[-1].state is FaultState.CLEARED
    await until(cleared, timeout=timeout, what=f"{rule} clearing on {device}")
    assert faults_of(lab, device) == []


async def tickets(lab: HasApp, device: str, predicate: Callable[[list[Ticket]], bool],
                  what: str, timeout: float = 10.0) -> list[Ticket]:
    """The device's fault tickets (any state: a recovered one may close soon after)."""
    manager = lab.app.tickets
    assert manager is not None
    found: list[Ticket] = []

    async def matching() -> bool:
        nonlocal found
        found = await manager.list_tickets(kind="fault", device=device)
        return predicate(found)

    try:
        await until(matching, what, timeout, every=0.1)
    except AssertionError:
        raise AssertionError(f"timed out waiting for {what}: {found}") from None
    return found
