"""The engine's bookkeeping per device and per (device, rule) fault.

Mutable, slotted, private to :mod:`elvwatch.rules.engine`; what leaves the engine is the
frozen :class:`~elvwatch.rules.faults.FaultTransition`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from elvwatch.rules.expr import Node, aggregate_key
from elvwatch.rules.faults import FaultState, FaultTransition, fingerprint
from elvwatch.rules.model import DeviceSpec, Rule

UNSTABLE = ".unstable"
# Names the engine sets itself; every other name a rule reads comes from a probe.
SPECIAL_NAMES = frozenset({"status", "state", "error", "reason", "check", "archive.serial"})
INFO_KEYS = ("vendor", "model", "firmware", "serial")
INACTIVE = FaultState.INACTIVE


class FaultRecord:
    __slots__ = ("active", "affected", "cond", "device", "false_since", "false_streak", "flapping",
                 "flips", "fp", "held_until", "last", "rep_affected", "rep_root", "rep_state",
                 "rep_suppressed", "root", "rule", "since", "spec", "state", "true_streak",
                 "unstable_state")

    def __init__(self, rule: Rule, spec: DeviceSpec) -> None:
        self.rule, self.spec, self.device = rule, spec, spec.id
        self.cond: Node = rule.condition.root
        self.fp = fingerprint(spec.site, spec.id, rule.id)
        self.state = INACTIVE
        self.active = False  # pending or firing: a false condition matters
        self.true_streak = self.false_streak = 0
        self.since = 0.0
        self.false_since: float | None = None
        # Recent changes, oldest first; a list, since most faults never change and an
        # empty deque costs ten times an empty list (ten faults per camera, 20,000 cameras).
        self.flips: list[float] = []
        self.flapping = False
        self.unstable_state = INACTIVE
        self.root: FaultRecord | None = None
        self.held_until: float | None = None  # firing, not reported: a parent may explain it
        self.affected: dict[FaultRecord, None] = {}  # an ordered set, small when empty
        self.rep_state = INACTIVE
        self.rep_root: str | None = None
        self.rep_suppressed: str | None = None
        self.rep_affected: tuple[str, ...] = ()
        self.last: FaultTransition | None = None

    @property
    def unstable_fp(self) -> str:
        return fingerprint(self.spec.site, self.device, self.rule.id + UNSTABLE)


class Binding:
    """The faults one shape of observation meets, and the family aggregates they read."""

    __slots__ = ("aggregates", "faults", "has_serial", "keys")

    def __init__(self, keys: tuple[str, ...], has_serial: bool, faults: list[FaultRecord],
                 aggregates: list[tuple[str, str, tuple[str, ...]]]) -> None:
        self.keys, self.has_serial, self.faults = keys, has_serial, faults
        self.aggregates = aggregates  # (env key, function, member value names)


def aggregate(function: str, values: Iterable[float | str]) -> float | None:
    numbers = [v for v in values if not isinstance(v, str)]
    if function == "count_of":
        return float(len(numbers))
    if not numbers:
        return None
    if function == "sum_of":
        return float(sum(numbers))
    return float(max(numbers) if function == "max_of" else min(numbers))


class DeviceRecord:
    __slots__ = ("bindings", "env", "explaining", "faults", "keys_by_check", "last", "spec",
                 "statuses")

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.env: dict[str, float | str | bool] = {}
        if spec.serial:
            self.env["archive.serial"] = spec.serial
        self.faults: dict[str, FaultRecord] = {}
        self.explaining: dict[str, list[FaultRecord]] = {}
        self.bindings: dict[tuple[str, tuple[str, ...], bool], Binding] = {}
        self.keys_by_check: dict[str, tuple[str, ...]] = {}
        # check → the binding of its last observation (value names, serial reported)
        self.last: dict[str, Binding] = {}
        self.statuses: dict[str, str] = {}  # check → status of its last observation

    def take_info(self, info: Mapping[str, str]) -> bool:
        """Keep the identification the device sent; True if it includes a serial."""
        env = self.env
        for key in INFO_KEYS:
            text = info.get(key)
            if text:
                env["info." + key] = text
        serial = info.get("serial")
        if serial and "archive.serial" not in env:
            env["archive.serial"] = serial  # no archive serial: the first one seen counts
        return bool(serial)

    def rebind(self, check: str, keys: tuple[str, ...], has_serial: bool,
               values: Mapping[str, float | str]) -> Binding:
        """The binding for an observation of ``check`` shaped unlike the last one."""
        previous = self.keys_by_check.get(check)
        if previous is not None and previous != keys:
            for key in previous:
                if key not in values:
                    self.env.pop(key, None)  # a value this check no longer reports
        last = self.last.get(check)
        if last is not None:
            for key, _, _ in last.aggregates:
                self.env.pop(key, None)
        self.keys_by_check[check] = keys
        binding = self.bindings.get((check, keys, has_serial))
        if binding is None:
            binding = self._bind(check, keys, has_serial)
        self.last[check] = binding
        return binding

    def _bind(self, check: str, keys: tuple[str, ...], has_serial: bool) -> Binding:
        check_type = self.spec.checks.get(check, check)
        families: dict[str, list[str]] = {}
        for key in keys:
            if "{" in key:
                families.setdefault(key.split("{", 1)[0], []).append(key)
        present = set(keys) | set(families)
        if has_serial:
            present.add("info.serial")
        bound = []
        for fault in self.faults.values():
            rule = fault.rule
            if rule.check:
                if rule.matches_check(check, check_type):
                    bound.append(fault)
                continue
            probe_names = rule.condition.names - SPECIAL_NAMES
            if not probe_names or probe_names & present:
                bound.append(fault)
        aggregates = sorted({
            (aggregate_key(function, family), function, tuple(families[family]))
            for fault in bound for function, family in fault.rule.condition.aggregates
            if family in families})
        binding = self.bindings[(check, keys, has_serial)] = Binding(
            keys, has_serial, bound, aggregates)
        return binding
