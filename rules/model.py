"""Rules as data: the config model, the compiled :class:`Rule`, the built-in rule set.

A rule matches devices by labels (site, system, kind, tags, check), holds a condition
in the language of :mod:`elvwatch.rules.expr`, and says how long the condition must hold before
the fault fires (``for:`` N polls or a duration such as ``5m``) and how long it must be
false before it clears (``clear:``).  Built-in rules ship as YAML in ``rules/builtin/``;
site rules come from the config's ``rules:`` list: a site rule with the id of a built-in
one replaces it (``enabled: false`` switches it off).  See ``rules/README.md`` for the
value names each built-in rule reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from elvwatch.rules.expr import Expr, ExprError, compile_expr
from elvwatch.rules.faults import Severity

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str) -> float:
    """``"90s"``, ``"5m"``, ``"1.5h"``, ``"2d"`` → seconds."""
    m = _DURATION.match(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is neither a poll count nor a duration like 5m, 90s, 1h")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _polls_or_duration(value: object) -> object:
    if isinstance(value, str) and not value.strip().isdigit():
        return {"seconds": parse_duration(value)}
    return {"polls": value}


class Hold(BaseModel):
    """How long a condition must hold: N consecutive polls, or a duration in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    polls: int | None = Field(None, ge=1, le=10_000)
    seconds: float | None = Field(None, gt=0, le=30 * 86400)


# Written as a poll count (3) or a duration ("5m"); the JSON Schema says so.
HoldField = Annotated[Hold, BeforeValidator(_polls_or_duration,
                                            json_schema_input_type=int | str)]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_as_list, json_schema_input_type=str | list[str])]


class Match(BaseModel):
    """Which devices and checks a rule applies to; an empty list matches everything.

    ``tags``: the device must carry every tag listed.  ``check``: the observation's
    check type or check name (``rtsp``, ``tcp_554``); without it the rule is evaluated
    on every observation of a matching device."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Site ids.
    site: Names = Field(default_factory=list)
    # Systems (cctv, access_control, intercom, alarm, network, power).
    system: Names = Field(default_factory=list)
    # Device kinds.
    kind: Names = Field(default_factory=list)
    # Tags the device must all carry.
    tags: Names = Field(default_factory=list)
    # Check types or check names (rtsp, tcp_554).
    check: Names = Field(default_factory=list)


class RuleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # Unique; a site rule with a built-in rule's id replaces it.
    id: RuleId
    # The fault's name in tickets, pages and messages, in Chinese ...
    name_zh: str = Field(min_length=1, max_length=200)
    # ... and in English.
    name_en: str = Field(min_length=1, max_length=200)
    # The ticket's severity, which sets its contract deadlines.
    severity: Severity = Severity.GENERAL
    # Which devices and checks the rule applies to.
    match: Match = Match()
    # When the fault holds, in the condition language (rules/README.md); never eval'd.
    condition: str
    # How long the condition must hold before the fault fires: polls (3) or a duration (5m).
    for_: HoldField = Field(Hold(polls=1), alias="for")
    # How long it must be false before the fault clears: polls or a duration.
    clear: HoldField = Hold(polls=1)
    # Topology: the cause class of this fault ("connectivity", "power"), and the cause
    # classes of child (and same-device) faults a firing fault of this rule explains.
    cause: str | None = None
    # Cause classes of child (and same-device) faults a firing fault of this rule explains.
    explains: Names = Field(default_factory=list)
    # false switches a built-in rule off (a site rule with its id).
    enabled: bool = True
    # What the fault means, for people reading the rule.
    description: str = ""

    @field_validator("condition")
    @classmethod
    def _compiles(cls, value: str, info: ValidationInfo) -> str:
        try:
            compile_expr(value)
        except ExprError as exc:
            rule = info.data.get("id", "?")
            raise ValueError(f"rule {rule!r}: condition {exc}") from None
        return value


def _unique_ids(rules: list[RuleConfig]) -> list[RuleConfig]:
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ValueError(f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
    return rules


# The config's ``rules:`` list (elvwatch.config.schema.ConfigModel uses this type).
SiteRules = Annotated[list[RuleConfig], AfterValidator(_unique_ids)]


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule, ready for the engine."""

    id: str
    name_zh: str
    name_en: str
    severity: Severity
    condition: Expr
    for_polls: int | None
    for_seconds: float | None
    clear_polls: int | None
    clear_seconds: float | None
    site: frozenset[str]
    system: frozenset[str]
    kind: frozenset[str]
    tags: frozenset[str]
    check: frozenset[str]
    cause: str | None
    explains: frozenset[str]

    @classmethod
    def from_config(cls, cfg: RuleConfig) -> Rule:
        return cls(
            id=cfg.id, name_zh=cfg.name_zh, name_en=cfg.name_en, severity=cfg.severity,
            condition=compile_expr(cfg.condition),
            for_polls=cfg.for_.polls, for_seconds=cfg.for_.seconds,
            clear_polls=cfg.clear.polls, clear_seconds=cfg.clear.seconds,
            site=frozenset(cfg.match.site), system=frozenset(cfg.match.system),
            kind=frozenset(cfg.match.kind), tags=frozenset(cfg.match.tags),
            check=frozenset(cfg.match.check), cause=cfg.cause,
            explains=frozenset(cfg.explains))

    def matches_device(self, device: DeviceSpec) -> bool:
        return ((not self.site or device.site in self.site)
                and (not self.system or device.system in self.system)
                and (not self.kind or device.kind in self.kind)
                and self.tags <= device.tags)

    def matches_check(self, name: str, check_type: str) -> bool:
        return not self.check or name in self.check or check_type in self.check


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What the engine knows of a device: labels, checks (name → type), parents."""

    id: str
    site: str
    system: str
    kind: str
    tags: frozenset[str] = frozenset()
    checks: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    # The serial in the equipment archive; "camera replaced" compares the device's
    # reported serial with it (or with the first one seen, when the archive has none).
    serial: str | None = None


def load_builtin_configs() -> list[RuleConfig]:
    """Every rule in ``rules/builtin/*.yaml``, in file then list order."""
    out: list[RuleConfig] = []
    folder = resources.files("elvwatch.rules").joinpath("builtin")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        raw = yaml.safe_load(entry.read_text(encoding="utf-8")) or []
        out.extend(RuleConfig.model_validate(item) for item in raw)
    return _unique_ids(out)


def build_rules(site_rules: Sequence[RuleConfig] = (),
                builtin: Iterable[RuleConfig] | None = None) -> list[Rule]:
    """Built-in rules overlaid with site rules (same id replaces), disabled ones dropped."""
    merged: dict[str, RuleConfig] = {}
    for cfg in load_builtin_configs() if builtin is None else builtin:
        merged[cfg.id] = cfg
    for cfg in site_rules:
        merged[cfg.id] = cfg
    return [Rule.from_config(cfg) for cfg in merged.values() if cfg.enabled]
