"""MQTT payloads → numbers: decoding, JSON paths, words, and the generic JSON flattening.

Payloads are untrusted: every failure is a :class:`Rejected` with a short reason code
(``too_large``, ``bad_encoding``, ``bad_json``, ``missing_path``, ``wrong_type``,
``no_values``, ``too_many``) that the manager counts and reports; parsing never raises
anything else.

Generic JSON (a check without a profile and without ``json_path``) is flattened the
way Telegraf's ``json`` parser does it: nested keys joined with ``_``, array items by
their index (``{"a": {"b": [5]}}`` → ``a_b_0``).  Numbers are kept; unlike Telegraf,
booleans and the state words of :data:`WORDS` are kept too (as 1/0), since that is what
door contacts and online flags send; other strings are skipped, as Telegraf does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping

# Words a device may send for a flag, as 1/0 (a profile's own ``map`` comes first).
WORDS = {"true": 1.0, "false": 0.0, "on": 1.0, "off": 0.0, "yes": 1.0, "no": 0.0,
         "open": 1.0, "closed": 0.0, "online": 1.0, "offline": 0.0}
# A flattened object yields at most this many values, with keys at most this long:
# a device must not be able to make one message into thousands of series.
MAX_FIELDS = 64
MAX_KEY = 64
_MAX_DEPTH = 8
_KEY_CHARS = re.compile(r"[^a-z0-9_]+")

Path = tuple[str | int, ...]
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class Rejected(Exception):
    """A payload that cannot be used; ``reason`` is a short, fixed code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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


def walk_first(document: object, paths: tuple[Path, ...]) -> object:
    """The value at the first of ``paths`` present (bridges that moved a key between
    versions); the first path's Rejected(missing_path) when none is."""
    missing: Rejected | None = None
    for path in paths:
        try:
            return walk(document, path)
        except Rejected as exc:
            missing = missing or exc
    raise missing or Rejected("missing_path", "no path")


def present(document: object, paths: tuple[Path, ...]) -> bool:
    for path in paths:
        try:
            walk(document, path)
        except Rejected:
            continue
        return True
    return False


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
        if word in WORDS:
            return WORDS[word]
        try:
            value = float(word)
        except ValueError:
            raise Rejected("wrong_type", "expected a number or a state word "
                                         f"(true/false, on/off, open/closed), got {word[:32]!r}"
                           ) from None
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


def flatten(document: object) -> dict[str, float]:
    """A JSON object as ``{flattened_key: number}`` (see the module docstring); keys are
    lowercased to ``[a-z0-9_]`` and bounded.  Rejected(no_values) when nothing usable
    is in it, Rejected(too_many) when more than :data:`MAX_FIELDS` are."""
    out: dict[str, float] = {}
    for key, raw in _leaves(document, "", 0):
        number = _leaf_number(raw)
        if number is None:
            continue
        name = _KEY_CHARS.sub("_", key.lower()).strip("_")[:MAX_KEY] or "value"
        if name not in out and len(out) >= MAX_FIELDS:
            raise Rejected("too_many", f"more than {MAX_FIELDS} values in one object")
        out[name] = number
    if not out:
        raise Rejected("no_values", "no number, boolean or state word in the payload")
    return out


def _leaves(node: object, prefix: str, depth: int) -> Iterator[tuple[str, object]]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _leaves(child, f"{prefix}_{key}" if prefix else str(key), depth + 1)
    elif isinstance(node, list):
        for index, child in enumerate(node[:MAX_FIELDS]):
            yield from _leaves(child, f"{prefix}_{index}" if prefix else str(index),
                               depth + 1)
    else:
        yield prefix, node


def _leaf_number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        value = float(raw)
        return value if math.isfinite(value) else None
    if isinstance(raw, str):
        return WORDS.get(raw.strip().lower())
    return None
