"""ONVIF events push source: one PullPoint subscription per camera → Observations.

Config::

    devices:
      - id: cam-gate
        kind: camera
        host: 10.0.0.21
        credentials: cameras
        checks:
          - {type: onvif, interval: 60}
          - {type: onvif_events, interval: 60, params: {motion: false}}

Each ``onvif_events`` check gets a :class:`~elvwatch.probes.onvif_pullpoint.PullPoint`.  Its
notifications are classified (:mod:`elvwatch.probes.onvif_events`) and kept as conditions per
event source (a video source, a disk, a recording job), giving the values the built-in
rules read:

* ``onvif.tamper``, ``onvif.signal_loss``, ``onvif.storage_failure``,
  ``onvif.storage_full``: 1 while any source of that kind reports the condition, 0
  when it ended — and 0 when the camera never sent one only if it *advertises* that
  kind (GetEventProperties): a camera without a signal-loss topic reports no
  ``onvif.signal_loss`` at all rather than a reassuring 0.  Cameras send each
  property's current state, ``Initialized``, to a new subscription, so these values
  are left out — unknown — until the first PullMessages of each subscription
  answered (``PullPoint.primed``).  A camera that cannot say what it advertises
  reports only the kinds it sent events of.  ``onvif.events_watched`` lists the kinds
  reported;
* a pulse event (no PropertyOperation: Hikvision's disk errors) holds its condition
  for ``pulse_hold_seconds`` after the last one;
* ``onvif.recordings_stopped``: recording jobs configured Active whose last JobState
  event says they are not recording (PartiallyActive included: the same meaning as the
  onvif check's poll) — only once such an event arrived, so it never contradicts the
  poll's job count with a made-up 0;
* ``ImageTooDark`` is tamper only with ``too_dark_is_tamper``;
* ``onvif.motion`` only with ``motion: true``;
* ``onvif.events_subscribed``: 1 while the subscription works.

An observation is emitted when an event arrives, when the subscription changes state,
and every ``interval`` otherwise.  While the subscription is not working the check
is ``down`` (error from the failure: unreachable…, authentication…) and carries no
condition values: a fault stays as it was until the camera can tell us again.  The
conditions are kept across a resubscribe (not reset): the camera's Initialized
messages then confirm or end each one, so a fault still active does not clear and
fire again.  A condition active makes the check ``degraded``.

Counters per event type (:meth:`OnvifEventSource.stats`) become
``elvwatch_onvif_events_received_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import BaseModel

from elvwatch.probes.base import (
    Check,
    Credential,
    Observation,
    Status,
    Target,
    Value,
    bounded,
    check_options,
)
from elvwatch.probes.onvif_event_options import OnvifEventsOptions
from elvwatch.probes.onvif_events import Notification, classify, is_problem, is_pulse, topic_kind
from elvwatch.probes.onvif_pullpoint import PullPoint, PullPointState
from elvwatch.probes.onvif_topics import AdvertisedTopic

Emit = Callable[[Observation], None]
CONDITIONS = ("tamper", "signal_loss", "storage_failure", "storage_full")
# Sources remembered per condition kind: a camera has a handful of video sources and
# an NVR a few dozen channels/disks; the cap bounds what a misbehaving device costs.
MAX_SOURCES = 128
# How often heartbeats are checked; an observation's interval is met within this.
SWEEP_SECONDS = 1.0
# A daemon start with 1,000 cameras subscribes this many at a time: each subscribe
# is ~6 SOAP exchanges, and all at once would stall the event loop and the cameras'
# small web servers on a shared uplink.
SUBSCRIBE_CONCURRENCY = 32


class OnvifEventStats(NamedTuple):
    """One camera's subscription, for ``elvwatch_onvif_*`` metrics."""

    device: str
    site: str
    system: str
    kind: str
    check: str
    state: str
    received: Mapping[str, int]     # events by type (tamper, …, motion, other)
    subscribes: int
    renewals: int
    lost: int
    pulls: int = 0


@dataclass(slots=True)
class _Watch:
    target: Target
    check: Check
    options: OnvifEventsOptions
    port: int
    pullpoint: PullPoint | None = None
    active: dict[str, dict[str, bool]] = field(default_factory=dict)  # kind → source → on
    pulses: dict[str, dict[str, float]] = field(default_factory=dict)  # kind → source → until
    received: Counter[str] = field(default_factory=Counter)
    next_emit: float = 0.0


class OnvifEventSource:
    def __init__(self, credentials: Mapping[str, Credential], emit: Emit, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._clock = clock
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._gate = asyncio.Semaphore(SUBSCRIBE_CONCURRENCY)
        self._sweeper: asyncio.Task[None] | None = None

    # -- PushManager -------------------------------------------------------------------
    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="onvif events")

    async def update(self, targets: Sequence[tuple[Target, Check]]) -> None:
        fresh: dict[tuple[str, str], _Watch] = {}
        for target, check in targets:
            options = check_options(check, OnvifEventsOptions)
            port = check.port or options.port or target.ports.get("onvif") or 80
            key = (target.device, check.name)
            old = self._watches.pop(key, None)
            if old is not None and (old.target, old.options, old.port) == \
                    (target, options, port):
                old.check = check
                fresh[key] = old
                continue
            if old is not None and old.pullpoint is not None:
                await old.pullpoint.stop()
            watch = _Watch(target, check, options, port,
                           next_emit=self._clock() + check.interval)
            watch.pullpoint = PullPoint(target, port, options,
                                        functools.partial(self._changed, watch),
                                        functools.partial(self._received, watch),
                                        gate=self._gate)
            fresh[key] = watch
        gone, self._watches = self._watches, fresh
        await asyncio.gather(*(w.pullpoint.stop() for w in gone.values() if w.pullpoint))
        for watch in fresh.values():
            if watch.pullpoint is not None:
                watch.pullpoint.start()

    async def stop(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        watches, self._watches = self._watches, {}
        await asyncio.gather(*(w.pullpoint.stop() for w in watches.values() if w.pullpoint))

    # -- counters ----------------------------------------------------------------------
    def stats(self) -> list[OnvifEventStats]:
        out = []
        for (device, check), w in sorted(self._watches.items()):
            p = w.pullpoint
            assert p is not None
            t = w.target
            out.append(OnvifEventStats(device, t.site, t.system, t.kind, check,
                                       p.state.value, dict(w.received), p.subscribes,
                                       p.renewals, p.lost, p.pulls))
        return out

    def pullpoint(self, device: str, check: str) -> PullPoint | None:
        watch = self._watches.get((device, check))
        return watch.pullpoint if watch is not None else None

    # -- events ------------------------------------------------------------------------
    def _received(self, watch: _Watch, pullpoint: PullPoint, note: Notification) -> None:
        raw = classify(note)
        watch.received[raw or "other"] += 1
        kind = _watched_kind(raw, watch.options)
        if kind is None or not _job_of_interest(kind, note, pullpoint):
            return
        problem = is_problem(kind, note)
        key = bounded(",".join(f"{k}={v}" for k, v in sorted(note.source.items())), 200)
        if is_pulse(note):
            # It happened (True, or no state at all): held; a pulse saying it ended
            # ends it.
            pulses = watch.pulses.setdefault(kind, {})
            if problem is False:
                pulses.pop(key, None)
            elif key in pulses or len(pulses) < MAX_SOURCES:
                pulses[key] = self._clock() + watch.options.pulse_hold_seconds
        else:
            if note.operation.lower() == "deleted":
                problem = False   # the property is gone, and its condition with it
            if problem is None:
                return
            sources = watch.active.setdefault(kind, {})
            if key in sources or len(sources) < MAX_SOURCES:
                sources[key] = problem
        if pullpoint.primed:
            self._send(watch)     # else the first answer's Initialized burst is read whole

    def _changed(self, watch: _Watch, _pullpoint: PullPoint) -> None:
        self._send(watch)

    def _send(self, watch: _Watch) -> None:
        now = self._clock()
        watch.next_emit = now + watch.check.interval
        self._emit(observe(watch, now))

    def sweep(self) -> int:
        """Emit every check whose interval has passed or whose pulse ran out; returns
        how many."""
        now = self._clock()
        due = [w for w in self._watches.values() if (now >= w.next_emit or _expired(w, now))
               and w.pullpoint is not None and w.pullpoint.state is not PullPointState.STOPPED]
        for watch in due:
            self._send(watch)
        return len(due)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()


def _watched_kind(raw: str | None, options: OnvifEventsOptions) -> str | None:
    if raw == "too_dark":
        return "tamper" if options.too_dark_is_tamper else None
    if raw == "motion" and not options.motion:
        return None
    return raw


def _job_of_interest(kind: str, note: Notification, pullpoint: PullPoint) -> bool:
    """JobState events of a job configured Idle (a channel switched off on purpose)
    are not stopped recordings; the poll does not count them either."""
    jobs = pullpoint.active_jobs
    if kind != "recording" or jobs is None:
        return True
    tokens = {k.lower(): v for k, v in note.source.items()}
    token = tokens.get("recordingjobtoken") or tokens.get("recordingtoken")
    return token is None or token in jobs


def _expired(watch: _Watch, now: float) -> bool:
    """Drop pulses that ran out; True if any did (the values change)."""
    gone = False
    for pulses in watch.pulses.values():
        for key in [k for k, until in pulses.items() if until <= now]:
            del pulses[key]
            gone = True
    return gone


def advertised_kinds(topics: list[AdvertisedTopic] | None,
                     options: OnvifEventsOptions) -> set[str] | None:
    """The kinds a camera can report, from its advertised topics (None: unknown)."""
    if topics is None:
        return None
    kinds = {_watched_kind(topic_kind(t.topic), options) for t in topics}
    return {k for k in kinds if k is not None}


def observe(watch: _Watch, now: float) -> Observation:
    target, check, pullpoint = watch.target, watch.check, watch.pullpoint
    state = pullpoint.state if pullpoint is not None else PullPointState.STOPPED
    if pullpoint is None or state is not PullPointState.STARTED:
        error = (pullpoint.error if pullpoint is not None else None) or "not subscribed"
        return Observation(target.device, check.name, Status.DOWN,
                           values={"onvif.events_subscribed": 0.0}, error=bounded(error))
    values: dict[str, Value] = {"onvif.events_subscribed": 1.0}
    # Until the camera answered the subscription's first pull (its Initialized state),
    # the condition values are unknown; status and error show what was last known.
    known = pullpoint.primed
    advertised = advertised_kinds(pullpoint.advertised, watch.options)
    problems: list[str] = []
    watched: list[str] = []
    kinds = [*CONDITIONS, *(["motion"] if watch.options.motion else [])]
    for kind in kinds:
        on = [source for source, flag in watch.active.get(kind, {}).items() if flag]
        on += [source for source, until in watch.pulses.get(kind, {}).items() if until > now]
        heard = kind in watch.active or kind in watch.pulses
        if known and (heard or (advertised is not None and kind in advertised)):
            values[f"onvif.{kind}"] = 1.0 if on else 0.0
            watched.append(kind)
        if on and kind != "motion":
            problems.append(f"{kind.replace('_', ' ')} ({', '.join(on[:4])})")
    if "recording" in watch.active:
        stopped = [source for source, flag in watch.active["recording"].items() if flag]
        if known:
            values["onvif.recordings_stopped"] = float(len(stopped))
            watched.append("recording")
        if stopped:
            problems.append(f"recording stopped ({', '.join(stopped[:4])})")
    if known:
        values["onvif.events_watched"] = " ".join(watched) or "none"
    status = Status.DEGRADED if problems else Status.OK
    return Observation(target.device, check.name, status, values,
                       error=bounded("; ".join(problems)) if problems else None)


def onvif_events_source(settings: BaseModel | None, credentials: Mapping[str, Credential],
                        emit: Emit) -> OnvifEventSource:
    """The registry's factory for ``type: onvif_events`` (no ``sources`` settings)."""
    return OnvifEventSource(credentials, emit)
