"""What the MQTT source knows about one (device, check), and the Observation it makes.

A :class:`Watch` is fed by :func:`apply` (one routed message) and read by
:func:`observe`.  It keeps, per value name (labels included), what each topic said
last; the value is the largest of those (see ``probes.mqtt_profiles``).  It also keeps
which of the profile's expected topics have been heard, and which topics' last
payload was rejected, so that neither a profile that does not match the bridge nor a
payload we cannot read ever reads as "all clear" or as "nothing received".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from elvwatch.probes import labelled
from elvwatch.probes.base import Check, Observation, Reason, Status, Target, Value, bounded
from elvwatch.probes.mqtt_payload import (
    Path,
    Rejected,
    as_number,
    as_word,
    decode_json,
    flatten,
    parse_scalar,
    present,
    walk,
    walk_first,
)
from elvwatch.probes.mqtt_profiles import TopicSpec, ValueSpec
from elvwatch.probes.mqtt_settings import MqttCheckOptions

# Distinct values (label sets included) one check may hold: a bridge publishing ever
# new zone names or keys must not grow it without bound.
MAX_VALUES = 4096
# Topics whose rejection is remembered for the report (the counters have them all).
MAX_REJECTED_TOPICS = 32
# How many missing or rejected topics an error names.
NAMED_IN_ERROR = 3


@dataclass(frozen=True, slots=True)
class Route:
    """One topic rule of one watch, rendered for its check."""

    watch: Watch
    index: int                        # the rule's place in the profile
    spec: TopicSpec                   # ``topic`` is the subscription filter
    values: tuple[tuple[ValueSpec, tuple[Path, ...]], ...]
    availability_path: Path | None
    named: tuple[tuple[int, str], ...]        # (topic level, label) of named wildcards
    labels: tuple[tuple[str, str], ...]       # fixed labels, rendered

    @property
    def labelled(self) -> bool:
        return bool(self.named or self.labels or self.spec.topic_label)


@dataclass(slots=True)
class Watch:
    target: Target
    check: Check
    options: MqttCheckOptions
    broker: str
    since: float
    # The expected topic rules: (index, subscription filter).
    expected: tuple[tuple[int, str], ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    parts: dict[str, dict[str, float]] = field(default_factory=dict)   # name → topic → n
    # (value, topic) → (status, reason, the value whose 0 excuses it)
    faults: dict[tuple[str, str], tuple[Status, str, str | None]] = field(
        default_factory=dict)
    online: bool | None = None
    last_fresh: float | None = None
    messages: int = 0
    heard: set[int] = field(default_factory=set)
    listening_since: float | None = None
    missing_due: bool = False
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)  # topic → why
    rejects: int = 0
    next_emit: float = 0.0
    stale: bool = False
    last_reject_log: dict[str, float] = field(default_factory=dict)

    def listening(self, now: float, connected: bool) -> None:
        """The broker connection's state, for the expected-topics window."""
        if not connected:
            self.listening_since = None
        elif self.listening_since is None:
            self.listening_since = now

    def expect_window_over(self, now: float) -> bool:
        return bool(self.expected) and self.listening_since is not None and \
            now - self.listening_since >= self.options.expect_seconds

    def reject(self, topic: str, exc: Rejected) -> None:
        self.messages += 1
        self.rejects += 1
        if topic in self.rejected or len(self.rejected) < MAX_REJECTED_TOPICS:
            self.rejected[topic] = (exc.reason, exc.detail)


class Payload:
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

    @property
    def structured(self) -> bool:
        return self.text[:1] in ("{", "[")


def apply(route: Route, topic: str, payload: Payload, now: float) -> None:
    """Take one message into its watch; Rejected (and nothing changed) when unusable."""
    watch, spec = route.watch, route.spec
    watch.heard.add(route.index)
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
            raise Rejected("wrong_type", f"not an online/offline word: {word[:32]!r}")
        watch.messages += 1
        watch.rejected.pop(topic, None)
        return
    labels = _labels(route, topic) if route.labelled else None
    where = ", ".join(labels.values()) if labels else ""
    new: list[tuple[str, ValueSpec, float | None]] = []
    for value_spec, paths in route.values:
        for key, number in _read(value_spec, paths, payload):
            row = labels if key is None else {**(labels or {}), "key": key}
            new.append((labelled.join(value_spec.name, row) if row else value_spec.name,
                        value_spec, number))
    values = watch.values
    if len(values) + len(new) > MAX_VALUES and len(values) + len(
            {full for full, _, number in new if number is not None and full not in values}) \
            > MAX_VALUES:
        raise Rejected("too_many", f"more than {MAX_VALUES} values on one check")
    # Applied only once the whole payload parsed: never half a message.
    for full, value_spec, number in new:
        if number is None or (value_spec.sparse and number == 0):
            _forget(watch, full, topic)
            continue
        parts = watch.parts.get(full)
        if parts is None:
            parts = watch.parts[full] = {}
        parts[topic] = number
        values[full] = number if len(parts) == 1 else max(parts.values())
        reason = value_spec.fault(number)
        if reason is None:
            if watch.faults:
                watch.faults.pop((full, topic), None)
        else:
            text = f"{reason} ({bounded(where, 64)})" if where else reason
            watch.faults[(full, topic)] = (Status(value_spec.fault_status), text,
                                           value_spec.fault_unless)
    watch.messages += 1
    if watch.rejected:
        watch.rejected.pop(topic, None)
    watch.last_fresh = now


def _forget(watch: Watch, name: str, topic: str) -> None:
    watch.faults.pop((name, topic), None)
    parts = watch.parts.get(name)
    if parts is None or parts.pop(topic, None) is None:
        return
    if parts:
        watch.values[name] = max(parts.values())
    else:
        del watch.parts[name]
        watch.values.pop(name, None)


def _read(spec: ValueSpec, paths: tuple[Path, ...],
          payload: Payload) -> list[tuple[str | None, float | None]]:
    """(flattened key or None, number) pairs one value spec reads from the payload; a
    None number forgets the value (``forget_when_missing``)."""
    if spec.presence:
        return [(None, 1.0 if present(payload.json(), paths) else 0.0)]
    if spec.flatten and payload.structured:
        return [(key, _signed(spec, number))
                for key, number in flatten(payload.json()).items()]
    try:
        raw = walk_first(payload.json(), paths) if paths else payload.scalar()
    except Rejected as exc:
        if spec.optional and exc.reason == "missing_path":
            return [(None, None)] if spec.forget_when_missing else []
        raise
    return [(None, _signed(spec, as_number(raw, spec.map)))]


def _signed(spec: ValueSpec, number: float) -> float:
    return 1.0 - number if spec.invert else number


def _labels(route: Route, topic: str) -> dict[str, str]:
    labels = dict(route.labels)
    if route.named:
        levels = topic.split("/")
        for index, name in route.named:
            if index < len(levels):
                labels[name] = levels[index]
    if route.spec.topic_label:
        labels[route.spec.topic_label] = topic
    return labels


def observe(watch: Watch, now: float) -> Observation:
    values: dict[str, Value] = dict(watch.values)
    if watch.online is not None:
        values["mqtt.online"] = 1.0 if watch.online else 0.0
    if watch.last_fresh is not None:
        values["mqtt.age_seconds"] = round(now - watch.last_fresh, 3)
    missing = _missing(watch, now)
    if missing is not None:
        values["mqtt.missing"] = float(len(missing))
    silence = now - (watch.last_fresh or watch.since)
    max_age = watch.options.max_age
    watch.stale = max_age is not None and silence > max_age
    rejected = _rejected_text(watch)
    status, error, reason = Status.OK, None, None
    if watch.online is False:
        status, error, reason = Status.DOWN, "offline (availability topic)", Reason.OFFLINE
    elif watch.stale:
        reason = Reason.STALE
        if rejected:
            status, error = Status.DOWN, f"stale: no usable message for {silence:.0f}s; {rejected}"
        else:
            status, error = Status.DOWN, f"stale: no message for {silence:.0f}s"
    elif watch.messages == 0 and watch.online is None:
        status, error = Status.UNKNOWN, "no message received yet"
    else:
        problems: list[tuple[Status, str]] = sorted(
            ((status, reason) for status, reason, unless in watch.faults.values()
             if unless is None or watch.values.get(unless) != 0),
            key=lambda f: -f[0].badness)
        if missing:
            shown = ", ".join(missing[:NAMED_IN_ERROR])
            more = ", …" if len(missing) > NAMED_IN_ERROR else ""
            problems.append((Status.DEGRADED, f"missing: {len(missing)} expected topics "
                                              "never published in "
                                              f"{watch.options.expect_seconds:g}s (does "
                                              f"the profile match the bridge?): {shown}{more}"))
        if rejected:
            problems.append((Status.DEGRADED, rejected))
        if problems:
            status = max((s for s, _ in problems), key=lambda s: s.badness)
            error = "; ".join(reason for _, reason in problems)
    return Observation(watch.target.device, watch.check.name, status, values,
                       error=bounded(error) if error else None, reason=reason)


def _missing(watch: Watch, now: float) -> list[str] | None:
    """Expected topics not heard, once the window is over and the bridge talks."""
    if not watch.expect_window_over(now) or watch.messages == 0:
        return None
    return [topic for index, topic in watch.expected if index not in watch.heard]


def _rejected_text(watch: Watch) -> str:
    if not watch.rejected:
        return ""
    items = list(watch.rejected.items())
    shown = "; ".join(f"{bounded(topic, 80)}: {reason}: {bounded(detail, 80)}"
                      for topic, (reason, detail) in items[:2])
    more = f" (+{len(items) - 2} topics)" if len(items) > 2 else ""
    return f"rejected: {shown}{more}"
