"""Modbus register maps ("profiles") as data, and decoding registers into values.

A map is a YAML file (``probes/profiles/modbus/NAME.yaml`` ships with elvwatch; a user
map is any file given by absolute path or found in ``$ELVWATCH_MODBUS_PROFILES``).  Each
*point* names one value read from the device::

    - name: battery_voltage_volts     # -> Observation value modbus.battery_voltage_volts
      function: input                 # holding | input | coil | discrete
      address: 10                     # zero-based, as on the wire
      type: uint16                    # bool uint16 int16 uint32 int32 float32 bitfield enum
      word_order: big                 # 32-bit types: big = high word first
      scale: 0.01                     # value = raw * scale + offset
      unit: V
      faults:                         # which value means which fault
        - {below: 11.5, status: degraded, reason: battery voltage low}

Bit fields give one 0/1 value per named bit (bit 0 = least significant); enums give the
raw code plus ``<name>_label``.  The map is validated when loaded; a map that does not fit
what the device answers is the probe's business (``unknown`` with the reason).
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Function = Literal["holding", "input", "coil", "discrete"]
PointType = Literal["bool", "uint16", "int16", "uint32", "int32", "float32", "bitfield", "enum"]
FaultStatus = Literal["degraded", "down"]

SHIPPED_DIR = Path(__file__).parent / "profiles" / "modbus"
PROFILE_ENV = "ELVWATCH_MODBUS_PROFILES"
# Modbus limits per request (spec: 125 registers, 2000 bits); maps never need more.
MAX_REGISTERS = 125
MAX_BITS = 2000
_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_WIDTH = {"bool": 1, "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
_STRUCT = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fault(_Strict):
    """A condition on a decoded value that means the device has a fault."""

    equals: float | str | None = None
    above: float | None = None
    below: float | None = None
    status: FaultStatus = "degraded"
    reason: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_condition(self) -> Fault:
        given = [c for c in (self.equals, self.above, self.below) if c is not None]
        if len(given) != 1:
            raise ValueError("a fault needs exactly one of equals, above, below")
        return self

    def matches(self, value: float, label: str | None = None) -> bool:
        if self.equals is not None:
            if isinstance(self.equals, str):
                return label == self.equals
            return value == self.equals
        if self.above is not None:
            return value > self.above
        return self.below is not None and value < self.below


class Bit(_Strict):
    name: str = Field(pattern=_NAME)
    bit: int = Field(ge=0, le=31)
    # The bit's value that means a fault (None: the bit is only reported).
    fault_when: Literal[0, 1] | None = None
    status: FaultStatus = "degraded"
    reason: str | None = Field(None, max_length=200)


class Point(_Strict):
    name: str = Field(pattern=_NAME)
    function: Function
    address: int = Field(ge=0, le=65535)
    type: PointType
    word_order: Literal["big", "little"] = "big"
    # Registers a bitfield or enum spans (1 or 2); numeric types know their width.
    registers: Literal[1, 2] = 1
    scale: float = 1.0
    offset: float = 0.0
    unit: str = Field("", max_length=16)
    bits: tuple[Bit, ...] = ()
    enum: Mapping[int, str] = Field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _fits_function(self) -> Point:
        bit_function = self.function in ("coil", "discrete")
        if bit_function != (self.type == "bool"):
            raise ValueError("coil and discrete points are type bool; registers are not")
        if self.type == "bitfield":
            if not self.bits:
                raise ValueError("a bitfield needs bits")
            if max(b.bit for b in self.bits) >= 16 * self.registers:
                raise ValueError(f"bit number beyond {16 * self.registers} bits")
            if self.faults:
                raise ValueError("a bitfield's faults are given per bit (fault_when)")
        elif self.bits:
            raise ValueError("bits are only for type bitfield")
        if (self.type == "enum") != bool(self.enum):
            raise ValueError("type enum needs an enum table (and only enum has one)")
        if self.address + self.width - 1 > 65535:
            raise ValueError("point runs past address 65535")
        return self

    @property
    def width(self) -> int:
        """Registers (or bits, for coil/discrete) the point occupies."""
        return self.registers if self.type in ("bitfield", "enum") else _WIDTH[self.type]


class Profile(_Strict):
    name: str
    description: str = ""
    # Addresses this far apart are still read in one request; 0 reads only contiguous
    # points together, which every device accepts (many reject reads over holes).
    max_gap: int = Field(0, ge=0, le=100)
    points: tuple[Point, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Profile:
        names: list[str] = []
        for p in self.points:
            names += [b.name for b in p.bits] if p.type == "bitfield" else [p.name]
            if p.type == "enum":
                names.append(f"{p.name}_label")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"value names used twice: {', '.join(dupes)}")
        return self


class ProfileError(ValueError):
    """A map cannot be found or is invalid; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers/bits of ``function`` from ``address``."""

    function: Function
    address: int
    count: int
    points: tuple[Point, ...]

    def describe(self) -> str:
        kind = {"holding": "holding registers", "input": "input registers",
                "coil": "coils", "discrete": "discrete inputs"}[self.function]
        return f"{kind} {self.address}-{self.address + self.count - 1}"


def plan_reads(profile: Profile) -> tuple[Block, ...]:
    """Group the profile's points into as few requests as the map allows."""
    blocks: list[Block] = []
    for function in ("holding", "input", "coil", "discrete"):
        points = sorted((p for p in profile.points if p.function == function),
                        key=lambda p: p.address)
        limit = MAX_BITS if function in ("coil", "discrete") else MAX_REGISTERS
        current: list[Point] = []
        start = end = 0
        for p in points:
            p_end = p.address + p.width
            if current and p.address <= end + profile.max_gap and \
                    max(end, p_end) - start <= limit:
                current.append(p)
                end = max(end, p_end)
                continue
            if current:
                blocks.append(Block(function, start, end - start, tuple(current)))
            current, start, end = [p], p.address, p_end
        if current:
            blocks.append(Block(function, start, end - start, tuple(current)))
    return tuple(blocks)


@dataclass(frozen=True, slots=True)
class Decoded:
    values: dict[str, float | str]
    # (status, reason) for every fault condition met.
    faults: list[tuple[FaultStatus, str]]
    # Points whose raw data made no sense (NaN float, unknown enum code).
    problems: list[str]


def decode_block(block: Block, data: Sequence[int] | Sequence[bool], prefix: str) -> Decoded:
    """Values of every point of ``block`` from what the device returned for it.

    ``data`` must hold at least ``block.count`` entries (the caller reports short reads).
    """
    out = Decoded({}, [], [])
    for p in block.points:
        at = p.address - block.address
        if p.type == "bool":
            _apply(p, 1.0 if data[at] else 0.0, None, prefix, out)
            continue
        regs = [int(r) & 0xFFFF for r in data[at:at + p.width]]
        if p.word_order == "little":
            regs.reverse()
        raw_bytes = b"".join(r.to_bytes(2, "big") for r in regs)
        if p.type in ("bitfield", "enum"):
            raw = int.from_bytes(raw_bytes, "big")
            if p.type == "bitfield":
                _bits(p, raw, prefix, out)
                continue
            label = p.enum.get(raw)
            if label is None:
                out.problems.append(f"{p.name}: code {raw} is not in the map's enum")
            out.values[f"{prefix}{p.name}_label"] = label or f"code {raw}"
            _apply(p, float(raw), label, prefix, out)
            continue
        number = float(struct.unpack(_STRUCT[p.type], raw_bytes)[0])
        if not math.isfinite(number):
            out.problems.append(f"{p.name}: not a finite number")
            continue
        value = number * p.scale + p.offset
        if p.scale != 1.0 or p.offset != 0.0:
            # 3500 * 0.01 is 35.000000000000004 in binary; keep what the device meant.
            value = float(f"{value:.12g}")
        _apply(p, value, None, prefix, out)
    return out


def _apply(p: Point, value: float, label: str | None, prefix: str, out: Decoded) -> None:
    out.values[f"{prefix}{p.name}"] = value
    for fault in p.faults:
        if fault.matches(value, label):
            out.faults.append((fault.status, fault.reason))


def _bits(p: Point, raw: int, prefix: str, out: Decoded) -> None:
    for b in p.bits:
        bit = (raw >> b.bit) & 1
        out.values[f"{prefix}{b.name}"] = float(bit)
        if b.fault_when is not None and bit == b.fault_when:
            out.faults.append((b.status, b.reason or b.name.replace("_", " ")))


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def profile_path(name: str) -> Path:
    """Where map ``name`` lives: an absolute path, ``$ELVWATCH_MODBUS_PROFILES``, shipped."""
    if os.path.isabs(name):
        return Path(name)
    if not _PROFILE_NAME.match(name) or ".." in name:
        raise ProfileError(f"bad profile name {name!r}: use a shipped name or an absolute path")
    user_dir = os.environ.get(PROFILE_ENV)
    for directory in ([Path(user_dir)] if user_dir else []) + [SHIPPED_DIR]:
        candidate = directory / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    raise ProfileError(f"unknown modbus profile {name!r} (shipped: "
                       f"{', '.join(shipped_profiles())})")


def load_profile(name: str) -> Profile:
    """The validated map ``name``; cached per file and modification time."""
    path = profile_path(name)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ProfileError(f"modbus profile {str(path)!r}: {exc.strerror}") from None
    return _load(path, mtime)


@lru_cache(maxsize=64)
def _load(path: Path, _mtime: int) -> Profile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"modbus profile {str(path)!r}: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"modbus profile {str(path)!r}: expected a mapping at the top")
    raw.setdefault("name", path.stem)
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProfileError(f"modbus profile {str(path)!r}: {where}: {first['msg']} "
                           f"({exc.error_count()} error(s))") from None
