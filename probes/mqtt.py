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

One :class:`~elvwatch.probes.mqtt_broker.BrokerConnection` per broker in use; every message is
routed by topic (a filter trie) to the checks whose topics match, parsed as the check's
profile says (:mod:`elvwatch.probes.mqtt_profiles`), and turned into an Observation at once.
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
from typing import NamedTuple

from pydantic import BaseModel

from elvwatch.probes.base import (
    Check,
    Credential,
    Observation,
    Status,
    Target,
    bounded,
    check_options,
)
from elvwatch.probes.mqtt_broker import BrokerConnection, SourceState
from elvwatch.probes.mqtt_payload import Rejected, compile_path, decode_text
from elvwatch.probes.mqtt_profiles import TopicTrie, render, topic_filter
from elvwatch.probes.mqtt_settings import MqttCheckOptions, MqttSettings
from elvwatch.probes.mqtt_watch import Payload, Route, Watch, apply, observe

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
        self._watches: dict[tuple[str, str], Watch] = {}
        self._tries: dict[str, TopicTrie[Route]] = {}
        self._route_cache: dict[str, dict[str, list[Route]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- PushManager -------------------------------------------------------------------
    async def start(self) -> None:
        self.state = SourceState.STARTED
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="mqtt freshness")

    async def update(self, targets: Sequence[tuple[Target, Check]]) -> None:
        now = self._clock()
        watches: dict[tuple[str, str], Watch] = {}
        tries: dict[str, TopicTrie[Route]] = {}
        filters: dict[str, dict[str, int]] = {}
        for target, check in targets:
            options = check_options(check, MqttCheckOptions)
            broker = self._broker_for(options)
            key = (target.device, check.name)
            old = self._watches.get(key)
            if broker is None:
                self._emit(Observation(target.device, check.name, Status.UNKNOWN,
                                       error=self._broker_problem(options)))
                continue
            watch = old if old is not None and old.options == options and \
                old.target == target and old.broker == broker else \
                Watch(target, check, options, broker, since=now,
                      next_emit=now + check.interval)
            watch.check = check
            watches[key] = watch
            trie = tries.setdefault(broker, TopicTrie())
            wanted = filters.setdefault(broker, {})
            routes = _routes(watch)
            watch.expected = tuple((r.index, r.spec.topic) for r in routes if r.spec.expected)
            for route in routes:
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
                self._reject(broker, route, topic, Rejected(
                    "too_large", f"{len(payload)} bytes > {self.settings.max_payload}"), now)
                self._emit(observe(route.watch, now))
            return
        parsed: Payload | None = None
        for route in routes:
            watch = route.watch
            try:
                if parsed is None:
                    parsed = Payload(decode_text(payload))
                apply(route, topic, parsed, now)
            except Rejected as exc:
                self._reject(broker, route, topic, exc, now)
            if watch.listening_since is None:
                watch.listening_since = now
            watch.next_emit = now + watch.check.interval
            self._emit(observe(watch, now))

    def _reject(self, broker: str, route: Route, topic: str, exc: Rejected,
                now: float) -> None:
        watch = route.watch
        watch.heard.add(route.index)
        watch.reject(topic, exc)
        self.rejected.setdefault(broker, Counter())[exc.reason] += 1
        if now - watch.last_reject_log.get(exc.reason, -REJECT_LOG_SECONDS) >= \
                REJECT_LOG_SECONDS:
            watch.last_reject_log[exc.reason] = now
            log.warning("mqtt %s/%s: payload on %s rejected (%s: %s)", watch.target.device,
                        watch.check.name, bounded(topic, 120), exc.reason,
                        bounded(exc.detail, 120))

    # -- freshness ---------------------------------------------------------------------
    def sweep(self) -> int:
        """Emit every check that is due or has just gone stale; returns how many."""
        now = self._clock()
        emitted = 0
        for watch in list(self._watches.values()):
            connection = self.brokers.get(watch.broker)
            watch.listening(now, connection is not None and connection.connected)
            max_age = watch.options.max_age
            stale = max_age is not None and now - (watch.last_fresh or watch.since) > max_age
            # The expected-topics window closing changes what the check says.
            window = watch.expect_window_over(now)
            if stale != watch.stale or now >= watch.next_emit or window != watch.missing_due:
                watch.missing_due = window
                watch.next_emit = now + watch.check.interval
                self._emit(observe(watch, now))
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


def _fields(watch: Watch) -> dict[str, str]:
    t, o = watch.target, watch.options
    return {"base": o.topic, "key": o.key or t.device, "device": t.device, "site": t.site,
            "host": t.host}


def _routes(watch: Watch) -> list[Route]:
    fields = _fields(watch)
    fields["base"] = render(watch.options.topic, fields)
    out = []
    for index, spec in enumerate(watch.options.resolved_profile().topics):
        values = tuple((v, tuple(compile_path(render(p, fields)) for p in v.paths))
                       for v in spec.values)
        avail = compile_path(render(spec.json_path, fields)) if spec.json_path else None
        topic, named = topic_filter(spec.topic, fields)
        labels = tuple((k, render(v, fields)) for k, v in spec.labels.items())
        out.append(Route(watch, index, spec.model_copy(update={"topic": topic}), values,
                         avail, named, labels))
    return out


def mqtt_source(settings: BaseModel | None, credentials: Mapping[str, Credential],
                emit: Emit) -> MqttManager:
    """The registry's factory for ``type: mqtt``."""
    if settings is not None and not isinstance(settings, MqttSettings):
        raise TypeError(f"mqtt settings must be MqttSettings, not {type(settings).__name__}")
    return MqttManager(settings, credentials, emit)
