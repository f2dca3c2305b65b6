"""SNMP profiles: which OIDs to read and what their numbers mean, as data.

Profiles live in ``probes/profiles/snmp/*.yaml`` (one per MIB or vendor), vendor
identification in ``probes/profiles/snmp/_vendors.yaml`` and the default profiles
per device kind in ``probes/profiles/snmp/_kinds.yaml``.  Everything is validated
when first loaded; a bad file is a bug in the shipped data and raises.

``evaluate`` turns what the agent answered into named values: scalars become
``snmp.<name>``, table cells ``snmp.<table>.<column>{<index_label>="…",…}`` (see
probes.labelled).  An OID the agent lacks is listed as missing, never reported as 0.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from probes import labelled
from probes.base import Value, bounded
from probes.snmp_session import MISSING, Oid, Raw, parse_oid

PROFILE_DIR = Path(__file__).parent / "profiles" / "snmp"
_NAME = r"^[a-z][a-z0-9_.]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Strict):
    """One OID → one named value."""

    name: str = Field(pattern=_NAME)
    oid: str
    scale: float | None = None  # multiply: to base units (centiseconds → seconds)
    map: dict[int, float] | None = None  # enum → number; unmapped codes are missing
    text: bool = False  # keep as (bounded) text, not a number
    times: str | None = None  # table only: multiply by this column (hrStorage units)
    degraded_when: tuple[int, ...] = ()  # raw codes that make the check degraded
    reason: str | None = None  # said in the error when degraded_when matches

    @property
    def oid_tuple(self) -> Oid:
        return parse_oid(self.oid)


class RowFilter(_Strict):
    oid: str  # a column of the same table
    equals: str  # dotted OID or integer, compared as text


class TableSpec(_Strict):
    name: str = Field(pattern=_NAME)
    index_label: str = Field("index", pattern=r"^[a-z_]+$")
    labels: dict[str, str] = {}  # label name → text column OID (ifName, ifAlias …)
    columns: tuple[ValueSpec, ...]
    only_rows: RowFilter | None = None  # e.g. hrDevice rows that are disks
    track_presence: bool = False  # a row seen before and gone now is "missing"
    # A 1/0 column whose 1 → 0 is a loss: ``snmp.<table>.lost{index}`` is 1 while a
    # row that was 1 on an earlier poll is not (any more, or no longer there), else 0
    # (PoE: a port that powered a camera stopped).  A row whose ``loss_unless``
    # column is 0 (PoE switched off by the admin) was turned off on purpose: not lost.
    track_loss: str | None = None
    loss_unless: str | None = None
    loss_reason: str = "lost"
    max_rows: int | None = Field(None, ge=1)

    def walk_oids(self) -> list[Oid]:
        """Every column this table needs, each once, in a stable order."""
        oids = [c.oid_tuple for c in self.columns]
        oids += [parse_oid(c.times) for c in self.columns if c.times]
        oids += [parse_oid(v) for v in self.labels.values()]
        if self.only_rows is not None:
            oids.append(parse_oid(self.only_rows.oid))
        return list(dict.fromkeys(oids))


class IdentSpec(_Strict):
    """Vendor identification OIDs (tried in a GET with the system group)."""

    vendor: str | None = None  # the vendor these OIDs belong to
    vendor_oid: str | None = None
    model_oid: str | None = None
    firmware_oid: str | None = None
    serial_oid: str | None = None


class Profile(_Strict):
    name: str
    description: str
    scalars: tuple[ValueSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    ident: tuple[IdentSpec, ...] = ()


class DescrPattern(_Strict):
    vendor: str
    match: str  # regex on sysDescr; named groups model/firmware are taken
    model_group: bool = True

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class VendorTable(_Strict):
    enterprises: dict[int, str]
    sysdescr: tuple[DescrPattern, ...] = ()


@functools.cache
def profiles() -> Mapping[str, Profile]:
    out: dict[str, Profile] = {}
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        profile = Profile.model_validate(yaml.safe_load(path.read_text("utf-8")))
        out[profile.name] = profile
    return out


@functools.cache
def vendors() -> VendorTable:
    return VendorTable.model_validate(
        yaml.safe_load((PROFILE_DIR / "_vendors.yaml").read_text("utf-8")))


@functools.cache
def kind_profiles() -> Mapping[str, tuple[str, ...]]:
    data = yaml.safe_load((PROFILE_DIR / "_kinds.yaml").read_text("utf-8"))
    return {str(k): tuple(v) for k, v in data.items()}


def resolve(names: Iterable[str] | None, kind: str) -> list[Profile]:
    """Profiles named in the check, else the kind's defaults, always with ``system``."""
    chosen = list(names) if names else list(kind_profiles().get(kind, ("system",)))
    if "system" not in chosen:
        chosen.insert(0, "system")
    known = profiles()
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise KeyError(f"unknown SNMP profile(s) {', '.join(unknown)} "
                       f"(known: {', '.join(sorted(known))})")
    return [known[n] for n in chosen]


@dataclass(slots=True)
class Reading:
    """What a profile run produced."""

    values: dict[str, Value] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)


def text_of(raw: Raw) -> str | None:
    if raw is MISSING:
        return None
    if isinstance(raw, bytes):
        return bounded(raw.decode("utf-8", "replace"))
    if isinstance(raw, tuple):
        return ".".join(map(str, raw))
    return bounded(str(raw))


def _number(spec: ValueSpec, raw: Raw) -> Value | None:
    if spec.text:
        return text_of(raw)
    if isinstance(raw, bytes):  # some agents send numbers as strings ("15 PERCENT")
        head = re.match(rb"\s*(-?\d+(?:\.\d+)?)", raw)
        if head is None:
            return None
        number = float(head.group(1))
    elif isinstance(raw, int | float):
        number = float(raw)
    else:
        return None
    if spec.map is not None:
        mapped = spec.map.get(int(number))
        return mapped
    return number * spec.scale if spec.scale is not None else number


def apply_scalar(spec: ValueSpec, raw: Raw, reading: Reading) -> None:
    name = f"snmp.{spec.name}"
    value = _number(spec, raw)
    if value is None:
        reading.missing.append(name)
        return
    reading.values[name] = value
    if isinstance(raw, int) and raw in spec.degraded_when:
        reading.degraded.append(spec.reason or f"{name} = {raw}")


def _index_text(suffix: Oid) -> str:
    return ".".join(map(str, suffix))


@dataclass(slots=True)
class TableMemory:
    """What a table looked like on earlier polls (per device and check)."""

    present: set[str] = field(default_factory=set)  # row keys ever seen
    on: set[str] = field(default_factory=set)  # rows whose track_loss column was 1


def apply_table(table: TableSpec, walked: Mapping[Oid, Mapping[Oid, Raw]],
                reading: Reading, before: TableMemory | None) -> TableMemory:
    """Fill ``reading`` from a walked table; returns the memory to keep for the next
    poll (rows present now or before, rows on now or before and not switched off)."""
    label_cols = {k: walked.get(parse_oid(v), {}) for k, v in table.labels.items()}
    rows: set[Oid] = set()
    for column in table.columns:
        rows.update(walked.get(column.oid_tuple, {}))
    if table.only_rows is not None:
        keep = walked.get(parse_oid(table.only_rows.oid), {})
        rows = {r for r in rows if text_of(keep.get(r, MISSING)) == table.only_rows.equals}
    present: set[str] = set()
    values_of: dict[str, dict[str, Value]] = {}
    for row in sorted(rows):
        labels = {table.index_label: _index_text(row)}
        for label, cells in label_cols.items():
            text = text_of(cells.get(row, MISSING))
            if text:
                labels[label] = text
        present.add(labels[table.index_label])
        row_values = values_of[labels[table.index_label]] = {}
        suffix = labelled.join("", labels)  # escaped once per row, not per column
        for column in table.columns:
            name = f"snmp.{table.name}.{column.name}{suffix}"
            raw = walked.get(column.oid_tuple, {}).get(row, MISSING)
            value = _number(column, raw)
            if column.times and isinstance(value, float):
                factor = walked.get(parse_oid(column.times), {}).get(row, MISSING)
                value = value * factor if isinstance(factor, int) else None
            if value is None:
                reading.missing.append(name)
                continue
            reading.values[name] = row_values[column.name] = value
            if isinstance(raw, int) and raw in column.degraded_when:
                where = labels.get("port") or labels.get("name") or (
                    f"{table.index_label} {labels[table.index_label]}")
                reading.degraded.append(f"{column.reason or column.name} ({where})")
    seen_before = before.present if before else set()
    if table.track_presence:
        for key in sorted(present):
            reading.values[labelled.join(f"snmp.{table.name}.present",
                                         {table.index_label: key})] = 1.0
        for key in sorted(seen_before - present):
            reading.values[labelled.join(f"snmp.{table.name}.present",
                                         {table.index_label: key})] = 0.0
            reading.degraded.append(f"{table.name} {key} missing")
    on = _losses(table, values_of, reading, before.on if before else set())
    return TableMemory(present | seen_before if table.track_presence else set(), on)


def _losses(table: TableSpec, values_of: Mapping[str, Mapping[str, Value]],
            reading: Reading, on_before: set[str]) -> set[str]:
    if table.track_loss is None:
        return set()
    on: set[str] = set()
    for key in sorted(set(values_of) | on_before):
        row = values_of.get(key, {})
        if table.loss_unless and row.get(table.loss_unless) == 0:
            lost = 0.0  # switched off on purpose: forgotten
        elif row.get(table.track_loss) == 1:
            on.add(key)
            lost = 0.0
        elif table.track_loss not in row and key in values_of:
            on.update({key} & on_before)
            continue  # unknown now: neither lost nor restored
        else:
            lost = 1.0 if key in on_before else 0.0
            if lost:
                on.add(key)
                reading.degraded.append(f"{table.loss_reason} ({table.index_label} {key})")
        reading.values[labelled.join(f"snmp.{table.name}.lost",
                                     {table.index_label: key})] = lost
    return on
