"""What the agent answered → named values (the profiles say how).

Scalars become ``snmp.<name>``, table cells ``snmp.<table>.<column>{<index_label>="…",
…}`` (see probes.labelled).  An OID the agent lacks is listed as missing, never
reported as 0.  A value that ``provides`` a capability marks it provided once it was
read, whatever it says (a failed disk is still a readable disk).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from elvwatch.probes import labelled
from elvwatch.probes.base import Value, bounded
from elvwatch.probes.snmp_profiles import TableSpec, ValueSpec
from elvwatch.probes.snmp_session import MISSING, Oid, Raw, parse_oid

WRAP32 = 2**32


@dataclass(slots=True)
class Reading:
    """What a profile run produced."""

    values: dict[str, Value] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    provided: set[str] = field(default_factory=set)  # capabilities something answered
    answered: int = 0  # values read (several profiles may write the same name)


def text_of(raw: Raw, fmt: str = "text") -> str | None:
    """An answer as bounded text (``fmt``: text, hex, mac, ip); None when absent."""
    if raw is MISSING:
        return None
    if isinstance(raw, bytes):
        printable = raw.isascii() and raw.decode("ascii").isprintable()
        if fmt == "mac" and len(raw) == 6 and not printable:
            return ":".join(f"{b:02x}" for b in raw)
        if fmt == "ip" and len(raw) in (4, 16):
            return str(ipaddress.ip_address(raw))
        if fmt in ("hex", "mac", "ip"):
            if fmt != "hex" and raw.isascii() and raw.strip():
                return bounded(raw.decode("ascii"))  # an agent sending it as text
            return raw.hex()
        return bounded(raw.decode("utf-8", "replace"))
    if isinstance(raw, tuple):
        return ".".join(map(str, raw))
    return bounded(str(raw))


def _plain_number(raw: Raw) -> float | None:
    if isinstance(raw, bytes):  # some agents send numbers as strings ("15 PERCENT")
        head = re.match(rb"\s*(-?\d+(?:\.\d+)?)", raw)
        return float(head.group(1)) if head else None
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    return None


def value_of(spec: ValueSpec, raw: Raw) -> Value | None:
    """The named value of one answer (None: absent, or a code the profile does not
    know — reported missing rather than guessed)."""
    if spec.text:
        return text_of(raw, spec.format)
    if spec.map_text is not None:
        text = text_of(raw)
        return spec.map_text.get(text.strip().lower()) if text is not None else None
    number = _plain_number(raw)
    if number is None:
        return None
    if spec.map is not None:
        return spec.map.get(int(number))
    return scaled(number, spec.scale)


def scaled(number: float, scale: float | None) -> float:
    """``number × scale`` without binary noise (27.2, not 27.200000000000003)."""
    return number if scale is None else float(f"{number * scale:.15g}")


def _degrades(spec: ValueSpec, raw: Raw) -> bool:
    if isinstance(raw, int) and raw in spec.degraded_when:
        return True
    if spec.degraded_text and isinstance(raw, bytes):
        text = text_of(raw)
        return text is not None and text.strip().lower() in spec.degraded_text
    return False


def apply_scalar(spec: ValueSpec, got: Mapping[Oid, Raw], reading: Reading) -> None:
    name = f"snmp.{spec.name}"
    raw = got.get(spec.oid_tuple, MISSING)
    value = value_of(spec, raw)
    if value is None and spec.fallback is not None:
        raw = got.get(parse_oid(spec.fallback.oid), MISSING)
        number = _plain_number(raw)
        if number is not None:
            value = scaled(number, spec.fallback.scale)
    if value is None:
        reading.missing.append(name)
        return
    reading.values[name] = value
    reading.answered += 1
    if spec.provides:
        reading.provided.add(spec.provides)
    if _degrades(spec, raw):
        reading.degraded.append(spec.reason or f"{name} = {text_of(raw)}")


def _index_text(suffix: Oid, arcs: int | None = None, fmt: str = "oid") -> str:
    if arcs is not None and len(suffix) > arcs and not any(suffix[arcs:]):
        suffix = suffix[:arcs]
    if fmt == "mac" and len(suffix) >= 6 and all(0 <= a < 256 for a in suffix[-6:]):
        mac = ":".join(f"{a:02x}" for a in suffix[-6:])
        head = ".".join(map(str, suffix[:-6]))
        return f"{head}/{mac}" if head else mac
    return ".".join(map(str, suffix))


@dataclass(slots=True)
class TableMemory:
    """What a table looked like on earlier polls (per device, check and table)."""

    present: set[str] = field(default_factory=set)  # row keys ever seen
    on: set[str] = field(default_factory=set)  # rows whose track_loss column was 1
    # Primary OIDs the agent lacks: their fallbacks are walked instead.
    fallback: frozenset[str] = frozenset()
    # 32-bit counters: "column|row" → (last raw answer, running total).
    counters: dict[str, tuple[int, float]] = field(default_factory=dict)
    # ``every`` tables: when they were walked, and what that gave.
    walked_at: float | None = None
    cached: Reading | None = None


def walk_plan(table: TableSpec, fallback: frozenset[str]) -> list[Oid]:
    """Every column this table needs, each once: a primary OID the agent lacks is
    replaced by its fallback."""
    oids: list[str] = []
    for column in table.columns:
        if column.fallback is not None and column.oid in fallback:
            oids.append(column.fallback.oid)
        else:
            oids.append(column.oid)
        oids += column.row_oids()
    for label in table.labels:
        choices = table.label_oids(label)
        usable = [o for o in choices if o not in fallback]
        oids.append(usable[0] if usable else choices[-1])
    if table.only_rows is not None:
        oids.append(table.only_rows.oid)
    if table.member_from and table.member_from != "index":
        oids.append(table.member_from)
    return list(dict.fromkeys(parse_oid(o) for o in oids))


def lacking(table: TableSpec, walked: Mapping[Oid, Mapping[Oid, Raw]],
            fallback: frozenset[str]) -> frozenset[str]:
    """Primary OIDs that came back empty while the table has rows, and that have a
    fallback not yet in use."""
    if not any(walked.get(c.oid_tuple) for c in table.columns) and not any(
            walked.get(parse_oid(c.fallback.oid)) for c in table.columns if c.fallback):
        return frozenset()  # no table at all: nothing to fall back from
    out: set[str] = set()
    for column in table.columns:
        if (column.fallback is not None and column.oid not in fallback
                and not walked.get(column.oid_tuple)):
            out.add(column.oid)
    for label in table.labels:
        choices = table.label_oids(label)
        for oid in choices[:-1]:
            if oid not in fallback and not walked.get(parse_oid(oid)):
                out.add(oid)
                break
    return frozenset(out)


@dataclass(slots=True)
class RowContext:
    """Per-poll facts a table needs beyond its own answers."""

    members: Mapping[int, str] = field(default_factory=dict)  # entPhysicalIndex → member
    rebooted: bool = False  # 32-bit counters restart instead of wrapping


def _label_cells(table: TableSpec, walked: Mapping[Oid, Mapping[Oid, Raw]],
                 label: str) -> Mapping[Oid, Raw]:
    for oid in table.label_oids(label):
        cells = walked.get(parse_oid(oid))
        if cells:
            return cells
    return {}


def _keep_row(table: TableSpec, walked: Mapping[Oid, Mapping[Oid, Raw]], row: Oid) -> bool:
    rule = table.only_rows
    if rule is None:
        return True
    text = text_of(walked.get(parse_oid(rule.oid), {}).get(row, MISSING))
    if rule.equals is not None and text != rule.equals:
        return False
    return not (rule.unless and text is not None
                and text.strip().lower() in {u.lower() for u in rule.unless})


def _member(table: TableSpec, walked: Mapping[Oid, Mapping[Oid, Raw]], row: Oid,
            members: Mapping[int, str]) -> str | None:
    if not table.member_from or not members:
        return None
    if table.member_from == "index":
        entity: Raw = row[-1] if row else MISSING
    else:
        entity = walked.get(parse_oid(table.member_from), {}).get(row, MISSING)
    return members.get(entity) if isinstance(entity, int) else None


def _counter(column: ValueSpec, key: str, raw: int, memory: TableMemory,
             context: RowContext) -> float:
    """A 32-bit counter as a running total that keeps growing across wraps."""
    last = memory.counters.get(key)
    if last is None or context.rebooted:
        total = float(raw)
    else:
        before, total = last
        total += (raw - before) % WRAP32
    memory.counters[key] = (raw, total)
    return total


def _cell(column: ValueSpec, walked: Mapping[Oid, Mapping[Oid, Raw]], row: Oid,
          key: str, memory: TableMemory, context: RowContext) -> tuple[Value | None, Raw]:
    primary = walked.get(column.oid_tuple)
    if primary or column.fallback is None:
        raw = (primary or {}).get(row, MISSING)
        return value_of(column, raw), raw
    fallback = column.fallback
    raw = walked.get(parse_oid(fallback.oid), {}).get(row, MISSING)
    if fallback.wrap32 and isinstance(raw, int):
        number: float | None = _counter(column, key, raw, memory, context)
    else:
        number = _plain_number(raw)
    if number is None:
        return None, raw
    return scaled(number, fallback.scale), raw


def _row_name(column: ValueSpec, walked: Mapping[Oid, Mapping[Oid, Raw]],
              row: Oid) -> str | None:
    if column.by_type is None:
        return column.name
    code = walked.get(parse_oid(column.by_type.oid), {}).get(row, MISSING)
    return column.by_type.names.get(code) if isinstance(code, int) else None


def _row_scaled(column: ValueSpec, walked: Mapping[Oid, Mapping[Oid, Raw]], row: Oid,
                value: float) -> float | None:
    """The value times the row's own factors (hrStorage allocation units; a sensor's
    SI prefix, decimal places and type factor); None when one of them is missing."""
    def cell(oid: str) -> int | None:
        raw = walked.get(parse_oid(oid), {}).get(row, MISSING)
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else None

    if column.times:
        factor = cell(column.times)
        if factor is None:
            return None
        value *= factor
    exponent = 0
    if column.si_prefix:
        prefix = cell(column.si_prefix)
        if prefix is None or not 1 <= prefix <= 17:
            return None
        exponent += 3 * (prefix - 9)  # units(9) = 10^0, kilo(10) = 10^3, milli(8) = 10^-3
    if column.precision:
        places = cell(column.precision)
        if places is None or not -8 <= places <= 9:
            return None
        exponent -= places
    if column.by_type is not None:
        code = cell(column.by_type.oid)
        value *= column.by_type.scale.get(code, 1.0) if code is not None else 1.0
    return scaled(value, 10.0 ** exponent) if exponent else value


def apply_table(table: TableSpec, walked: Mapping[Oid, Mapping[Oid, Raw]],
                reading: Reading, before: TableMemory | None,
                context: RowContext | None = None) -> TableMemory:
    """Fill ``reading`` from a walked table; returns the memory to keep for the next
    poll (rows present now or before, rows on now or before and not switched off)."""
    context = context or RowContext()
    memory = TableMemory(fallback=before.fallback if before else frozenset(),
                         counters=dict(before.counters) if before else {})
    label_cols = {k: _label_cells(table, walked, k) for k in table.labels}
    rows: set[Oid] = set()
    for column in table.columns:
        rows.update(walked.get(column.oid_tuple, {}))
        if column.fallback is not None:
            rows.update(walked.get(parse_oid(column.fallback.oid), {}))
    rows = {r for r in rows if _keep_row(table, walked, r)}
    if not rows and not table.optional and not (before and before.present):
        reading.missing.append(f"table {table.name}")
    present: set[str] = set()
    values_of: dict[str, dict[str, Value]] = {}
    where_of: dict[str, str] = {}  # row key → how a reason names the row
    for row in sorted(rows):
        labels = {table.index_label: _index_text(row, table.index_arcs, table.index_format)}
        member = _member(table, walked, row, context.members)
        if member is not None:
            labels["member"] = member
        for label, cells in label_cols.items():
            text = text_of(cells.get(row, MISSING), table.label_format.get(label, "text"))
            if text:
                labels[label] = text
        key = labels[table.index_label]
        present.add(key)
        where_of[key] = labels.get("port") or labels.get("name") or (
            f"member {labels['member']}" if "member" in labels
            else f"{table.index_label} {key}")
        row_values = values_of[key] = {}
        suffix = labelled.join("", labels)  # escaped once per row, not per column
        for column in table.columns:
            column_name = _row_name(column, walked, row)
            if column_name is None:
                continue  # a row of a kind this column does not name (a sensor type)
            name = f"snmp.{table.name}.{column_name}{suffix}"
            value, raw = _cell(column, walked, row, f"{column.name}|{key}", memory, context)
            if value is not None and not isinstance(value, str):
                value = _row_scaled(column, walked, row, value)
            if value is None:
                reading.missing.append(name)
                continue
            reading.values[name] = row_values[column_name] = value
            reading.answered += 1
            if column.provides:
                reading.provided.add(column.provides)
            if _degrades(column, raw):
                reading.degraded.append(f"{column.reason or column.name} ({where_of[key]})")
    seen_before = before.present if before else set()
    if table.track_presence:
        for key in sorted(present):
            reading.values[labelled.join(f"snmp.{table.name}.present",
                                         {table.index_label: key})] = 1.0
        for key in sorted(seen_before - present):
            reading.values[labelled.join(f"snmp.{table.name}.present",
                                         {table.index_label: key})] = 0.0
            reading.degraded.append(f"{table.name} {key} missing")
        memory.present = present | seen_before
    memory.on = _losses(table, values_of, where_of, reading, before.on if before else set())
    return memory


def _losses(table: TableSpec, values_of: Mapping[str, Mapping[str, Value]],
            where_of: Mapping[str, str], reading: Reading, on_before: set[str]) -> set[str]:
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
                where = where_of.get(key, f"{table.index_label} {key}")
                reading.degraded.append(f"{table.loss_reason} ({where})")
        reading.values[labelled.join(f"snmp.{table.name}.lost",
                                     {table.index_label: key})] = lost
    return on
