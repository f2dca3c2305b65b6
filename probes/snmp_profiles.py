"""SNMP profiles: which devices a MIB belongs to, which OIDs to read and what their
numbers mean, as data.

Profiles live in ``probes/profiles/snmp/*.yaml`` (one per MIB or vendor), the
enterprise table and sysDescr patterns in ``_vendors.yaml`` and, per device kind,
the default profiles and what such a device must answer in ``_kinds.yaml``.
Everything is validated when first loaded; a bad file is a bug in the shipped data
and raises with the file named.

A profile says

* ``match``: the devices it is for — enterprise numbers, sysObjectID prefixes,
  sysDescr patterns, or an OID the agent answers (agents without a system group);
  a rule may imply the device's kind (a Dahua ``…3.2`` sysObjectID is an NVR);
* ``kinds``: the device kinds it applies to (a configured kind narrows the matched
  profiles to these; empty: any kind);
* ``ident``: vendor MIB OIDs naming model, firmware and serial;
* ``scalars`` and ``tables``: the values (probes/snmp_reading.py turns answers into
  values).  A value may ``provide`` a capability a kind ``needs`` (an NVR needs
  ``disks``): a device whose needed capability nothing answered is *blind* there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from elvwatch.probes.snmp_ber import Oid, parse_oid

PROFILE_DIR = Path(__file__).parent / "profiles" / "snmp"
_NAME = r"^[a-z][a-z0-9_.]*$"
_KIND = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(value: str) -> str:
    re.compile(value)
    return value


class Fallback(_Strict):
    """Another OID for the same value, read when the first one gives nothing (IF-MIB
    without ifXTable: ifSpeed for ifHighSpeed, 32-bit octets for the HC counters)."""

    oid: str
    scale: float | None = None
    # The fallback is a 32-bit counter: its wraps are added up, so the value keeps
    # growing like the 64-bit one it stands in for.
    wrap32: bool = False


class TypeNames(_Strict):
    """A table column whose rows hold different quantities (ENTITY-SENSOR-MIB's
    entPhySensorValue: degrees, volts, rpm …): each row's value is named after the
    code in another column of the same row; rows of other codes are skipped."""

    oid: str  # the column holding the code (entPhySensorType)
    names: dict[int, str]  # code → value name (in base units: celsius, volts_dc, rpm)
    scale: dict[int, float] = {}  # code → a further factor (percent RH → ratio)

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[int, str]) -> dict[int, str]:
        for name in value.values():
            if not re.match(_NAME, name):
                raise ValueError(f"value name {name!r} must match {_NAME}")
        return value


class ValueSpec(_Strict):
    """One OID → one named value."""

    name: str = Field(pattern=_NAME)
    oid: str
    scale: float | None = None  # multiply: to base units (centiseconds → seconds)
    map: dict[int, float] | None = None  # enum → number; unmapped codes are missing
    # Text answers → number (keys lower case; the answer is trimmed and lowered).
    map_text: dict[str, float] | None = None
    text: bool = False  # keep as (bounded) text, not a number
    format: Literal["text", "hex", "mac", "ip"] = "text"  # how text answers are shown
    times: str | None = None  # table only: multiply by this column (hrStorage units)
    degraded_when: tuple[int, ...] = ()  # raw codes that make the check degraded
    degraded_text: tuple[str, ...] = ()  # text answers (lower case) that do
    reason: str | None = None  # said in the error when degraded_when matches
    fallback: Fallback | None = None
    provides: str | None = Field(None, pattern=_KIND)  # a capability kinds may need
    # Table columns only: the row's name from a type column, and the value scaled by
    # the row's SI prefix code (yocto(1) … units(9) … yotta(17), ENTITY-SENSOR-MIB's
    # EntitySensorDataScale) and its count of decimal places (EntitySensorPrecision).
    by_type: TypeNames | None = None
    si_prefix: str | None = None
    precision: str | None = None

    @property
    def oid_tuple(self) -> Oid:
        return parse_oid(self.oid)

    def row_oids(self) -> list[str]:
        """Further columns of the same row this value is computed from."""
        return [o for o in (self.times, self.si_prefix, self.precision,
                            self.by_type.oid if self.by_type else None) if o]

    @field_validator("map_text")
    @classmethod
    def _lower(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return {k.strip().lower(): v for k, v in value.items()} if value else value


class RowFilter(_Strict):
    oid: str  # a column of the same table
    equals: str | None = None  # dotted OID or integer, compared as text
    unless: tuple[str, ...] = ()  # text answers (any case) whose rows are skipped


class TableSpec(_Strict):
    name: str = Field(pattern=_NAME)
    index_label: str = Field("index", pattern=r"^[a-z_]+$")
    # label name → text column OID, or a list of OIDs: the first one the agent has
    # (ifName, else ifDescr).
    labels: dict[str, str | tuple[str, ...]] = {}
    label_format: dict[str, Literal["text", "hex", "mac", "ip"]] = {}
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
    # Arcs of the index the MIB defines: some agents append ".0" to table rows
    # (MGE "1.0", Hikvision "1.0"); such trailing zeros are dropped.
    index_arcs: int | None = Field(None, ge=1)
    # "mac": the last six index arcs are a MAC address (forwarding tables), shown as
    # aa:bb:cc:dd:ee:ff after any leading arcs and a "/" ("10/aa:bb:…": VLAN 10).
    index_format: Literal["oid", "mac"] = "oid"
    # Rows are parts of a stack member: label ``member`` from the row's ENTITY-MIB
    # index — "index" (the row index is an entPhysicalIndex) or a column OID holding
    # one (Cisco's PSE → entPhysicalIndex).
    member_from: str | None = None
    # Many devices of the profile lack it (fans, casing): an empty table is not listed
    # as missing.
    optional: bool = False
    # Seconds between walks for slow-changing tables (LLDP neighbours, forwarding
    # tables): in between, the values of the last walk are reported again.
    every: float | None = Field(None, gt=0)

    def label_oids(self, label: str) -> tuple[str, ...]:
        oids = self.labels[label]
        return (oids,) if isinstance(oids, str) else oids


class IdentSpec(_Strict):
    """Vendor identification OIDs (read once per detection)."""

    vendor: str | None = None  # the vendor these OIDs belong to
    vendor_oid: str | None = None
    model_oid: str | None = None
    # Said before the model ("Eaton 9PX" + "1000i RT 2U"), when it answers.
    family_oid: str | None = None
    firmware_oid: str | None = None
    serial_oid: str | None = None
    # How the serial is shown: as sent, or from 6 bytes as 12 upper-case hex digits
    # (Axis serial numbers are the MAC address).
    serial_format: Literal["text", "mac_digits"] = "text"
    # A regex whose named groups (model/firmware/serial) are taken from the model
    # OID's answer, for agents that pack several facts into one string.
    model_pattern: str | None = None
    firmware_pattern: str | None = None  # the same for the firmware OID's answer

    @field_validator("model_pattern", "firmware_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        return _regex(value) if value else value

    def oids(self) -> list[str]:
        return [o for o in (self.vendor_oid, self.model_oid, self.family_oid,
                            self.firmware_oid, self.serial_oid) if o]


class MatchRule(_Strict):
    """One way to recognise a device; every condition given must hold."""

    enterprise: int | None = Field(None, ge=0)  # sysObjectID under 1.3.6.1.4.1.N
    object_id: str | None = None  # sysObjectID prefix (whole arcs)
    sysdescr: str | None = None  # regex searched in sysDescr
    unless_sysdescr: str | None = None  # …and this one not (an Eaton ATS is no UPS)
    # An OID the agent answers with something non-empty (for agents that send no
    # sysObjectID: Hikvision cameras answer only their private MIB).
    probe: str | None = None
    kind: str | None = Field(None, pattern=_KIND)  # the device kind this implies

    @field_validator("sysdescr", "unless_sysdescr")
    @classmethod
    def _descr_compiles(cls, value: str | None) -> str | None:
        return _regex(value) if value else value

    @model_validator(mode="after")
    def _some_condition(self) -> MatchRule:
        if not (self.enterprise is not None or self.object_id or self.sysdescr or self.probe):
            raise ValueError("a match rule needs enterprise, object_id, sysdescr or probe")
        return self

    @property
    def specificity(self) -> int:
        """Rules that say more win when they imply different kinds."""
        score = 0
        if self.probe:
            score += 100
        if self.object_id:
            score += 10 + len(parse_oid(self.object_id))
        if self.sysdescr:
            score += 5
        return score


class Profile(_Strict):
    name: str = Field(pattern=_NAME)
    description: str
    kinds: tuple[str, ...] = ()
    match: tuple[MatchRule, ...] = ()
    ident: tuple[IdentSpec, ...] = ()
    scalars: tuple[ValueSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()

    @model_validator(mode="after")
    def _row_options_in_tables(self) -> Profile:
        for spec in self.scalars:
            if spec.row_oids():
                raise ValueError(f"scalar {spec.name}: times, by_type, si_prefix and "
                                 "precision are for table columns")
        return self

    def ident_oids(self) -> list[Oid]:
        return [parse_oid(o) for spec in self.ident for o in spec.oids()]

    def scalar_oids(self) -> list[Oid]:
        oids = [s.oid_tuple for s in self.scalars]
        oids += [parse_oid(s.fallback.oid) for s in self.scalars if s.fallback]
        return oids


class DescrPattern(_Strict):
    vendor: str | None = None  # None: only model/firmware, for any vendor
    match: str  # regex on sysDescr; named groups model/firmware/serial are taken
    model_group: bool = True

    @field_validator("match")
    @classmethod
    def _match_compiles(cls, value: str) -> str:
        return _regex(value)


class VendorTable(_Strict):
    enterprises: dict[int, str]
    sysdescr: tuple[DescrPattern, ...] = ()
    # Device-sent manufacturer names → the table's spelling ("EATON" → "Eaton").
    aliases: dict[str, str] = {}

    @field_validator("aliases")
    @classmethod
    def _fold(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().casefold(): v for k, v in value.items()}


class KindSpec(_Strict):
    profiles: tuple[str, ...]
    # capability → what is said when nothing provides it ("NVR disks not readable")
    needs: dict[str, str] = {}


def _load(path: Path, model: type[BaseModel]) -> object:
    try:
        return model.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


@functools.cache
def profiles() -> Mapping[str, Profile]:
    out: dict[str, Profile] = {}
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        profile = _load(path, Profile)
        assert isinstance(profile, Profile)
        if profile.name in out:
            raise ValueError(f"{path}: profile {profile.name!r} defined twice")
        out[profile.name] = profile
    return out


@functools.cache
def vendors() -> VendorTable:
    table = _load(PROFILE_DIR / "_vendors.yaml", VendorTable)
    assert isinstance(table, VendorTable)
    return table


@functools.cache
def kinds() -> Mapping[str, KindSpec]:
    path = PROFILE_DIR / "_kinds.yaml"
    data = yaml.safe_load(path.read_text("utf-8"))
    out = {str(k): KindSpec.model_validate(v) for k, v in data.items()}
    known = profiles()
    for kind, spec in out.items():
        unknown = [n for n in spec.profiles if n not in known]
        if unknown:
            raise ValueError(f"{path}: kind {kind!r} names unknown profile(s) "
                             f"{', '.join(unknown)}")
    return out


def known(names: Iterable[str]) -> list[Profile]:
    """The profiles named, in order; unknown names raise KeyError with the list."""
    table = profiles()
    names = list(names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise KeyError(f"unknown SNMP profile(s) {', '.join(unknown)} "
                       f"(known: {', '.join(sorted(table))})")
    return [table[n] for n in names]


def kind_spec(kind: str) -> KindSpec:
    return kinds().get(kind) or KindSpec(profiles=("system",))
