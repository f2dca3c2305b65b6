"""The SNMP pull probe: identify the device, read its profiles, say what it means.

One run = one GET (system group + every profile's scalars + vendor identification
OIDs) and one side-by-side GETBULK walk per table, all inside the check's timeout.
Values are named by the profiles (probes/snmp_profiles.py); per-row values carry
labels (probes/labelled.py).  Beyond the profiles:

* ``snmp.rebooted`` is 1 on the run that sees sysUpTime drop, else 0;
* ``snmp.missing_oids`` counts what the agent did not answer, and the text value
  ``snmp.missing`` names them — a missing OID is never reported as 0;
* the check is ``degraded`` when a profile's ``degraded_when`` matches (UPS on
  battery, disk failed, PoE fault), with the reasons in ``error``;
* ``down`` with an error starting "authentication" / "timeout" when the agent
  cannot be read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from probes.base import (
    Check,
    Observation,
    ProbeConfigError,
    Status,
    Target,
    bounded,
    check_options,
    down,
)
from probes.snmp_profiles import (
    IdentSpec,
    Profile,
    Reading,
    TableMemory,
    apply_scalar,
    apply_table,
    profiles,
    resolve,
    text_of,
)
from probes.snmp_profiles import vendors as vendor_table
from probes.snmp_session import (
    MISSING,
    Oid,
    Raw,
    Session,
    SnmpAddressError,
    SnmpError,
    SnmpTimeout,
    auth_data,
    parse_oid,
)

DEFAULT_PORT = 161
SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 2, 0), (
    1, 3, 6, 1, 2, 1, 1, 3, 0)
ENTERPRISES = (1, 3, 6, 1, 4, 1)
# sysUpTime is a 32-bit count of centiseconds: it wraps after ~497 days.  A "drop"
# from within the last day before the wrap is the wrap, not a reboot.
UPTIME_WRAP = 2**32 / 100
MISSING_LIST_LIMIT = 20


class SnmpOptions(BaseModel):
    """``params`` of an ``snmp`` check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["1", "2c", "3"] = "2c"
    # Comma-separated profile names; empty = the device kind's defaults.
    profiles: tuple[str, ...] = ()
    retries: int = Field(1, ge=0, le=5)
    max_rows: int = Field(512, ge=1, le=10_000)  # per table column
    max_repetitions: int = Field(25, ge=1, le=100)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return {1: "1", 2: "2c", 3: "3", "2": "2c", "v1": "1", "v2c": "2c",
                "v3": "3"}.get(value, value)  # type: ignore[call-overload,unused-ignore]

    @field_validator("profiles", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("profiles")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = profiles()
        unknown = [n for n in value if n not in known]
        if unknown:
            raise ValueError(f"unknown SNMP profile(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return value


# Last uptime and table rows per (device, check), to see reboots and vanished disks.
_LAST_UPTIME: dict[tuple[str, str], float] = {}
_LAST_ROWS: dict[tuple[str, str, str], TableMemory] = {}


def forget(device: str) -> None:
    """Drop remembered state of a device (removed from the config)."""
    for key in [k for k in _LAST_UPTIME if k[0] == device]:
        del _LAST_UPTIME[key]
    for rkey in [k for k in _LAST_ROWS if k[0] == device]:
        del _LAST_ROWS[rkey]


async def probe_snmp(target: Target, check: Check) -> Observation:
    options = check_options(check, SnmpOptions)
    try:
        chosen = resolve(options.profiles, target.kind)
    except KeyError as exc:
        raise ProbeConfigError("snmp", str(exc.args[0])) from None
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
        return down(target, check, str(exc), latency=time.monotonic() - started)
    try:
        try:
            reading, info = await _read(session, chosen, options, target, check)
        except SnmpTimeout:
            await session.diagnose_timeout()
            raise
    except SnmpError as exc:
        return down(target, check, str(exc), latency=time.monotonic() - started)
    latency = time.monotonic() - started
    status = Status.DEGRADED if reading.degraded else Status.OK
    error = bounded("; ".join(dict.fromkeys(reading.degraded))) if reading.degraded else None
    return Observation(target.device, check.name, status, values=reading.values,
                       latency=latency, error=error, info=info)


async def _read(session: Session, chosen: list[Profile], options: SnmpOptions,
                target: Target, check: Check) -> tuple[Reading, dict[str, str]]:
    idents = [i for p in chosen for i in p.ident]
    ident_oids = [parse_oid(o) for i in idents
                  for o in (i.vendor_oid, i.model_oid, i.firmware_oid, i.serial_oid) if o]
    scalar_oids = [s.oid_tuple for p in chosen for s in p.scalars]
    got = await session.get(list(dict.fromkeys(
        [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, *scalar_oids, *ident_oids])))
    if all(v is MISSING for v in got.values()):
        raise SnmpError("the agent answered but has none of the OIDs asked for")
    reading = Reading()
    for profile in chosen:
        before = (len(reading.values), len(reading.missing))
        for spec in profile.scalars:
            apply_scalar(spec, got[spec.oid_tuple], reading)
        for table in profile.tables:
            rows = min(options.max_rows, table.max_rows or options.max_rows)
            walked = await session.walk(table.walk_oids(), rows)
            key = (target.device, check.name, table.name)
            memory = apply_table(table, walked, reading, _LAST_ROWS.get(key))
            if memory.present or memory.on:
                _LAST_ROWS[key] = memory
            else:
                _LAST_ROWS.pop(key, None)
        if len(reading.values) == before[0] and len(reading.missing) > before[1]:
            # Nothing of this profile answered: the device does not speak that MIB
            # (a vendor MIB on another vendor's UPS).  Say so once, not per OID.
            del reading.missing[before[1]:]
            reading.missing.append(f"profile {profile.name}")
    _reboot(got.get(SYS_UPTIME, MISSING), reading, (target.device, check.name))
    # Several profiles may name the same value (UPS-MIB and a vendor MIB): one that
    # answered wins over one that did not.
    missing = sorted({m for m in reading.missing if m not in reading.values})
    reading.values["snmp.missing_oids"] = float(len(missing))
    if missing:
        shown = missing[:MISSING_LIST_LIMIT]
        more = len(missing) - len(shown)
        reading.values["snmp.missing"] = ", ".join(shown) + (f" (+{more})" if more else "")
    reading.values["snmp.requests"] = float(session.requests)
    return reading, identify(got, idents)


def _reboot(uptime: Raw, reading: Reading, key: tuple[str, str]) -> None:
    if not isinstance(uptime, int):
        return  # no sysUpTime: reboots cannot be seen, and "0" would be a lie
    now = uptime / 100
    before = _LAST_UPTIME.get(key)
    _LAST_UPTIME[key] = now
    if before is None:
        return
    wrapped = before > UPTIME_WRAP - 86_400
    reading.values["snmp.rebooted"] = 1.0 if now < before and not wrapped else 0.0


def identify(got: Mapping[Oid, Raw], idents: list[IdentSpec]) -> dict[str, str]:
    """vendor/model/firmware/serial from sysObjectID, vendor OIDs and sysDescr, each
    taken from the first source that answered."""
    info: dict[str, str] = {}
    table = vendor_table()
    object_id = got.get(SYS_OBJECT_ID, MISSING)
    if isinstance(object_id, tuple) and object_id[:6] == ENTERPRISES and len(object_id) > 6:
        vendor = table.enterprises.get(object_id[6])
        if vendor:
            info["vendor"] = vendor
        info["object_id"] = ".".join(map(str, object_id))
    for spec in idents:
        fields = {"vendor": spec.vendor_oid, "model": spec.model_oid,
                  "firmware": spec.firmware_oid, "serial": spec.serial_oid}
        answered: dict[str, str] = {}
        for key, oid in fields.items():
            text = text_of(got.get(parse_oid(oid), MISSING)) if oid else None
            if text:
                answered[key] = text
        if not answered:
            continue
        if spec.vendor and "vendor" not in answered:
            answered["vendor"] = spec.vendor
        for key, value in answered.items():
            info.setdefault(key, value)
    descr = text_of(got.get(SYS_DESCR, MISSING))
    if descr:
        info["description"] = descr
        for pattern in table.sysdescr:
            match = re.search(pattern.match, descr)
            if match is None:
                continue
            info.setdefault("vendor", pattern.vendor)
            groups = match.groupdict()
            for key in ("model", "firmware"):
                if groups.get(key) and (key != "model" or pattern.model_group):
                    info.setdefault(key, bounded(groups[key]))
            break
    return info
