"""The real daemon App with its rule engine's fault transitions recorded, for tests that
drive lab devices into faults and watch the built-in rules fire and clear."""

from __future__ import annotations

from typing import Any

from daemon.app import App
from daemon.config import Config
from probes.base import Observation
from rules.faults import FaultState, FaultTransition


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
