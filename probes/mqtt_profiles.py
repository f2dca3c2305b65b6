"""MQTT profiles: how a bridge lays out its topics, as data (``probes/profiles/mqtt``).

A profile is a list of topic rules, each a topic template, a role and the values read
from its payload.  Templates may use ``{base}`` (the check's ``topic``), ``{key}`` (the
check's ``key``, default the device id), ``{device}``, ``{site}`` and ``{host}``, and
*named wildcards* ``{+name}``: a whole level subscribed as ``+`` whose text labels the
values read there (``paradox/states/zones/{+zone}/open`` gives
``mqtt.zone.open{zone="Front_door"}``, one value per zone, as SNMP rows are).

Roles:

* ``state``        — carries values; a message proves the device alive (freshness).
* ``heartbeat``    — only proves the device alive.
* ``availability`` — online/offline, typically retained and the device's Last Will;
  offline makes the check ``down``.  Not a freshness signal: a retained "online" says
  nothing about now.

Several topic rules may write the same value (a panel's four "fail to communicate"
troubles are one ``mqtt.communicator_fault``): the value is the largest of what they
said last, so a flag is 1 while any of them is.  ``expected: true`` marks a topic the
bridge always publishes (retained, or every cycle): one that has not arrived within the
check's ``expect_seconds`` while the bridge talks is reported missing, since a profile
that does not match the bridge must not read as "all clear".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Generic, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from elvwatch.probes.mqtt_payload import compile_path

# A value name becomes a Prometheus metric name (``mqtt.door_open`` →
# ``elvwatch_mqtt_door_open``), so it is restricted to what a metric name allows.
VALUE_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
TEMPLATE_KEYS = ("base", "key", "device", "site", "host")
# Every metric of a check already carries these labels; a value's own may not repeat them.
RESERVED_LABELS = ("site", "system", "device", "kind", "check")
_PLACEHOLDER = re.compile(r"{(\+?[a-z_][a-z0-9_]*|)}")
_NAMED = re.compile(r"{\+([a-z_][a-z0-9_]*)}")
_LABEL = re.compile(r"^[a-z_][a-z0-9_]*$")
# Profiles split by panel family: an old name fails with this advice.
RENAMED = {
    "paradox_pai_panel": "it was split by panel family: paradox_pai_evo_panel (EVO) or "
                         "paradox_pai_sp_panel (Spectra SP, Magellan MG)",
    "paradox_pai_zone": "it was split by panel family: paradox_pai_evo_zone (EVO) or "
                        "paradox_pai_sp_zone (Spectra SP, Magellan MG)",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_template(text: str, *, wildcards: bool = False) -> str:
    for key in _PLACEHOLDER.findall(text):
        if key.startswith("+"):
            if not wildcards:
                raise ValueError(f"a named wildcard {{{key}}} is for topics only")
            if key[1:] in RESERVED_LABELS or key[1:] in TEMPLATE_KEYS:
                raise ValueError(f"named wildcard {{{key}}}: {key[1:]!r} is reserved")
        elif key not in TEMPLATE_KEYS:
            raise ValueError(f"unknown placeholder {{{key}}} (known: "
                             f"{', '.join('{' + k + '}' for k in TEMPLATE_KEYS)}, "
                             "and {+name} wildcards in topics)")
    return text


def _check_label(name: str) -> str:
    if not _LABEL.match(name) or name in RESERVED_LABELS:
        raise ValueError(f"label {name!r}: use [a-z_][a-z0-9_]*, not one of "
                         f"{', '.join(RESERVED_LABELS)}")
    return name


class ValueSpec(_Strict):
    """One named value read from a payload, and when it means a fault."""

    name: str = Field(pattern=VALUE_NAME)
    # Dotted path into a JSON object (``cameras.{key}.camera_fps``, ``a[0].b``); none
    # means the whole payload is the value.  A list: the first path present counts
    # (a key a bridge moved between versions).
    json_path: str | list[str] | None = None
    # Payload words to numbers (case-insensitive), before the built-in true/false/on/off.
    map: dict[str, float] = Field(default_factory=dict)
    # A key missing from the JSON skips this value instead of rejecting the message
    # (bridges that publish partial objects).
    optional: bool = False
    # ...and forgets what it said before (a camera gone from a stats document has no
    # frame rate any more); without it the last value stays (partial updates).
    forget_when_missing: bool = False
    # 1 when json_path is in the message, 0 when not (a camera gone from a stats
    # document); never rejects.
    presence: bool = False
    # A JSON object payload becomes one value per flattened key (``name{key="a_b"}``);
    # a scalar payload stays ``name`` (generic checks, see probes.mqtt_payload).
    flatten: bool = False
    # 1 - value: for booleans that mean the opposite (Zigbee contact=true is "closed").
    invert: bool = False
    # A labelled flag kept only while set: a 0 forgets its row.  Bridges publish every
    # slot of a panel (PAI: up to 254 bus modules × 10 flags); only the rows in trouble
    # are worth a value, and rules read them with max_of(…), absent = none.
    sparse: bool = False
    fault_if: list[float] = Field(default_factory=list)
    fault_below: float | None = None
    fault_status: Literal["degraded", "down"] = "degraded"
    fault_reason: str | None = None
    # No fault while this value of the same check is 0 (a camera switched off in
    # Frigate delivers no frames on purpose).
    fault_unless: str | None = Field(None, pattern=VALUE_NAME)

    @field_validator("json_path")
    @classmethod
    def _paths(cls, value: str | list[str] | None) -> str | list[str] | None:
        for text in [value] if isinstance(value, str) else value or []:
            _check_template(text)
            compile_path(text)
        if isinstance(value, list) and not value:
            raise ValueError("give at least one json_path")
        return value

    @field_validator("map")
    @classmethod
    def _lower_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return {k.lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> ValueSpec:
        if self.presence and self.json_path is None:
            raise ValueError("presence needs a json_path")
        if self.flatten and self.json_path is not None:
            raise ValueError("flatten reads the whole payload: no json_path")
        if self.forget_when_missing and not self.optional:
            raise ValueError("forget_when_missing is for optional values")
        if self.sparse and (self.presence or self.flatten):
            raise ValueError("sparse is for flags read from a payload")
        return self

    @property
    def paths(self) -> tuple[str, ...]:
        if self.json_path is None:
            return ()
        return (self.json_path,) if isinstance(self.json_path, str) else tuple(self.json_path)

    def fault(self, value: float) -> str | None:
        """The fault reason when ``value`` means one, else None."""
        if (self.fault_if and value in self.fault_if) or \
                (self.fault_below is not None and value < self.fault_below):
            return self.fault_reason or f"{self.name} = {value:g}"
        return None


class TopicSpec(_Strict):
    topic: str
    role: Literal["state", "heartbeat", "availability"] = "state"
    # availability: where the online/offline word is in a JSON payload; a plain
    # payload is read as the word itself (Zigbee2MQTT's legacy form).
    json_path: str | None = None
    online: list[str] = Field(default_factory=lambda: ["online", "true", "1", "connected"])
    offline: list[str] = Field(default_factory=lambda: ["offline", "false", "0",
                                                        "disconnected", "lost"])
    values: list[ValueSpec] = Field(default_factory=list)
    # Fixed labels of this topic's values (templates: ``{key}`` …), for a profile that
    # writes the same family as a wildcard one (one zone as its own device).
    labels: dict[str, str] = Field(default_factory=dict)
    # Label holding the message's whole topic: one value per topic under a filter
    # with wildcards (generic checks).
    topic_label: str | None = None
    # The bridge always publishes this topic (see the module docstring).
    expected: bool = False

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        _check_template(value, wildcards=True)
        for level in value.split("/"):
            if "{+" in level and not _NAMED.fullmatch(level):
                raise ValueError(f"topic {value!r}: a named wildcard must be a whole level")
        return value

    @field_validator("json_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return value if value is None else _check_template(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            _check_label(name)
            _check_template(template)
        return value

    @field_validator("topic_label")
    @classmethod
    def _topic_label(cls, value: str | None) -> str | None:
        return value if value is None else _check_label(value)

    @property
    def fresh(self) -> bool:
        return self.role != "availability"


class Profile(_Strict):
    name: str
    description: str = ""
    topics: list[TopicSpec] = Field(min_length=1)


# -- profiles on disk ----------------------------------------------------------------
@cache
def builtin_profiles() -> Mapping[str, Profile]:
    """Every profile shipped in ``probes/profiles/mqtt``; a broken one is a bug (raises)."""
    out: dict[str, Profile] = {}
    folder = resources.files("elvwatch.probes").joinpath("profiles", "mqtt")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            try:
                profile = Profile.model_validate(yaml.safe_load(entry.read_text("utf-8")))
            except ValidationError as exc:
                raise ValueError(f"{entry.name}: {exc}") from exc
            out[profile.name] = profile
    return out


def plain_profile(json_path: str | None, value: str, availability_topic: str | None,
                  wildcard: bool = False) -> Profile:
    """The implicit profile of a check without one: ``{base}`` read whole (a JSON
    object flattened) or at ``json_path``; under a filter with wildcards, one value
    per topic (labelled ``topic``)."""
    spec = ValueSpec(name=value, json_path=json_path, flatten=json_path is None)
    topics = [TopicSpec(topic="{base}", values=[spec],
                        topic_label="topic" if wildcard else None)]
    if availability_topic:
        topics.append(TopicSpec(topic=availability_topic, role="availability"))
    return Profile(name="plain", topics=topics)


def render(template: str, fields: Mapping[str, str]) -> str:
    """Fill the placeholders; named wildcards become ``+``."""
    return _PLACEHOLDER.sub(
        lambda m: "+" if m.group(1).startswith("+") else fields[m.group(1)], template)


Named = tuple[tuple[int, str], ...]


def topic_filter(template: str, fields: Mapping[str, str]) -> tuple[str, Named]:
    """The subscription filter of a topic template, and (level, label) of each named
    wildcard in it (counted after ``{base}`` is filled in, which may span levels)."""
    text = _PLACEHOLDER.sub(
        lambda m: m.group(0) if m.group(1).startswith("+") else fields[m.group(1)], template)
    levels = text.split("/")
    named: list[tuple[int, str]] = []
    for index, level in enumerate(levels):
        match = _NAMED.fullmatch(level)
        if match:
            named.append((index, match.group(1)))
            levels[index] = "+"
    return "/".join(levels), tuple(named)


def has_wildcards(topic_filter_text: str) -> bool:
    return any(level in ("+", "#") for level in topic_filter_text.split("/"))


# -- topic filters -------------------------------------------------------------------
def valid_filter(text: str) -> str | None:
    """Why ``text`` is not a usable MQTT topic filter, or None when it is."""
    if not text or len(text.encode()) > 65535:
        return "a topic filter must be 1..65535 bytes"
    if "\x00" in text:
        return "a topic filter may not contain NUL"
    levels = text.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


T = TypeVar("T")


class TopicTrie(Generic[T]):
    """Topic filter → items, matched per level so that thousands of filters cost one
    walk per message instead of one comparison per filter."""

    __slots__ = ("_children", "_items")

    def __init__(self) -> None:
        self._children: dict[str, TopicTrie[T]] = {}
        self._items: list[T] = []

    def add(self, topic_filter: str, item: T) -> None:
        node = self
        for level in topic_filter.split("/"):
            node = node._children.setdefault(level, TopicTrie())
        node._items.append(item)

    def match(self, topic: str) -> list[T]:
        out: list[T] = []
        self._match(topic.split("/"), 0, out, topic.startswith("$"))
        return out

    def _match(self, levels: list[str], i: int, out: list[T], system: bool) -> None:
        children = self._children
        # '#' and '+' at the first level do not match '$SYS/...' topics (MQTT 4.7.2).
        wild = not (system and i == 0)
        if wild and (hashed := children.get("#")) is not None:
            out.extend(hashed._items)
        if i == len(levels):
            out.extend(self._items)
            return
        if (exact := children.get(levels[i])) is not None:
            exact._match(levels, i + 1, out, system)
        if wild and (plus := children.get("+")) is not None:
            plus._match(levels, i + 1, out, system)


