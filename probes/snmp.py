"""The SNMP pull probe: identify the device, read its profiles, say what it means.

The first run of a check *detects* the device (probes/snmp_detect.py: system group,
match rules, vendor identification, ENTITY-MIB) and keeps what it found; detection
is redone when sysObjectID changes, sysUpTime drops (a reboot may bring new
firmware) or a day has passed.  Every run = one GET (system group + the chosen
profiles' scalars) and one side-by-side GETBULK walk per table, all inside the
check's timeout; tables marked ``every`` (LLDP, forwarding tables) are walked only
that often.  Values are named by the profiles; per-row values carry labels
(probes/labelled.py).  Beyond the profiles:

* ``snmp.profile`` (text) names the profiles read, ``info`` carries identification;
* ``snmp.rebooted`` is 1 on the run that sees sysUpTime drop, else 0;
* ``snmp.missing_oids`` counts what the agent did not answer, and the text value
  ``snmp.missing`` names them — a missing OID is never reported as 0;
* ``snmp.blind`` is 1 when something the device's kind needs (an NVR's disks, a
  UPS's power state, a switch's ports) was answered by none of its profiles, with
  ``snmp.blind_reason``; the check is then ``degraded`` ("monitoring blind: …");
* the check is ``degraded`` when a profile's ``degraded_when`` matches (UPS on
  battery, disk failed, PoE fault), with the reasons in ``error``;
* ``down`` with an error starting "authentication" / "timeout" when the agent
  cannot be read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from elvwatch.probes.base import (
    Check,
    Observation,
    Status,
    Target,
    bounded,
    check_options,
    down,
)
from elvwatch.probes.memory import memory_of_run
from elvwatch.probes.snmp_detect import (
    SYS_OBJECT_ID,
    SYS_UPTIME,
    SYSTEM,
    Detection,
    Facts,
    Selection,
    identify,
    matching,
    probe_oids,
    select,
)
from elvwatch.probes.snmp_entity import Entity, read_entity
from elvwatch.probes.snmp_options import SnmpOptions
from elvwatch.probes.snmp_profiles import Profile, TableSpec
from elvwatch.probes.snmp_reading import (
    Reading,
    RowContext,
    TableMemory,
    apply_scalar,
    apply_table,
    lacking,
    walk_plan,
)
from elvwatch.probes.snmp_session import (
    MISSING,
    Oid,
    Raw,
    Session,
    SnmpAddressError,
    SnmpError,
    SnmpTimeout,
    auth_data,
)

DEFAULT_PORT = 161
# sysUpTime is a 32-bit count of centiseconds: it wraps after ~497 days.  A "drop"
# from within the last day before the wrap is the wrap, not a reboot.
UPTIME_WRAP = 2**32 / 100
MISSING_LIST_LIMIT = 20
# Identification is redone this often even without a reboot (agents without
# sysUpTime cannot show one; a firmware upgrade is a reboot on the others).
REDETECT_SECONDS = 86_400.0


@dataclass
class SnmpMemory:
    """What one SNMP check remembers between its runs (probes/memory.py): the agent's
    last uptime, what detection found, and each table's rows by profile and table."""

    uptime: float | None = None
    detection: Detection | None = None
    rows: dict[str, TableMemory] = field(default_factory=dict)


async def probe_snmp(target: Target, check: Check) -> Observation:
    options = check_options(check, SnmpOptions)
    auth = auth_data(options.version, target.credential)
    started = time.monotonic()
    port = check.port or target.ports.get("snmp", DEFAULT_PORT)
    # Stop sending requests a little before the scheduler's own timeout fires, so a
    # slow walk ends as a clear error instead of a cancellation.
    try:
        session = await Session.open(target.host, port, auth, options.version,
                                     budget_seconds=check.timeout * 0.9,
                                     retries=options.retries,
                                     max_repetitions=options.max_repetitions)
    except SnmpAddressError as exc:  # the host name does not resolve
        return down(target, check, str(exc), latency=time.monotonic() - started,
                    reason=exc.cause)
    memory = memory_of_run().get(SnmpMemory)
    try:
        try:
            reading, info = await _read(session, options, target, memory,
                                        f"{target.host}:{port}")
        except SnmpTimeout:
            await session.diagnose_timeout()
            raise
    except SnmpError as exc:
        return down(target, check, str(exc), latency=time.monotonic() - started,
                    reason=exc.cause)
    latency = time.monotonic() - started
    status = Status.DEGRADED if reading.degraded else Status.OK
    error = bounded("; ".join(dict.fromkeys(reading.degraded))) if reading.degraded else None
    return Observation(target.device, check.name, status, values=reading.values,
                       latency=latency, error=error, info=info)


async def _detect(session: Session, options: SnmpOptions, target: Target, memory: SnmpMemory,
                  address: str) -> tuple[Detection, Selection, dict[Oid, Raw]]:
    got = await session.get(list(dict.fromkeys([*SYSTEM, *probe_oids()])))
    facts = Facts.of(got)
    matched, kind = matching(facts)
    selection = select(options.profiles, target.kind, matched, kind)
    idents = [i for p in _unique([*matched, *selection.profiles]) for i in p.ident]
    wanted = [o for p in _unique([*matched, *selection.profiles]) for o in p.ident_oids()]
    wanted += _scalar_oids(selection.profiles)
    got.update(await session.get([o for o in dict.fromkeys(wanted) if o not in got]))
    try:
        entity = await read_entity(session, facts.descr)
    except SnmpTimeout:
        raise
    except SnmpError:
        entity = Entity((), {})  # a broken ENTITY-MIB costs its identity, not the check
    info = identify(facts, got, idents, entity)
    if kind:
        info["kind"] = kind
    detection = Detection(facts.object_id, tuple(p.name for p in matched), kind, info,
                          entity.members, time.monotonic(), address)
    memory.detection = detection
    return detection, selection, got


def _unique(items: Iterable[Profile]) -> list[Profile]:
    return list({p.name: p for p in items}.values())


def _scalar_oids(chosen: Iterable[Profile]) -> list[Oid]:
    return [o for p in chosen for o in p.scalar_oids()]


def _changed(detection: Detection, got: Mapping[Oid, Raw]) -> bool:
    """Another device answers (sysObjectID differs, or nothing of its profiles does)."""
    object_id = got.get(SYS_OBJECT_ID, MISSING)
    if isinstance(object_id, tuple) and object_id != detection.object_id:
        return True
    return all(v is MISSING for v in got.values())


async def _read(session: Session, options: SnmpOptions, target: Target, memory: SnmpMemory,
                address: str) -> tuple[Reading, dict[str, str]]:
    detection = memory.detection
    if detection is not None and (detection.address != address
                                  or time.monotonic() - detection.at > REDETECT_SECONDS):
        detection = None  # an old detection, or the address changed: another device?
    fresh = detection is None
    if detection is None:
        detection, selection, got = await _detect(session, options, target, memory, address)
    else:
        selection = select(options.profiles, target.kind, detection.matched_profiles(),
                           detection.kind)
        got = await session.get(list(dict.fromkeys(
            [*SYSTEM, *_scalar_oids(selection.profiles)])))
    reading = Reading()
    rebooted = _reboot(got.get(SYS_UPTIME, MISSING), reading, memory)
    if not fresh and _changed(detection, got):
        detection, selection, got = await _detect(session, options, target, memory, address)
    elif rebooted:
        # New firmware comes with a reboot: identify again on the next run (this one
        # reads as before, so the reboot itself is reported without delay).
        detection.at = -REDETECT_SECONDS
    if all(v is MISSING for v in got.values()):
        raise SnmpError("the agent answered but has none of the OIDs asked for")
    context = RowContext(detection.members, rebooted)
    for profile in selection.profiles:
        before = (reading.answered, len(reading.missing))
        for spec in profile.scalars:
            apply_scalar(spec, got, reading)
        if profile.tables:
            await _tables(session, options, memory.rows, profile.name, profile.tables,
                          reading, context)
        if reading.answered == before[0]:
            # Nothing of this profile answered: the device does not speak that MIB
            # (a vendor MIB on another vendor's UPS).  Say so once, not per OID.
            del reading.missing[before[1]:]
            reading.missing.append(f"profile {profile.name}")
    _report(reading, selection, session)
    info = dict(detection.info)
    info["profiles"] = ",".join(p.name for p in selection.profiles)
    return reading, info


async def _tables(session: Session, options: SnmpOptions, rows_of: dict[str, TableMemory],
                  profile: str, tables: Iterable[TableSpec], reading: Reading,
                  context: RowContext) -> None:
    """Walk a profile's tables side by side (one GETBULK stream for all their columns:
    a camera's five small Axis tables cost one or two requests, not five)."""
    now = time.monotonic()
    due: list[tuple[TableSpec, str, TableMemory | None]] = []
    for table in tables:
        key = f"{profile}.{table.name}"
        before = rows_of.get(key)
        if (table.every is not None and before is not None and before.cached is not None
                and before.walked_at is not None and now - before.walked_at < table.every):
            _replay(before.cached, reading)
        else:
            due.append((table, key, before))
    if not due:
        return
    limits: dict[Oid, int] = {}
    for table, _, _ in due:
        rows = min(options.max_rows, table.max_rows or options.max_rows)
        for oid in walk_plan(table, frozenset(_all_oids(table))):
            limits[oid] = max(limits.get(oid, 0), rows)
        for oid in walk_plan(table, frozenset()):
            limits[oid] = max(limits.get(oid, 0), rows)
    rows = max(limits.values())
    plans = {t.name: walk_plan(t, b.fallback if b else frozenset()) for t, _, b in due}
    walked = await session.walk(list(dict.fromkeys(o for p in plans.values() for o in p)),
                                rows, limits)
    more: list[Oid] = []
    fallbacks: dict[str, frozenset[str]] = {}
    for table, _, before in due:
        fallback = before.fallback if before else frozenset()
        lacks = lacking(table, walked, fallback)
        fallbacks[table.name] = fallback | lacks
        if lacks:
            # The agent lacks some primary columns (no ifXTable): walk their fallbacks
            # now, and only those from the next poll on.
            more += [o for o in walk_plan(table, fallback | lacks) if o not in walked]
    if more:
        walked.update(await session.walk(list(dict.fromkeys(more)), rows, limits))
    for table, key, before in due:
        own = Reading() if table.every is not None else reading
        memory = apply_table(table, walked, own, before, context)
        memory.fallback = fallbacks[table.name]
        if table.every is not None:
            memory.walked_at, memory.cached = now, own
            _replay(own, reading)
        if (memory.present or memory.on or memory.fallback or memory.counters
                or memory.cached):
            rows_of[key] = memory
        else:
            rows_of.pop(key, None)


def _all_oids(table: TableSpec) -> list[str]:
    """Every primary OID of a table that has a fallback (to plan the fallback walk)."""
    return [c.oid for c in table.columns if c.fallback] + [
        o for label in table.labels for o in table.label_oids(label)[:-1]]


def _replay(cached: Reading, reading: Reading) -> None:
    reading.answered += cached.answered
    reading.values.update(cached.values)
    reading.missing.extend(cached.missing)
    reading.degraded.extend(cached.degraded)
    reading.provided |= cached.provided


def _report(reading: Reading, selection: Selection, session: Session) -> None:
    blind = [reason for need, reason in selection.needs.items()
             if need not in reading.provided]
    reading.values["snmp.blind"] = 1.0 if blind else 0.0
    if blind:
        reading.values["snmp.blind_reason"] = bounded("; ".join(blind))
        reading.degraded.extend(f"monitoring blind: {reason}" for reason in blind)
    # Several profiles may name the same value (UPS-MIB and a vendor MIB): one that
    # answered wins over one that did not.
    missing = sorted({m for m in reading.missing if m not in reading.values})
    reading.values["snmp.missing_oids"] = float(len(missing))
    if missing:
        shown = missing[:MISSING_LIST_LIMIT]
        more = len(missing) - len(shown)
        reading.values["snmp.missing"] = ", ".join(shown) + (f" (+{more})" if more else "")
    reading.values["snmp.profile"] = ",".join(p.name for p in selection.profiles)
    reading.values["snmp.requests"] = float(session.requests)


def _reboot(uptime: Raw, reading: Reading, memory: SnmpMemory) -> bool:
    if not isinstance(uptime, int):
        return False  # no sysUpTime: reboots cannot be seen, and "0" would be a lie
    now = uptime / 100
    before, memory.uptime = memory.uptime, now
    if before is None:
        return False
    wrapped = before > UPTIME_WRAP - 86_400
    rebooted = now < before and not wrapped
    reading.values["snmp.rebooted"] = 1.0 if rebooted else 0.0
    return rebooted

