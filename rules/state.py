"""Device state from check observations, with confirmation counts.

A check counts as failing once ``down_after`` consecutive runs failed, and as good
again after ``up_after`` consecutive good runs; a single lost ping does not flip a
device.  A device's state is built from its checks' confirmed states:

* ``unknown``  — no check has a result yet;
* ``up``       — every confirmed check is ok;
* ``down``     — every confirmed check is down;
* ``degraded`` — some checks fail, others pass.

Each change of device state is a :class:`StateTransition`, the record availability
reports are computed from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from elvwatch.probes.base import Observation, Status


class DeviceState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StateTransition:
    device: str
    previous: DeviceState
    state: DeviceState
    at: float
    cause: str


@dataclass(slots=True)
class CheckState:
    """Confirmed state of one check and the streak that may change it."""

    confirmed: Status = Status.UNKNOWN
    streak_status: Status = Status.UNKNOWN
    streak: int = 0
    last: Observation | None = None
    since: float | None = None


@dataclass(slots=True)
class DeviceStatus:
    device: str
    state: DeviceState = DeviceState.UNKNOWN
    since: float | None = None
    cause: str = ""
    checks: dict[str, CheckState] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)


class ChangeLog:
    """Which devices changed state, in order, for readers that keep views of the states
    (the web side's device index): a reader remembers the ``(epoch, seq)`` it has read
    up to and asks what changed since, instead of walking every device on every read.

    A new device set (a reload) starts a new epoch; a reader of an older epoch, or one
    so far behind that the log no longer holds its place, is told to rebuild (None)."""

    # Device ids kept (twice this at most before the oldest half goes): at 20,000
    # devices the first round of checks writes 20,000 entries.
    KEEP = 65_536

    __slots__ = ("_base", "_recent", "epoch", "seq")

    def __init__(self) -> None:
        self.epoch = 0
        self.seq = 0
        self._base = 0  # seq before _recent[0]
        self._recent: list[str] = []

    def note(self, device: str) -> None:
        self.seq += 1
        self._recent.append(device)
        if len(self._recent) >= 2 * self.KEEP:
            del self._recent[:self.KEEP]
            self._base += self.KEEP

    def new_epoch(self) -> None:
        self.epoch += 1
        self._base, self._recent = self.seq, []

    def since(self, epoch: int, seq: int) -> list[str] | None:
        """Devices changed after ``seq`` of ``epoch`` (repeats possible), or None."""
        if epoch != self.epoch or seq < self._base or seq > self.seq:
            return None
        return self._recent[seq - self._base:]


class StateTracker:
    """Keeps every device's confirmed state; ``observe`` returns the transition, if any."""

    def __init__(self, down_after: int = 3, up_after: int = 1) -> None:
        self.down_after = down_after
        self.up_after = up_after
        self.devices: dict[str, DeviceStatus] = {}
        self.changes = ChangeLog()

    def configure(self, devices: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Set the devices and their check names; keeps the state of those that stay."""
        fresh: dict[str, DeviceStatus] = {}
        for device, checks in devices:
            status = self.devices.get(device) or DeviceStatus(device)
            status.checks = {name: status.checks.get(name) or CheckState() for name in checks}
            fresh[device] = status
        self.devices = fresh
        self.changes.new_epoch()

    def restore(self, device: str, state: DeviceState, since: float, cause: str) -> None:
        """Take the state persisted before a restart as the starting point."""
        status = self.devices.get(device)
        if status is not None and status.state is DeviceState.UNKNOWN:
            status.state, status.since, status.cause = state, since, cause
            self.changes.note(device)

    def observe(self, obs: Observation) -> StateTransition | None:
        status = self.devices.get(obs.device)
        if status is None:
            return None  # the device left the config while its check ran
        check = status.checks.get(obs.check)
        if check is None:
            return None
        check.last = obs
        if obs.info:
            status.info.update(obs.info)
        if obs.status is check.streak_status:
            check.streak += 1
        else:
            check.streak_status, check.streak = obs.status, 1
        needed = self.up_after if obs.status is Status.OK else self.down_after
        # The first result of a check is taken at once: "unknown" tells nobody anything.
        confirm = check.confirmed is Status.UNKNOWN or check.streak >= needed
        if confirm and check.confirmed is not obs.status:
            check.confirmed, check.since = obs.status, obs.time
        return self._update_device(status, obs)

    def _update_device(self, status: DeviceStatus, obs: Observation) -> StateTransition | None:
        confirmed = [c.confirmed for c in status.checks.values()]
        known = [s for s in confirmed if s is not Status.UNKNOWN]
        if not known:
            new = DeviceState.UNKNOWN
        elif all(s is Status.OK for s in known):
            new = DeviceState.UP
        elif all(s is Status.DOWN for s in known):
            new = DeviceState.DOWN
        else:
            new = DeviceState.DEGRADED
        if new is status.state:
            return None
        cause = _cause(status)
        transition = StateTransition(status.device, status.state, new, obs.time, cause)
        status.state, status.since, status.cause = new, obs.time, cause
        self.changes.note(status.device)
        return transition


def _cause(status: DeviceStatus) -> str:
    failing = [
        f"{name}: {c.last.error or c.confirmed.value}"
        for name, c in status.checks.items()
        if c.confirmed not in (Status.OK, Status.UNKNOWN) and c.last is not None
    ]
    return "; ".join(failing)[:500] if failing else "all checks ok"
