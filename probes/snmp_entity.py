"""ENTITY-MIB (RFC 6933): the chassis rows of a device — one for a single switch,
one per member for a stack — and which member every other part belongs to.

Read once per detection: one side-by-side walk of entPhysicalClass and
entPhysicalContainedIn, then one GET of the names, models, software and serials of
the chassis rows only (a 9-member stack has ~600 entity rows; walking every column
of every row would cost tens of requests).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from elvwatch.probes.base import bounded
from elvwatch.probes.snmp_reading import text_of
from elvwatch.probes.snmp_session import MISSING, Raw, Session

ENT_PHYSICAL = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)
DESCR, CONTAINED_IN, CLASS, NAME, FIRMWARE_REV, SOFTWARE_REV, SERIAL, MFG, MODEL = (
    2, 4, 5, 7, 9, 10, 11, 12, 13)
CHASSIS, STACK = 3, 11
MAX_ROWS = 4096
FALLBACK_ROWS = 64
MAX_DEPTH = 32  # containment chains longer than this are a broken agent
# A description that is one word ("C9200L-48P-4X") is a model; a sentence is not.
_MODEL_LIKE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+()-]{1,47}$")


@dataclass(frozen=True, slots=True)
class Chassis:
    index: int
    member: str  # stack member number ("1"), from entPhysicalName or the row order
    model: str | None
    firmware: str | None
    serial: str | None
    vendor: str | None


@dataclass(frozen=True, slots=True)
class Entity:
    chassis: tuple[Chassis, ...]  # rows that describe a present unit
    members: Mapping[int, str]  # every entPhysicalIndex → its member (stacks only)


def _model(model: str | None, descr: str | None, name: str | None,
           sys_descr: str | None) -> str | None:
    """entPhysicalModelName; else a one-word entPhysicalDescr or entPhysicalName —
    the one sysDescr mentions first (Huawei puts the model in the name and may put
    the host name in the description)."""
    if model:
        return model
    if descr and "," in descr:
        # Huawei: "CE12804,CE12804-AC,CE12804 AC Assembly Chassis(…)": model first.
        descr = descr.split(",", 1)[0].strip()
    words = [w for w in (descr, name) if w and _MODEL_LIKE.match(w) and not w.isdigit()]
    mentioned = [w for w in words if sys_descr and w in sys_descr]
    chosen = mentioned or words
    if not chosen:
        return None
    # A short name the description spells out: "5900AF" in "HPE 5900AF-48G-4XG-2QSFP+
    # Switch Software Version 7.1.045" is the 5900AF-48G-4XG-2QSFP+.
    longer = [w for w in (descr or "").split() if w.startswith(chosen[0])
              and len(w) > len(chosen[0]) and _MODEL_LIKE.match(w)]
    return longer[0] if longer else chosen[0]


def _firmware(text: str | None) -> str | None:
    if not text:
        return None
    return re.sub(r"^(?:version|ver\.?)\s+", "", text, flags=re.IGNORECASE) or None


def _member_number(name: str | None, position: int) -> str:
    match = re.search(r"(\d+)\s*$", name or "")
    return match.group(1) if match else str(position)


async def read_entity(session: Session, sys_descr: str | None = None) -> Entity:
    walked = await session.walk([(*ENT_PHYSICAL, CLASS), (*ENT_PHYSICAL, CONTAINED_IN)],
                                MAX_ROWS)
    classes = {row[-1]: v for row, v in walked[(*ENT_PHYSICAL, CLASS)].items()
               if len(row) == 1 and isinstance(v, int)}
    parents = {row[-1]: v for row, v in walked[(*ENT_PHYSICAL, CONTAINED_IN)].items()
               if len(row) == 1 and isinstance(v, int)}
    rows = sorted(i for i, c in classes.items() if c == CHASSIS)
    if not classes:
        return await _without_classes(session)
    if not rows:
        return Entity((), {})
    columns = (DESCR, NAME, FIRMWARE_REV, SOFTWARE_REV, SERIAL, MFG, MODEL)
    got = await session.get([(*ENT_PHYSICAL, c, i) for i in rows for c in columns])
    chassis: list[Chassis] = []
    for position, index in enumerate(rows, start=1):
        cell = {c: _text(got.get((*ENT_PHYSICAL, c, index), MISSING)) for c in columns}
        model = _model(cell[MODEL], cell[DESCR], cell[NAME], sys_descr)
        serial = cell[SERIAL]
        if not (model or serial):
            continue  # an empty slot of a stack (the unit is not there)
        chassis.append(Chassis(
            index, _member_number(cell[NAME], position), model,
            _firmware(cell[SOFTWARE_REV] or cell[FIRMWARE_REV]), serial, cell[MFG]))
    members = _members(parents, {c.index: c.member for c in chassis}) if len(chassis) > 1 \
        else {}
    return Entity(tuple(chassis), members)


async def _without_classes(session: Session) -> Entity:
    """Agents that leave out entPhysicalClass: the first row naming a model is taken
    as the chassis (a stack cannot be told apart then)."""
    columns = [(*ENT_PHYSICAL, c) for c in (MODEL, SERIAL, SOFTWARE_REV)]
    walked = await session.walk(columns, FALLBACK_ROWS)
    models = {row: _text(v) for row, v in walked[columns[0]].items()}
    for row in sorted(models):
        if models[row]:
            return Entity((Chassis(
                row[-1], "1", models[row], _firmware(_text(walked[columns[2]].get(row, MISSING))),
                _text(walked[columns[1]].get(row, MISSING)), None),), {})
    return Entity((), {})


def _text(raw: Raw) -> str | None:
    text = text_of(raw)
    return bounded(text, 64) if text and text.strip() else None


def _members(parents: Mapping[int, int], chassis: Mapping[int, str]) -> dict[int, str]:
    """Every row's member: follow entPhysicalContainedIn up to a chassis row."""
    out = dict(chassis)
    for index in parents:
        seen: list[int] = []
        node: int | None = index
        while node is not None and node not in out and len(seen) < MAX_DEPTH:
            seen.append(node)
            node = parents.get(node)
        member = out.get(node) if node is not None else None
        if member is not None:
            for row in seen:
                out[row] = member
    return out
