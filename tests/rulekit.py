"""Helpers for the rule-engine tests: a settable clock, devices, observations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from elvwatch.probes.base import Observation, Reason, Status
from elvwatch.rules.engine import Engine
from elvwatch.rules.faults import FaultState, FaultTransition
from elvwatch.rules.model import DeviceSpec, Rule, build_rules
from elvwatch.rules.silence import Silencer


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def device(id: str, kind: str, system: str, checks: Mapping[str, str] | None = None,
           site: str = "s1", depends_on: Iterable[str] = (), tags: Iterable[str] = (),
           serial: str | None = None) -> DeviceSpec:
    return DeviceSpec(id=id, site=site, system=system, kind=kind, tags=frozenset(tags),
                      checks=dict(checks or {"icmp": "icmp"}),
                      depends_on=tuple(depends_on), serial=serial)


def engine(devices: Iterable[DeviceSpec], rules: list[Rule] | None = None,
           silencer: Silencer | None = None, clock: Clock | None = None,
           **options: float) -> tuple[Engine, Clock]:
    clock = clock or Clock()
    flap: dict[str, float] = dict(options)
    eng = Engine(build_rules() if rules is None else rules, devices, clock=clock,
                 silencer=silencer, flap_transitions=int(flap.get("flap_transitions", 6)),
                 flap_window=flap.get("flap_window", 3600.0),
                 hold_seconds=flap.get("hold_seconds", 0.0))
    return eng, clock


def ob(device: str, check: str, status: Status = Status.OK,
       values: Mapping[str, float | str] | None = None,
       info: Mapping[str, str] | None = None, error: str | None = None,
       reason: Reason | None = None) -> Observation:
    return Observation(device, check, status, values=dict(values or {}),
                       info=dict(info or {}), error=error, reason=reason)


def states(transitions: Iterable[FaultTransition], rule: str | None = None
           ) -> list[tuple[str, FaultState, FaultState]]:
    return [(t.rule, t.previous, t.state) for t in transitions
            if rule is None or t.rule == rule]


def firing_roots(transitions: Iterable[FaultTransition]) -> dict[str, FaultTransition]:
    """The last transition per fingerprint that is firing."""
    last: dict[str, FaultTransition] = {}
    for t in transitions:
        last[t.fingerprint] = t
    return {fp: t for fp, t in last.items() if t.state is FaultState.FIRING}
