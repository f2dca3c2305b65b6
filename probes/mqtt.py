"""MQTT push source: devices and bridges that publish their state to a broker.

Config::

    sources:
      mqtt:
        brokers:
          site_a: {host: 10.0.0.5, port: 8883, tls: true, credentials: mqtt_a}
        queue_size: 10000
    devices:
      - id: door-3
        checks:
          - type: mqtt
            params: {broker: site_a, topic: "site/+/door/3/state", max_age: 300}

One :class:`~probes.mqtt_broker.BrokerConnection` per broker in use; every message is
routed by topic (a filter trie) to the checks whose topics match, parsed as the check's
profile says (:mod:`probes.mqtt_profiles`), and turned into an Observation at once.
A periodic sweep re-emits every check once per its interval and reports a check
``down`` with ``stale: no message for Ns`` as soon as its freshness topics have been
silent longer than ``max_age``.

Counters for metrics: :meth:`MqttManager.broker_stats` (one :class:`BrokerStats` per
broker) — received, dropped (queue full), rejected by reason, unmatched, connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import BaseModel

from probes.base import (
    Check,
    Credential,
    Observation,
    Status,
    Target,
    Value,
    bounded,
    check_options,
)
from probes.mqtt_broker import BrokerConnection, SourceState
from probes.mqtt_profiles import (
    Path,
    Rejected,
    TopicSpec,
    TopicTrie,
    ValueSpec,
    as_number,
    as_word,
    compile_path,
    decode_json,
    decode_text,
    parse_scalar,
    render,
    walk,
)
from probes.mqtt_settings import MqttCheckOptions, MqttSettings

__all__ = ["BrokerStats", "MqttCheckOptions", "MqttManager", "MqttSettings", "mqtt_source"]

log = logging.getLogger(__name__)

Emit = Callable[[Observation], None]
# A rejected payload is logged at most once per check and reason in this window; the
# counters have every one.
REJECT_LOG_SECONDS = 60.0
# Topic → routes cache; cleared on update and when full (a broker with endlessly many
# distinct topics must not grow it without bound).
ROUTE_CACHE_SIZE = 50_000


class BrokerStats(NamedTuple):
    """One broker's counters, for ``elvwatch_mqtt_*`` metrics."""

    broker: str
    state: str
    connected: bool
    received: int
    dropped: int
    rejected: Mapping[str, int]
    unmatched: int
    connects: int
    queue_depth: int


@dataclass(slots=True)
class _Watch:
    """What the source knows about one (device, check)."""

    target: Target
    check: Check
    options: MqttCheckOptions
    since: float
    values: dict[str, Value] = field(default_factory=dict)
    faults: dict[str, tuple[Status, str]] = field(default_factory=dict)
    online: bool | None = None
    last_fresh: float | None = None
    next_emit: float = 0.0
    stale: bool = False
    last_reject_log: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Route:
    watch: _Watch
    spec: TopicSpec
    values: tuple[tuple[ValueSpec, Path | None], ...]
    availability_path: Path | None


class MqttManager:
    def __init__(self, settings: MqttSettings | None, credentials: Mapping[str, Credential],
                 emit: Emit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or MqttSettings()
        self._credentials = credentials
        self._emit = emit
        self._clock = clock
        self.state = SourceState.STOPPED
        self.brokers: dict[str, BrokerConnection] = {}
        self.rejected: dict[str, Counter[str]] = {}
        self.unmatched: Counter[str] = Counter()
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._tries: dict[str, TopicTrie[_Route]] = {}
        self._route_cache: dict[str, dict[str, list[_Route]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- PushManager -------------------------------------------------------------------
    async def start(self) -> None:
        self.state = SourceState.STARTED
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="mqtt freshness")

    async def update(self, targets: Sequence[tuple[Target, Check]]) -> None:
        now = self._clock()
        watches: dict[tuple[str, str], _Watch] = {}
        tries: dict[str, TopicTrie[_Route]] = {}
        filters: dict[str, dict[str, int]] = {}
        for target, check in targets:
            options = check_options(check, MqttCheckOptions)
            broker = self._broker_for(options)
            key = (target.device, check.name)
            old = self._watches.get(key)
            watch = old if old is not None and old.options == options and \
                old.target == target else _Watch(target, check, options, since=now,
                                                 next_emit=now + check.interval)
            watch.check = check
            if broker is None:
                self._emit(Observation(target.device, check.name, Status.UNKNOWN,
                                       error=self._broker_problem(options)))
                continue
            watches[key] = watch
            trie = tries.setdefault(broker, TopicTrie())
            wanted = filters.setdefault(broker, {})
            for route in _routes(watch):
                trie.add(route.spec.topic, route)
                wanted[route.spec.topic] = max(wanted.get(route.spec.topic, 0), options.qos)
        self._watches, self._tries = watches, tries
        self._route_cache = {}
        for name in [n for n in self.brokers if n not in filters]:
            await self.brokers.pop(name).stop()
        for name, wanted_filters in filters.items():
            connection = self.brokers.get(name)
            if connection is None:
                connection = BrokerConnection(
                    name, self.settings.brokers[name], self._credentials,
                    functools.partial(self.handle, name),
                    queue_size=self.settings.queue_size,
                    backoff_min=self.settings.reconnect_min_seconds,
                    backoff_max=self.settings.reconnect_max_seconds)
                self.brokers[name] = connection
                connection.filters = wanted_filters
                connection.start()
            else:
                await connection.set_filters(wanted_filters)

    async def stop(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await asyncio.gather(*(c.stop() for c in self.brokers.values()))
        self.state = SourceState.STOPPED

    # -- counters ----------------------------------------------------------------------
    def broker_stats(self) -> list[BrokerStats]:
        return [BrokerStats(name, c.state.value, c.connected, c.received, c.dropped,
                            dict(self.rejected.get(name, {})), self.unmatched[name],
                            c.connects, c.queue_depth)
                for name, c in sorted(self.brokers.items())]

    # -- messages ----------------------------------------------------------------------
    def handle(self, broker: str, topic: str, payload: bytes) -> None:
        """Route one message to its checks and emit their observations."""
        cache = self._route_cache.setdefault(broker, {})
        routes = cache.get(topic)
        if routes is None:
            trie = self._tries.get(broker)
            routes = trie.match(topic) if trie is not None else []
            if len(cache) >= ROUTE_CACHE_SIZE:
                cache.clear()
            cache[topic] = routes
        if not routes:
            self.unmatched[broker] += 1
            return
        now = self._clock()
        if len(payload) > self.settings.max_payload:
            for route in routes:
                self._reject(broker, route.watch, Rejected(
                    "too_large", f"{len(payload)} bytes > {self.settings.max_payload}"), now)
            return
        parsed: _Payload | None = None
        for route in routes:
            try:
                if parsed is None:
                    parsed = _Payload(decode_text(payload))
                self._apply(route, parsed, now)
            except Rejected as exc:
                self._reject(broker, route.watch, exc, now)
                continue
            watch = route.watch
            watch.next_emit = now + watch.check.interval
            self._emit(_observe(watch, now))

    def _apply(self, route: _Route, payload: _Payload, now: float) -> None:
        watch, spec = route.watch, route.spec
        if spec.role == "availability":
            if route.availability_path is not None and payload.text.startswith("{"):
                word = as_word(walk(payload.json(), route.availability_path))
            else:
                word = payload.text.lower()
            if word in spec.online:
                watch.online = True
            elif word in spec.offline:
                watch.online = False
            else:
                raise Rejected("wrong_type", "not an online/offline word")
            return
        new: dict[str, float] = {}
        for value_spec, path in route.values:
            try:
                raw = walk(payload.json(), path) if path is not None else payload.scalar()
            except Rejected as exc:
                if value_spec.optional and exc.reason == "missing_path":
                    continue
                raise
            number = as_number(raw, value_spec.map)
            new[value_spec.name] = 1.0 - number if value_spec.invert else number
        # Apply only a payload that parsed in full: never half a message.
        for value_spec, _ in route.values:
            if value_spec.name not in new:
                continue
            number = new[value_spec.name]
            watch.values[value_spec.name] = number
            reason = value_spec.fault(number)
            if reason is None:
                watch.faults.pop(value_spec.name, None)
            else:
                watch.faults[value_spec.name] = (Status(value_spec.fault_status), reason)
        watch.last_fresh = now

    def _reject(self, broker: str, watch: _Watch, exc: Rejected, now: float) -> None:
        self.rejected.setdefault(broker, Counter())[exc.reason] += 1
        if now - watch.last_reject_log.get(exc.reason, -REJECT_LOG_SECONDS) >= \
                REJECT_LOG_SECONDS:
            watch.last_reject_log[exc.reason] = now
            log.warning("mqtt %s/%s: payload rejected (%s: %s)", watch.target.device,
                        watch.check.name, exc.reason, bounded(exc.detail, 120))

    # -- freshness ---------------------------------------------------------------------
    def sweep(self) -> int:
        """Emit every check that is due or has just gone stale; returns how many."""
        now = self._clock()
        emitted = 0
        for watch in list(self._watches.values()):
            max_age = watch.options.max_age
            stale = max_age is not None and now - (watch.last_fresh or watch.since) > max_age
            if stale != watch.stale or now >= watch.next_emit:
                watch.next_emit = now + watch.check.interval
                self._emit(_observe(watch, now))
                emitted += 1
        return emitted

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)
            self.sweep()

    # -- helpers -----------------------------------------------------------------------
    def _broker_for(self, options: MqttCheckOptions) -> str | None:
        brokers = self.settings.brokers
        if options.broker is None:
            return next(iter(brokers)) if len(brokers) == 1 else None
        return options.broker if options.broker in brokers else None

    def _broker_problem(self, options: MqttCheckOptions) -> str:
        known = ", ".join(sorted(self.settings.brokers)) or "none"
        if options.broker is None:
            return f"mqtt: name the broker (sources.mqtt.brokers: {known})"
        return f"mqtt: unknown broker {options.broker!r} (sources.mqtt.brokers: {known})"


class _Payload:
    """One message's text, parsed at most once as JSON and once as a scalar."""

    __slots__ = ("_json", "_scalar", "text")

    _UNSET: object = object()

    def __init__(self, text: str) -> None:
        self.text = text
        self._json: object = self._UNSET
        self._scalar: object = self._UNSET

    def json(self) -> object:
        if self._json is self._UNSET:
            self._json = decode_json(self.text)
        return self._json

    def scalar(self) -> object:
        if self._scalar is self._UNSET:
            self._scalar = parse_scalar(self.text)
        return self._scalar




def _fields(watch: _Watch) -> dict[str, str]:
    t, o = watch.target, watch.options
    return {"base": o.topic, "key": o.key or t.device, "device": t.device, "site": t.site,
            "host": t.host}


def _routes(watch: _Watch) -> list[_Route]:
    fields = _fields(watch)
    fields["base"] = render(watch.options.topic, fields)
    out = []
    for spec in watch.options.resolved_profile().topics:
        values = tuple((v, compile_path(render(v.json_path, fields)) if v.json_path else None)
                       for v in spec.values)
        avail = compile_path(render(spec.json_path, fields)) if spec.json_path else None
        topic = render(spec.topic, fields)
        out.append(_Route(watch, spec.model_copy(update={"topic": topic}), values, avail))
    return out


def _observe(watch: _Watch, now: float) -> Observation:
    values: dict[str, Value] = dict(watch.values)
    if watch.online is not None:
        values["mqtt.online"] = 1.0 if watch.online else 0.0
    if watch.last_fresh is not None:
        values["mqtt.age_seconds"] = round(now - watch.last_fresh, 3)
    silence = now - (watch.last_fresh or watch.since)
    max_age = watch.options.max_age
    watch.stale = max_age is not None and silence > max_age
    status, error = Status.OK, None
    if watch.online is False:
        status, error = Status.DOWN, "offline (availability topic)"
    elif watch.stale:
        status, error = Status.DOWN, f"stale: no message for {silence:.0f}s"
    elif watch.last_fresh is None and watch.online is None:
        status, error = Status.UNKNOWN, "no message received yet"
    elif watch.faults:
        faults = sorted(watch.faults.values(), key=lambda f: -f[0].badness)
        status, error = faults[0][0], bounded("; ".join(r for _, r in faults))
    return Observation(watch.target.device, watch.check.name, status, values, error=error)


def mqtt_source(settings: BaseModel | None, credentials: Mapping[str, Credential],
                emit: Emit) -> MqttManager:
    """The registry's factory for ``type: mqtt``."""
    if settings is not None and not isinstance(settings, MqttSettings):
        raise TypeError(f"mqtt settings must be MqttSettings, not {type(settings).__name__}")
    return MqttManager(settings, credentials, emit)
