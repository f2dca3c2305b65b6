"""MQTT profiles (how a bridge lays out its topics) and the payload parsing they drive.

A profile is data (``probes/profiles/mqtt/<name>.yaml``): a list of topic rules, each a
topic template, a role and the values read from its payload.  Templates may use
``{base}`` (the check's ``topic``), ``{key}`` (the check's ``key``, default the device
id), ``{device}``, ``{site}`` and ``{host}``.

Roles:

* ``state``        — carries values; a message proves the device alive (freshness).
* ``heartbeat``    — only proves the device alive.
* ``availability`` — online/offline, typically retained and the device's Last Will;
  offline makes the check ``down``.  Not a freshness signal: a retained "online" says
  nothing about now.

Payloads are untrusted: every failure is a :class:`Rejected` with a short reason code
(``too_large``, ``bad_encoding``, ``bad_json``, ``missing_path``, ``wrong_type``) that
the manager counts; parsing never raises anything else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# A value name becomes a Prometheus metric name (``mqtt.door_open`` →
# ``elvwatch_mqtt_door_open``), so it is restricted to what a metric name allows.
VALUE_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
TEMPLATE_KEYS = ("base", "key", "device", "site", "host")
_BOOL_WORDS = {"true": 1.0, "false": 0.0, "on": 1.0, "off": 0.0, "yes": 1.0, "no": 0.0}
_PLACEHOLDER = re.compile(r"{([a-z_]*)}")


class Rejected(Exception):
    """A payload that cannot be used; ``reason`` is a short, fixed code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_template(text: str) -> str:
    for key in _PLACEHOLDER.findall(text):
        if key not in TEMPLATE_KEYS:
            raise ValueError(f"unknown placeholder {{{key}}} (known: "
                             f"{', '.join('{' + k + '}' for k in TEMPLATE_KEYS)})")
    return text


class ValueSpec(_Strict):
    """One named value read from a payload, and when it means a fault."""

    name: str = Field(pattern=VALUE_NAME)
    # Dotted path into a JSON object (``cameras.{key}.camera_fps``, ``a[0].b``); none
    # means the whole payload is the value.
    json_path: str | None = None
    # Payload words to numbers (case-insensitive), before the built-in true/false/on/off.
    map: dict[str, float] = Field(default_factory=dict)
    # A key missing from the JSON skips this value instead of rejecting the message
    # (bridges that publish partial objects).
    optional: bool = False
    # 1 - value: for booleans that mean the opposite (Zigbee contact=true is "closed").
    invert: bool = False
    fault_if: list[float] = Field(default_factory=list)
    fault_below: float | None = None
    fault_status: Literal["degraded", "down"] = "degraded"
    fault_reason: str | None = None

    _template = field_validator("json_path")(lambda v: v if v is None else _check_template(v))

    @field_validator("map")
    @classmethod
    def _lower_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return {k.lower(): v for k, v in value.items()}

    def fault(self, value: float) -> str | None:
        """The fault reason when ``value`` means one, else None."""
        if value in self.fault_if or (self.fault_below is not None and value < self.fault_below):
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

    _template = field_validator("topic", "json_path")(
        lambda v: v if v is None else _check_template(v))

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
    folder = resources.files("probes").joinpath("profiles", "mqtt")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            try:
                profile = Profile.model_validate(yaml.safe_load(entry.read_text("utf-8")))
            except ValidationError as exc:
                raise ValueError(f"{entry.name}: {exc}") from exc
            out[profile.name] = profile
    return out


def plain_profile(json_path: str | None, value: str, availability_topic: str | None) -> Profile:
    """The implicit profile of a check without one: one value from ``{base}``."""
    topics = [TopicSpec(topic="{base}", values=[ValueSpec(name=value, json_path=json_path)])]
    if availability_topic:
        topics.append(TopicSpec(topic=availability_topic, role="availability"))
    return Profile(name="plain", topics=topics)


def render(template: str, fields: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: fields[m.group(1)], template)


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


# -- payloads ------------------------------------------------------------------------
Path = tuple[str | int, ...]
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def compile_path(text: str) -> Path:
    """``a.b[0].c`` → ("a", "b", 0, "c")."""
    steps: list[str | int] = []
    for part in text.split("."):
        for key, index in _STEP.findall(part):
            steps.append(int(index) if index else key)
    if not steps:
        raise ValueError(f"empty JSON path {text!r}")
    return tuple(steps)


def decode_text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Rejected("bad_encoding", "payload is not UTF-8") from None


def decode_json(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Rejected("bad_json", "payload is not valid JSON") from None


def walk(document: object, path: Path) -> object:
    node = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise Rejected("missing_path", f"no item [{step}]")
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                raise Rejected("missing_path", f"no key {step[:64]!r}")
            node = node[step]
    return node


def as_number(raw: object, mapping: Mapping[str, float]) -> float:
    """A JSON scalar or plain payload word as a number, or Rejected(wrong_type)."""
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        value = float(raw)
        if math.isfinite(value):
            return value
        raise Rejected("wrong_type", "number is not finite")
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in mapping:
            return mapping[word]
        if word in _BOOL_WORDS:
            return _BOOL_WORDS[word]
        try:
            value = float(word)
        except ValueError:
            raise Rejected("wrong_type", "expected a number or true/false") from None
        if math.isfinite(value):
            return value
    raise Rejected("wrong_type", f"expected a number, got {type(raw).__name__}")


def as_word(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str | int | float):
        return str(raw).strip().lower()
    raise Rejected("wrong_type", f"expected a word, got {type(raw).__name__}")


def parse_scalar(text: str) -> object:
    """A plain payload: JSON scalars (``true``, ``12.5``, ``"open"``) or the bare text."""
    if text[:1] in ('"', "-") or text[:1].isdigit() or text in ("true", "false", "null"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text

