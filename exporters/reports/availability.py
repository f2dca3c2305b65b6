"""Equipment operation record (设备运行情况记录): availability per device per period.

Computed exactly from the stored state transitions and the state each device was in
when the period began (its last transition before the start).  Definitions:

* ``up`` and ``degraded`` time is available (a degraded NVR still records), ``down``
  time is not; ``unknown`` time (no check result yet, e.g. after a restart) is left out
  of the denominator rather than counted either way:
  ``availability % = 100 × (up + degraded) / (up + degraded + down)``, None when the
  device has no known time in the period.
* A device counts only while it is in the archive: from ``first_seen`` (added to the
  config) until ``removed_at``; time outside is ``not_in_service`` and excluded too.
* ``down_episodes``: episodes of ``down`` overlapping the period — one already down at
  the start counts, as does each change into ``down`` within it; an episode crossing a
  month boundary therefore counts in both months.
* ``tickets``: tickets opened in the period naming the device (its own or affected).
* ``as_of`` (the moment the report is made) ends a period still running: the rest of
  the current month is not yet known and is in no bucket, rather than counted as the
  state the device is in now.

Arithmetic is in integer microseconds (the store's precision), so sums are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import or_, select

from elvwatch.exporters.reports.labels import Label
from elvwatch.exporters.reports.periods import Period
from elvwatch.rules.state import DeviceState
from elvwatch.tickets.schema import TicketDeviceRow, TicketRow
from elvwatch.tickets.store import DeviceRow, Store, TransitionRow

Progress = Callable[[int, int], None]
_US = 1_000_000


def _us(seconds: float) -> int:
    return round(seconds * _US)


@dataclass(frozen=True, slots=True)
class DeviceAvailability:
    device: str
    name: str | None
    system: str
    location: str | None
    period: Period
    up_s: float
    degraded_s: float
    down_s: float
    unknown_s: float
    not_in_service_s: float
    down_at_start: bool
    down_episodes: int
    fault_tickets: int
    tickets: tuple[str, ...]

    @property
    def available_s(self) -> float:
        return (_us(self.up_s) + _us(self.degraded_s)) / _US

    @property
    def known_s(self) -> float:
        return (_us(self.up_s) + _us(self.degraded_s) + _us(self.down_s)) / _US

    @property
    def availability(self) -> float | None:
        known = _us(self.known_s)
        return None if known == 0 else 100.0 * _us(self.available_s) / known


@dataclass(frozen=True, slots=True)
class AvailabilityReport:
    site: str
    periods: tuple[Period, ...]
    rows: tuple[DeviceAvailability, ...]   # by period, then device id
    labels: dict[str, Label] = field(default_factory=dict)

    def for_period(self, period: Period) -> list[DeviceAvailability]:
        return [r for r in self.rows if r.period == period]


@dataclass(frozen=True, slots=True)
class Tally:
    up_us: int
    degraded_us: int
    down_us: int
    unknown_us: int
    not_in_service_us: int
    down_at_start: bool
    down_episodes: int


def tally(initial: DeviceState, changes: Sequence[tuple[float, DeviceState]],
          start: float, end: float, present_from: float, present_to: float | None) -> Tally:
    """Time per state in [start, end) for a device that was in ``initial`` at ``start``
    and then changed at each (time, new state) of ``changes`` (time order); only the
    part of the period within [present_from, present_to) counts."""
    lo, hi = _us(start), _us(end)
    live_from = max(lo, _us(present_from))
    live_to = hi if present_to is None else min(hi, _us(present_to))
    totals = {s: 0 for s in DeviceState}
    state, at = initial, lo
    episodes, down_at_start = 0, False
    for when, new in [*((_us(t), s) for t, s in changes), (hi, None)]:
        when = min(max(when, lo), hi)
        seg_from, seg_to = max(at, live_from), min(when, live_to)
        if seg_to > seg_from:
            totals[state] += seg_to - seg_from
            if state is DeviceState.DOWN and seg_from == live_from:
                down_at_start = True
        if new is None:
            break
        # A change into down exactly at live_from is the down_at_start episode.
        if new is DeviceState.DOWN and state is not DeviceState.DOWN and \
                live_from < when < live_to:
            episodes += 1
        state, at = new, when
    if down_at_start:
        episodes += 1
    present = max(0, live_to - live_from)
    return Tally(totals[DeviceState.UP], totals[DeviceState.DEGRADED],
                 totals[DeviceState.DOWN], totals[DeviceState.UNKNOWN],
                 (hi - lo) - present, down_at_start, episodes)


async def availability_report(store: Store, site: str, periods: Sequence[Period], *,
                              progress: Progress | None = None,
                              as_of: float | None = None) -> AvailabilityReport:
    """The operation record of every device of ``site`` in the archive during the
    periods (removed ones too: the record covers the time they were there)."""
    if not periods:
        return AvailabilityReport(site, (), ())
    first, last = periods[0].start, periods[-1].end
    begin, finish = _dt(first), _dt(last)
    async with store.transaction("read the archive") as session:
        devices = list(await session.scalars(
            select(DeviceRow).where(DeviceRow.site == site, DeviceRow.first_seen < finish,
                                    or_(DeviceRow.removed_at.is_(None),
                                        DeviceRow.removed_at > begin))
            .order_by(DeviceRow.id)))
        ticket_rows = (await session.execute(
            select(TicketRow.number, TicketRow.kind, TicketRow.opened_at, TicketRow.device,
                   TicketDeviceRow.device)
            .outerjoin(TicketDeviceRow, TicketDeviceRow.ticket_id == TicketRow.id)
            .where(TicketRow.site == site, TicketRow.opened_at >= begin,
                   TicketRow.opened_at < finish))).all()
    tickets: dict[str, dict[str, tuple[str, float]]] = {}
    for number, kind, opened, primary, listed in ticket_rows:
        for named in {primary, listed}:
            if named is not None:
                tickets.setdefault(named, {})[number] = (kind, opened.timestamp())
    rows: list[DeviceAvailability] = []
    for done, device in enumerate(devices, 1):
        initial = await _state_before(store, device.id, begin)
        changes = [(t.at, t.state) for t in await store.transitions(device.id, begin, finish)]
        state = initial
        for period in periods:
            inside = [c for c in changes if period.start <= c[0] < period.end]
            end = period.end if as_of is None else max(period.start, min(period.end, as_of))
            t = tally(state, inside, period.start, end, device.first_seen.timestamp(),
                      None if device.removed_at is None else device.removed_at.timestamp())
            if inside:
                state = inside[-1][1]
            own = sorted((n, k) for n, (k, at) in tickets.get(device.id, {}).items()
                         if period.start <= at < period.end)
            rows.append(DeviceAvailability(
                device.id, device.name, device.system, device.location, period,
                t.up_us / _US, t.degraded_us / _US, t.down_us / _US, t.unknown_us / _US,
                t.not_in_service_us / _US, t.down_at_start, t.down_episodes,
                sum(1 for _, k in own if k == "fault"), tuple(n for n, _ in own)))
        if progress is not None:
            progress(done, len(devices))
    rows.sort(key=lambda r: (r.period.start, r.device))
    labels = {d.id: Label(d.name, d.kind, d.location) for d in devices}
    return AvailabilityReport(site, tuple(periods), tuple(rows), labels)


async def _state_before(store: Store, device: str, moment: datetime) -> DeviceState:
    async with store.transaction("read the state history") as session:
        state = await session.scalar(
            select(TransitionRow.state)
            .where(TransitionRow.device_id == device, TransitionRow.at < moment)
            .order_by(TransitionRow.at.desc(), TransitionRow.id.desc()).limit(1))
    return DeviceState.UNKNOWN if state is None else DeviceState(state)


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
