"""Which device is this, and which profiles does it get?  Detection runs once per
device (and again when sysObjectID changes, the device reboots or a day passes):

1. one GET of the system group and of every profile's ``probe`` OIDs;
2. the profiles whose ``match`` rules hold, and the kind the best rule implies;
3. one GET of the matched and chosen profiles' vendor identification OIDs, and the
   ENTITY-MIB chassis rows (probes/snmp_entity.py);
4. vendor/model/firmware/serial from, in order, the vendor MIBs, ENTITY-MIB and the
   sysDescr patterns of ``_vendors.yaml`` (a stack names every member).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from elvwatch.probes.base import bounded
from elvwatch.probes.snmp_entity import Entity
from elvwatch.probes.snmp_profiles import (
    IdentSpec,
    KindSpec,
    MatchRule,
    Profile,
    ValueSpec,
    kind_spec,
    known,
    profiles,
    vendors,
)
from elvwatch.probes.snmp_reading import text_of
from elvwatch.probes.snmp_session import MISSING, Oid, Raw, parse_oid

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYSTEM = (SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME)
ENTERPRISES = (1, 3, 6, 1, 4, 1)
NO_KIND = ("", "adhoc")  # a check without a device kind (ad-hoc probes)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the system group and the probe OIDs said."""

    object_id: Oid | None
    descr: str | None
    answered: frozenset[Oid]  # probe OIDs answered with something non-empty

    @classmethod
    def of(cls, got: Mapping[Oid, Raw]) -> Facts:
        object_id = got.get(SYS_OBJECT_ID, MISSING)
        answered = frozenset(o for o, v in got.items() if _non_empty(v))
        return cls(object_id if isinstance(object_id, tuple) and len(object_id) > 1 else None,
                   _multiline(got.get(SYS_DESCR, MISSING)), answered)

    @property
    def enterprise(self) -> int | None:
        oid = self.object_id
        if oid and oid[:6] == ENTERPRISES and len(oid) > 6:
            return oid[6]
        return None


def _multiline(raw: Raw) -> str | None:
    """sysDescr for matching: bounded, line breaks kept (patterns read the lines),
    other control characters blanked."""
    if not isinstance(raw, bytes):
        return text_of(raw)
    text = raw[:2048].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() or ch in "\r\n" else " " for ch in text).strip()
    return text or None


def _non_empty(raw: Raw) -> bool:
    if raw is MISSING:
        return False
    if isinstance(raw, bytes):
        return bool(raw.strip(b" \x00"))
    return True


def probe_oids() -> list[Oid]:
    """Every profile's probe OIDs, asked with the system group on detection."""
    return list(dict.fromkeys(parse_oid(r.probe) for p in profiles().values()
                              for r in p.match if r.probe))


@functools.lru_cache(maxsize=1024)
def _search(pattern: str, text: str) -> re.Match[str] | None:
    return re.search(pattern, text)


def holds(rule: MatchRule, facts: Facts) -> bool:
    if rule.enterprise is not None and facts.enterprise != rule.enterprise:
        return False
    if rule.object_id is not None:
        prefix = parse_oid(rule.object_id)
        if facts.object_id is None or facts.object_id[:len(prefix)] != prefix:
            return False
    if rule.sysdescr is not None and (
            facts.descr is None or _search(rule.sysdescr, facts.descr) is None):
        return False
    if rule.unless_sysdescr is not None and facts.descr is not None and _search(
            rule.unless_sysdescr, facts.descr) is not None:
        return False
    return rule.probe is None or parse_oid(rule.probe) in facts.answered


def matching(facts: Facts) -> tuple[list[Profile], str | None]:
    """The profiles some rule of which holds, those whose holding rules say most
    first (their identification wins), and the kind implied by the most specific
    holding rule that implies one."""
    scored: list[tuple[int, Profile]] = []
    best: tuple[int, str] | None = None
    for profile in profiles().values():
        rules = [r for r in profile.match if holds(r, facts)]
        if not rules:
            continue
        scored.append((sum(r.specificity for r in rules), profile))
        for rule in rules:
            if rule.kind and (best is None or rule.specificity > best[0]):
                best = (rule.specificity, rule.kind)
    scored.sort(key=lambda item: -item[0])
    return [p for _, p in scored], best[1] if best else None


@dataclass(frozen=True, slots=True)
class Selection:
    """The profiles one check reads, why each, and what the device must answer."""

    profiles: tuple[Profile, ...]
    origin: Mapping[str, str]  # profile name → "kind", "match" or "check"
    kind: str | None  # the kind whose needs apply (configured, else detected)
    needs: Mapping[str, str]  # capability → the blind reason


def select(named: Sequence[str], kind: str, matched: Iterable[Profile],
           detected_kind: str | None) -> Selection:
    """``named``: the check's own profile list (exactly these, with ``system``);
    else the kind's defaults plus the matched profiles that fit the kind (configured,
    else detected): a kind narrows the matches, it never stops identification."""
    configured = kind if kind not in NO_KIND else None
    effective = configured or detected_kind
    spec: KindSpec = kind_spec(effective or "adhoc")
    origin: dict[str, str] = {}
    if named:
        for name in ("system", *named):
            origin.setdefault(name, "check")
    else:
        for name in spec.profiles:
            origin.setdefault(name, "kind")
        for profile in matched:
            if effective is None or not profile.kinds or effective in profile.kinds:
                origin.setdefault(profile.name, "match")
    chosen = tuple(known(origin))
    needs = dict(spec.needs)
    if named:
        # A check that names its profiles chose what to watch: it needs only what
        # those profiles can answer (a switch's `system`-only check is not blind).
        providable = {v.provides for p in chosen for v in _values(p) if v.provides}
        needs = {k: v for k, v in needs.items() if k in providable}
    return Selection(chosen, origin, effective, needs)


def _values(profile: Profile) -> list[ValueSpec]:
    return [*profile.scalars, *(c for t in profile.tables for c in t.columns)]


# -- identity ----------------------------------------------------------------------

FIELDS = ("vendor", "model", "firmware", "serial")


def _canonical_vendor(text: str) -> str:
    table = vendors()
    return table.aliases.get(text.strip().casefold(), text)


def _from_idents(got: Mapping[Oid, Raw], idents: Iterable[IdentSpec]) -> dict[str, str]:
    info: dict[str, str] = {}
    for spec in idents:
        answered: dict[str, str] = {}
        for key, oid in (("vendor", spec.vendor_oid), ("model", spec.model_oid),
                         ("firmware", spec.firmware_oid), ("serial", spec.serial_oid)):
            raw = got.get(parse_oid(oid), MISSING) if oid else MISSING
            if key == "serial" and spec.serial_format == "mac_digits":
                text = raw.hex().upper() if isinstance(raw, bytes) and len(raw) == 6 else None
            else:
                text = text_of(raw)
            if text and text.strip():
                answered[key] = text.strip()
        family = text_of(got.get(parse_oid(spec.family_oid), MISSING)) if spec.family_oid \
            else None
        if family and family.strip() and "model" in answered:
            answered["model"] = bounded(f"{family.strip()} {answered['model']}")
        for key, pattern in (("model", spec.model_pattern),
                             ("firmware", spec.firmware_pattern)):
            if pattern and key in answered:
                match = re.search(pattern, answered.pop(key))
                groups = {k: v for k, v in (match.groupdict() if match else {}).items() if v}
                answered.update({k: bounded(v.strip()) for k, v in groups.items()})
        if not answered:
            continue
        if "vendor" in answered:
            answered["vendor"] = _canonical_vendor(answered["vendor"])
        elif spec.vendor:
            answered["vendor"] = spec.vendor
        for key, value in answered.items():
            info.setdefault(key, value)
    return info


def _from_entity(entity: Entity) -> dict[str, str]:
    chassis = entity.chassis
    if not chassis:
        return {}
    info: dict[str, str] = {}
    first = chassis[0]
    if len(chassis) == 1:
        for key, value in (("model", first.model), ("firmware", first.firmware),
                           ("serial", first.serial)):
            if value:
                info[key] = value
    else:
        info["model"] = stack_model([c.model for c in chassis])
        serials = [c.serial for c in chassis if c.serial]
        if serials:
            info["serial"] = bounded(", ".join(serials), 400)
        firmware = next((c.firmware for c in chassis if c.firmware), None)
        if firmware:
            info["firmware"] = firmware
        info["stack_members"] = str(len(chassis))
        info["members"] = bounded("; ".join(
            f"{c.member}: {c.model or '?'} {c.serial or '?'}" for c in chassis), 1000)
    if first.vendor:
        info["vendor"] = _canonical_vendor(first.vendor)
    return info


def stack_model(models: Sequence[str | None]) -> str:
    """"3× WS-C2960X-48FPS-L", or for mixed members "3× (2× A + 1× B)"."""
    counts: dict[str, int] = {}
    for model in models:
        counts[model or "?"] = counts.get(model or "?", 0) + 1
    if len(counts) == 1:
        return f"{len(models)}× {next(iter(counts))}"
    parts = " + ".join(f"{n}× {m}" for m, n in counts.items())
    return bounded(f"{len(models)}× ({parts})", 200)


def _from_descr(descr: str) -> tuple[str | None, dict[str, str]]:
    for pattern in vendors().sysdescr:
        match = _search(pattern.match, descr)
        if match is None:
            continue
        found: dict[str, str] = {}
        for key in ("model", "firmware", "serial"):
            value = match.groupdict().get(key)
            if value and value.strip() and (key != "model" or pattern.model_group):
                found[key] = bounded(value.strip())
        if pattern.vendor is None and not found:
            continue
        return pattern.vendor, found
    return None, {}


def identify(facts: Facts, got: Mapping[Oid, Raw], idents: Iterable[IdentSpec],
             entity: Entity) -> dict[str, str]:
    """vendor/model/firmware/serial, each from the first source that has it: the
    vendor MIBs, then ENTITY-MIB, then sysDescr (the vendor: vendor MIB, then the
    enterprise table, then ENTITY-MIB's manufacturer, then a sysDescr pattern)."""
    vendor_mib = _from_idents(got, idents)
    from_entity = _from_entity(entity)
    descr_vendor, from_descr = _from_descr(facts.descr) if facts.descr else (None, {})
    info: dict[str, str] = {}
    enterprise = facts.enterprise
    vendor = (vendor_mib.get("vendor")
              or (vendors().enterprises.get(enterprise) if enterprise is not None else None)
              or from_entity.get("vendor") or descr_vendor)
    if vendor:
        info["vendor"] = vendor
    for key in ("model", "firmware", "serial"):
        value = vendor_mib.get(key) or from_entity.get(key) or from_descr.get(key)
        if value:
            info[key] = value
    for key in ("stack_members", "members"):
        if key in from_entity:
            info[key] = from_entity[key]
    if facts.object_id:
        info["object_id"] = ".".join(map(str, facts.object_id))
    if facts.descr:
        info["description"] = bounded(facts.descr)
    return info


@dataclass(slots=True)
class Detection:
    """What detection found for one (device, check); kept until it is redone."""

    object_id: Oid | None
    matched: tuple[str, ...]  # profile names whose match rules held
    kind: str | None  # the kind the match implies
    info: dict[str, str]
    members: Mapping[int, str] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() of the detection
    address: str = ""  # host:port it was made at

    def matched_profiles(self) -> list[Profile]:
        table = profiles()
        return [table[n] for n in self.matched if n in table]
