"""The evaluator: observations in, :class:`~elvwatch.rules.faults.FaultTransition` s out.

One fault per (device, rule), moving ``inactive → pending → firing → cleared``:

* the condition true once makes it *pending*; true for ``for:`` polls (or for the
  duration, checked by :meth:`Engine.tick` too) makes it *firing*;
* false while pending drops it back to *inactive*; false for ``clear:`` polls (or the
  duration) while firing makes it *cleared*; true again starts a new episode;
* an *unknown* condition (a value missing) changes nothing.

A transition is emitted whenever what the ticket stage sees changes: the state, the
``root_cause`` (topology), ``affected`` (for a parent) or ``suppressed_by`` (silences).
A transition with ``previous == state`` is such an update.  ``root_cause`` is the
fingerprint of the explaining parent fault.

A fault that fires while a fault that could explain it may be about to fire (a check
feeding it failed, unconfirmed) is held back up to ``hold_seconds`` (see
:meth:`Engine._fire`).

More than ``flap_transitions`` firing/cleared changes of one fault within
``flap_window`` seconds make it *flapping*: one ``<rule>.unstable`` fault fires and the
fault's own changes are held back until it has been quiet for a whole window; then the
unstable fault clears and the fault's current state is reported once.

Speed: each device's faults are bound per (check, value names present) once, so an
observation meets only the rules that read what it carries (or that name its check),
and the common "condition false, fault inactive" case costs one closure call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from elvwatch.probes.base import Observation, bounded
from elvwatch.rules.expr import aggregate_key
from elvwatch.rules.faults import FaultState, FaultTransition
from elvwatch.rules.model import DeviceSpec, Rule
from elvwatch.rules.records import UNSTABLE, DeviceRecord, FaultRecord, aggregate
from elvwatch.rules.silence import Silencer
from elvwatch.rules.topology import Topology

FAILING = frozenset({"down", "degraded"})
INACTIVE, PENDING, FIRING, CLEARED = (FaultState.INACTIVE, FaultState.PENDING,
                                      FaultState.FIRING, FaultState.CLEARED)


class Engine:
    def __init__(self, rules: Sequence[Rule], devices: Iterable[DeviceSpec] = (), *,
                 clock: Callable[[], float] = time.time, silencer: Silencer | None = None,
                 flap_transitions: int = 6, flap_window: float = 3600.0,
                 hold_seconds: float = 0.0) -> None:
        self._clock = clock
        # A fault that fires while a device it depends on is failing but not yet
        # confirmed is held back up to this long, so a parent confirming a poll later
        # adopts it instead of it opening a ticket of its own first.
        self.hold_seconds = hold_seconds
        self._held: set[FaultRecord] = set()
        self.silencer = silencer
        self.flap_transitions = flap_transitions
        self.flap_window = flap_window
        self.topology = Topology()
        self._rules: list[Rule] = []
        self._devices: dict[str, DeviceRecord] = {}
        self._by_fp: dict[str, FaultRecord] = {}
        self._timed: set[FaultRecord] = set()     # waiting on a for:/clear: duration
        self._flapping: set[FaultRecord] = set()
        self._firing: set[FaultRecord] = set()    # reported firing (silences re-checked)
        self._silence_version = -1
        self._silence_next: float | None = None
        self.configure(devices, rules)

    # -- configuration ---------------------------------------------------------------
    def configure(self, devices: Iterable[DeviceSpec],
                  rules: Sequence[Rule] | None = None) -> list[FaultTransition]:
        """Set devices (and rules); faults that stay keep their state.  Firing faults
        of devices or rules that went away are reported cleared."""
        if rules is not None:
            self._rules = list(rules)
        order = {rule.id: i for i, rule in enumerate(self._rules)}
        by_kind: dict[str, list[Rule]] = {}
        for rule in self._rules:
            for kind in rule.kind or {""}:
                by_kind.setdefault(kind, []).append(rule)
        now, out = self._clock(), list[FaultTransition]()
        old, self._devices = self._devices, {}
        for spec in devices:
            dev = DeviceRecord(spec)
            previous = old.pop(spec.id, None)
            if previous is not None:
                dev.env, dev.keys_by_check = previous.env, previous.keys_by_check
                # Only an archive serial that changed replaces the one in force: with
                # none in the archive, the first serial reported keeps counting across
                # reloads (else any reload would accept a swapped camera silently).
                if spec.serial != previous.spec.serial:
                    dev.env.pop("archive.serial", None)
                    if spec.serial:
                        dev.env["archive.serial"] = spec.serial
            candidates = by_kind.get(spec.kind, []) + by_kind.get("", [])
            for rule in sorted(candidates, key=lambda r: order[r.id]):
                if not rule.matches_device(spec):
                    continue
                fault = previous.faults.pop(rule.id, None) if previous else None
                if fault is None or fault.spec.site != spec.site:
                    if fault is not None:
                        self._retire(fault, now, out)
                    fault = FaultRecord(rule, spec)
                fault.rule, fault.spec, fault.cond = rule, spec, rule.condition.root
                dev.faults[rule.id] = fault
                for cause in rule.explains:
                    dev.explaining.setdefault(cause, []).append(fault)
            if previous is not None:
                for fault in previous.faults.values():
                    self._retire(fault, now, out)
            self._devices[spec.id] = dev
        for dev in old.values():
            for fault in dev.faults.values():
                self._retire(fault, now, out)
        self._by_fp = {f.fp: f for d in self._devices.values() for f in d.faults.values()}
        self.topology.set((d.spec.id, d.spec.depends_on) for d in self._devices.values())
        return out

    def _retire(self, fault: FaultRecord, now: float, out: list[FaultTransition]) -> None:
        self._timed.discard(fault)
        self._flapping.discard(fault)
        self._held.discard(fault)
        if fault.unstable_state is FIRING:
            out.append(self._unstable(fault, CLEARED, now))
        if fault.rep_state is FIRING:
            fault.state, fault.active = CLEARED, False
            fault.flapping = False
            self._publish(fault, now, out, summary="rule or device removed from the config")
            self._release(fault, now, out)

    # -- evaluation ------------------------------------------------------------------
    def observe(self, obs: Observation, state: str) -> list[FaultTransition]:
        """Evaluate the rules ``obs`` concerns; ``state`` is the device's state."""
        dev = self._devices.get(obs.device)
        if dev is None:
            return []
        env = dev.env
        values = obs.values
        keys = tuple(values)
        info = obs.info
        has_serial = bool(info) and dev.take_info(info)
        check = obs.check
        binding = dev.last.get(check)
        if binding is None or binding.keys != keys or binding.has_serial is not has_serial:
            binding = dev.rebind(check, keys, has_serial, values)
        env.update(values)
        for key, function, members in binding.aggregates:
            total = aggregate(function, [values[m] for m in members])
            if total is None:
                env.pop(key, None)
            else:
                env[key] = total
        env["status"] = dev.statuses[check] = obs.status
        env["check"] = dev.spec.checks.get(check, check)
        env["state"] = state
        env["error"] = obs.error or ""
        env["reason"] = obs.reason.value if obs.reason is not None else ""
        faults = binding.faults
        out: list[FaultTransition] = []
        now = -1.0
        for fault in faults:
            cond = fault.cond(env)
            if cond is None or not (cond or fault.active):
                continue  # unknown, or false while nothing is going on: the common case
            if now < 0:
                now = self._clock()
            self._step(fault, bool(cond), now, out)
        return out

    def _step(self, fault: FaultRecord, cond: bool, now: float, out: list[FaultTransition]) -> None:
        rule = fault.rule
        if cond:
            fault.false_streak, fault.false_since = 0, None
            if fault.state is FIRING:
                self._timed.discard(fault)
                return
            if fault.state is not PENDING:
                fault.true_streak, fault.since = 0, now
                fault.state, fault.active = PENDING, True
            fault.true_streak += 1
            if self._confirmed(fault, now):
                self._timed.discard(fault)
                self._change(fault, FIRING, now, out)
            else:
                if rule.for_seconds is not None:
                    self._timed.add(fault)
                self._publish(fault, now, out)
            return
        if fault.state is PENDING:
            fault.true_streak = 0
            self._timed.discard(fault)
            fault.state, fault.active = INACTIVE, False
            self._publish(fault, now, out)
        elif fault.state is FIRING:
            fault.false_streak += 1
            if fault.false_since is None:
                fault.false_since = now
            if self._clear_confirmed(fault, now):
                self._timed.discard(fault)
                self._change(fault, CLEARED, now, out)
            elif rule.clear_seconds is not None:
                self._timed.add(fault)

    @staticmethod
    def _confirmed(fault: FaultRecord, now: float) -> bool:
        rule = fault.rule
        return ((rule.for_polls is not None and fault.true_streak >= rule.for_polls)
                or (rule.for_seconds is not None and now - fault.since >= rule.for_seconds))

    @staticmethod
    def _clear_confirmed(fault: FaultRecord, now: float) -> bool:
        rule = fault.rule
        return ((rule.clear_polls is not None and fault.false_streak >= rule.clear_polls)
                or (rule.clear_seconds is not None and fault.false_since is not None
                    and now - fault.false_since >= rule.clear_seconds))

    def tick(self, now: float | None = None) -> list[FaultTransition]:
        """Time-driven changes: durations reached, flapping ended, silences started or
        ended.  Call it about once a second."""
        now = self._clock() if now is None else now
        out: list[FaultTransition] = []
        for fault in list(self._timed):
            if fault.state is PENDING and self._confirmed(fault, now):
                self._timed.discard(fault)
                self._change(fault, FIRING, now, out)
            elif fault.state is FIRING and self._clear_confirmed(fault, now):
                self._timed.discard(fault)
                self._change(fault, CLEARED, now, out)
        # All due ones leave the hold first, so they may explain each other as they fire.
        due = sorted((f for f in self._held if f.held_until is not None and now >= f.held_until),
                     key=lambda f: f.fp)
        for fault in due:
            self._held.discard(fault)
            fault.held_until = None
        for fault in due:
            if fault.state is FIRING and not fault.flapping:
                self._fire(fault, now, out, hold=False)
        for fault in list(self._flapping):
            if not fault.flips or now - fault.flips[-1] >= self.flap_window:
                self._flapping.discard(fault)
                fault.flapping = False
                fault.flips.clear()
                out.append(self._unstable(fault, CLEARED, now))
                if fault.state is FIRING:
                    self._fire(fault, now, out)
                else:
                    self._publish(fault, now, out)
        if self.silencer is not None:
            changed = self.silencer.version != self._silence_version
            if changed or (self._silence_next is not None and now >= self._silence_next):
                self._silence_version = self.silencer.version
                self._silence_next = self.silencer.next_change(now)
                for fault in sorted(self._firing, key=lambda f: f.fp):
                    self._publish(fault, now, out)
        return out

    # -- state changes and what is reported ------------------------------------------
    def _change(self, fault: FaultRecord, state: FaultState, now: float,
                out: list[FaultTransition]) -> None:
        fault.state, fault.active = state, state is FIRING
        flips = fault.flips
        flips.append(now)
        stale = 0
        while now - flips[stale] > self.flap_window:
            stale += 1
        if stale:
            del flips[:stale]
        if not fault.flapping and len(flips) > self.flap_transitions:
            fault.flapping = True
            self._flapping.add(fault)
            out.append(self._unstable(fault, FIRING, now))
            self._release(fault, now, out)
            return
        if fault.flapping:
            return
        if state is FIRING:
            self._fire(fault, now, out)
        elif fault in self._held and fault.rep_state is not FIRING:
            self._held.discard(fault)  # cleared before anyone was told it fired
            fault.held_until = None
        else:
            self._publish(fault, now, out)
            self._release(fault, now, out)

    def _find_root(self, fault: FaultRecord) -> FaultRecord | None:
        """The firing fault that explains ``fault``: on its own device or the nearest
        ancestor, followed up to that fault's own root."""
        cause = fault.rule.cause
        if cause is None:
            return None
        for device in self.topology.explainers(fault.device):
            dev = self._devices.get(device)
            if dev is None:
                continue
            for parent in dev.explaining.get(cause, ()):
                if (parent is fault or parent.state is not FIRING or parent.flapping
                        or parent in self._held):
                    continue
                root = parent.root or parent
                if root is not fault:
                    return root
        return None

    def _parent_failing(self, fault: FaultRecord) -> bool:
        """Whether a fault that could explain ``fault`` may be about to fire: a check
        that feeds it failed its last run, or it reads the device state and that state
        is failing.  A fault its device's observations never reach (an uplink rule on a
        device without ``uplink``) cannot be about to fire."""
        cause = fault.rule.cause
        if cause is None or self.hold_seconds <= 0:
            return False
        for device in self.topology.explainers(fault.device):
            dev = self._devices.get(device)
            if dev is None:
                continue
            for parent in dev.explaining.get(cause, ()):
                if parent is not fault and _may_fire(dev, parent):
                    return True
        return False

    @staticmethod
    def _attach(child: FaultRecord, root: FaultRecord | None, touched: set[FaultRecord]) -> None:
        if child.root is root:
            return
        if child.root is not None:
            child.root.affected.pop(child, None)
            touched.add(child.root)
        child.root = root
        if root is not None:
            root.affected[child] = None
            touched.add(root)

    def _fire(self, fault: FaultRecord, now: float, out: list[FaultTransition],
              hold: bool = True) -> None:
        """``fault`` fires: find what explains it, adopt the firing faults it explains,
        then report it, the parents whose ``affected`` changed, and the adopted ones."""
        root = self._find_root(fault)
        if root is None and hold and self._parent_failing(fault):
            fault.held_until = now + self.hold_seconds
            self._held.add(fault)
            return
        touched: set[FaultRecord] = set()
        self._attach(fault, root, touched)
        adopted: list[FaultRecord] = []
        if fault.rule.explains:
            for device in (fault.device, *self.topology.descendants(fault.device)):
                dev = self._devices.get(device)
                if dev is None:
                    continue
                for child in dev.faults.values():
                    if (child is fault or child.state is not FIRING or child.flapping
                            or child.rule.cause not in fault.rule.explains):
                        continue
                    root = self._find_root(child)
                    if root is not child.root:
                        self._attach(child, root, touched)
                        adopted.append(child)
        self._publish(fault, now, out)
        for root in sorted(touched - {fault}, key=lambda f: f.fp):
            self._publish(root, now, out)
        for child in adopted:
            self._publish(child, now, out)

    def _release(self, fault: FaultRecord, now: float, out: list[FaultTransition]) -> None:
        """``fault`` stopped firing (cleared, flapping, removed): it leaves its root,
        and what it explained is explained by another firing fault or stands alone."""
        touched: set[FaultRecord] = set()
        self._attach(fault, None, touched)
        children = sorted(fault.affected, key=lambda f: f.fp)
        for child in children:
            self._attach(child, None, touched)
        if fault.state is not FIRING and self.hold_seconds > 0:
            # Its root recovered; the child may be recovering too, a clear count behind
            # (a camera's stream after the camera).  What nothing else explains is held
            # and stands alone only if it still fires after the hold.
            orphans = set(children)
            for child in children:
                root = self._find_root(child)
                if child.state is FIRING and (root is None or root in orphans):
                    child.held_until = now + self.hold_seconds
                    self._held.add(child)
        for child in children:
            if child not in self._held:
                self._attach(child, self._find_root(child), touched)
        touched.discard(fault)
        for root in sorted(touched - self._held, key=lambda f: f.fp):
            self._publish(root, now, out)
        for child in children:
            if child not in self._held:
                self._publish(child, now, out)

    def _publish(self, fault: FaultRecord, now: float, out: list[FaultTransition],
                 summary: str | None = None) -> None:
        if fault.flapping:
            return
        if fault in self._held:
            self._held.discard(fault)  # adopted by a parent that just fired
            fault.held_until = None
        state = fault.state
        root, suppressed, affected = fault.rep_root, fault.rep_suppressed, fault.rep_affected
        if state is FIRING:
            root = fault.root.fp if fault.root is not None else None
            suppressed = self._mutes(fault, fault.rule.id)
            affected = tuple(sorted({c.device for c in fault.affected}))
        elif state is not CLEARED:
            root = suppressed = None
            affected = ()
        if (state is fault.rep_state and root == fault.rep_root
                and suppressed == fault.rep_suppressed and affected == fault.rep_affected):
            return
        spec, rule = fault.spec, fault.rule
        transition = FaultTransition(
            fingerprint=fault.fp, rule=rule.id, device=spec.id, site=spec.site,
            system=spec.system, kind=spec.kind, name_zh=rule.name_zh, name_en=rule.name_en,
            severity=rule.severity.value, previous=fault.rep_state, state=state, at=now,
            summary=self._summary(fault) if summary is None else summary,
            root_cause=root, affected=affected, suppressed_by=suppressed)
        fault.rep_state, fault.rep_root = state, root
        fault.rep_suppressed, fault.rep_affected = suppressed, affected
        fault.last = transition
        if state is FIRING:
            self._firing.add(fault)
        else:
            self._firing.discard(fault)
        out.append(transition)

    def _unstable(self, fault: FaultRecord, state: FaultState, now: float) -> FaultTransition:
        spec, rule = fault.spec, fault.rule
        previous, fault.unstable_state = fault.unstable_state, state
        return FaultTransition(
            fingerprint=fault.unstable_fp, rule=rule.id + UNSTABLE, device=spec.id,
            site=spec.site, system=spec.system, kind=spec.kind,
            name_zh=f"{rule.name_zh}（频繁变化）", name_en=f"{rule.name_en} (unstable)",
            severity=rule.severity.value, previous=previous, state=state, at=now,
            summary=f"{len(fault.flips)} changes within {self.flap_window:g}s",
            suppressed_by=self._mutes(fault, rule.id) if state is FIRING else None)

    def _mutes(self, fault: FaultRecord, rule: str) -> str | None:
        if self.silencer is None:
            return None
        spec = fault.spec
        return self.silencer.mutes({"site": spec.site, "device": spec.id,
                                    "system": spec.system, "kind": spec.kind, "rule": rule})

    def _summary(self, fault: FaultRecord) -> str:
        env = self._devices[fault.device].env if fault.device in self._devices else {}
        condition = fault.rule.condition
        names = sorted({*condition.names,
                        *(aggregate_key(f, family) for f, family in condition.aggregates)})
        shown = [f"{name}={bounded(str(env[name]), 64)}" for name in names if name in env]
        return bounded(f"{fault.rule.condition.text} ({', '.join(shown)})", 500)

    # -- views -----------------------------------------------------------------------
    def firing(self) -> list[FaultTransition]:
        """The last transition of every fault reported firing now."""
        return sorted((f.last for f in self._firing if f.last is not None),
                      key=lambda t: (t.site, t.device, t.rule))

    def state_of(self, device: str, rule: str) -> FaultState | None:
        dev = self._devices.get(device)
        fault = dev.faults.get(rule) if dev else None
        return fault.state if fault else None


def _may_fire(dev: DeviceRecord, fault: FaultRecord) -> bool:
    fed = [check for check, binding in dev.last.items() if fault in binding.faults]
    if not fed:
        return False
    if "state" in fault.rule.condition.names and dev.env.get("state") in FAILING:
        return True
    return any(dev.statuses.get(check) in FAILING for check in fed)
