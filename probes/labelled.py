"""Value names that carry labels, for per-port / per-disk / per-phase values.

``Observation.values`` is a flat map, so a table row's value is named like a
Prometheus sample: ``snmp.if.oper_up{ifindex="3",port="ge-0/0/3"}``.  Label *names*
always come from our own profiles; label *values* may be device text, so they are
bounded and escaped here and unescaped by the one parser, ``split``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from elvwatch.probes.base import bounded

LABEL_VALUE_LIMIT = 64
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def join(name: str, labels: Mapping[str, str]) -> str:
    """``name`` with ``labels`` (names must be identifiers; values are bounded)."""
    if not labels:
        return name
    for key in labels:
        if not _LABEL_NAME.match(key):
            raise ValueError(f"bad label name {key!r}")
    inner = ",".join(f'{k}="{_escape(bounded(v, LABEL_VALUE_LIMIT))}"'
                     for k, v in labels.items())
    return f"{name}{{{inner}}}"


def split(value_name: str) -> tuple[str, dict[str, str]]:
    """The inverse of ``join``; a name without labels gives an empty dict.  A
    malformed label part is kept in the name (and later sanitised) rather than lost."""
    brace = value_name.find("{")
    if brace < 0 or not value_name.endswith("}"):
        return value_name, {}
    inner = value_name[brace + 1:-1]
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        match = _PAIR.match(inner, pos)
        if match is None:
            return value_name, {}
        labels[match.group(1)] = _unescape(match.group(2))
        pos = match.end()
    return value_name[:brace], labels
