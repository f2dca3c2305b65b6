"""Every fault a shipped profile flags — of every protocol — opens a ticket.

A profile value that makes a check degraded (SNMP ``degraded_when``/``degraded_text``,
rows lost or gone; Modbus bit and point faults; MQTT ``fault_if``/``fault_below``) but
that no built-in rule reads shows in the status and never opens a ticket.  Here each
such value, as the probe names it, is fed to the rule engine with all built-in rules for
a device of the kind the profile is for, and some rule must fire."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from elvwatch.probes import labelled
from elvwatch.probes.base import Status
from elvwatch.probes.modbus_maps import load_profile, shipped_profiles
from elvwatch.probes.mqtt_profiles import builtin_profiles
from elvwatch.probes.snmp_profiles import Profile as SnmpProfile
from elvwatch.probes.snmp_profiles import ValueSpec as SnmpValue
from elvwatch.probes.snmp_profiles import kinds as snmp_kinds
from elvwatch.probes.snmp_profiles import profiles as snmp_profiles
from elvwatch.probes.snmp_reading import value_of
from elvwatch.rules.faults import FaultState
from tests.rulekit import device, engine, ob

KINDS = yaml.safe_load((Path(__file__).parent.parent / "config" / "kinds.yaml")
                       .read_text("utf-8"))
# Profiles of the push and Modbus sources say nothing of the devices they are for:
# (kind, system) of the device each is shipped for.  A new profile must be added here.
MODBUS_DEVICES = {"generic_alarm_panel": ("alarm_panel", "alarm"),
                  "generic_ups": ("ups", "power"),
                  "generic_power_meter": ("power_meter", "power")}
MQTT_DEVICES = {"access_control": ("access_panel", "access_control"),
                "frigate": ("camera", "cctv"),
                "paradox_pai_evo_panel": ("alarm_panel", "alarm"),
                "paradox_pai_evo_zone": ("alarm_panel", "alarm"),
                "paradox_pai_sp_panel": ("alarm_panel", "alarm"),
                "paradox_pai_sp_zone": ("alarm_panel", "alarm"),
                # Wireless door contacts and detectors belong to the intrusion alarm.
                "zigbee2mqtt": ("alarm_panel", "alarm")}
POLLS = 6  # more than any built-in rule's `for:`


class Flagged(NamedTuple):
    where: str             # protocol/profile: what flags it
    kind: str
    system: str
    check: str
    values: dict[str, float | str]


def _system(kind: str) -> str:
    return str(KINDS[kind]["system"])


def _snmp_kind(profile: SnmpProfile) -> str:
    if profile.kinds:
        return profile.kinds[0]
    implied = [rule.kind for rule in profile.match if rule.kind]
    if implied:
        return implied[0]
    return next(kind for kind, spec in snmp_kinds().items() if profile.name in spec.profiles
                and kind != "adhoc")


def _snmp_bad(spec: SnmpValue) -> float | str | None:
    for code in spec.degraded_when:
        value = value_of(spec, code)
        if value is not None:
            return value
    for text in spec.degraded_text:
        value = value_of(spec, text.encode())
        if value is not None:
            return value
    return None


def snmp_flagged() -> Iterator[Flagged]:
    for profile in snmp_profiles().values():
        kind = _snmp_kind(profile)
        where = f"snmp/{profile.name}"
        for spec in profile.scalars:
            bad = _snmp_bad(spec)
            if bad is not None:
                yield Flagged(f"{where}/{spec.name}", kind, _system(kind), "snmp",
                              {f"snmp.{spec.name}": bad})
        for table in profile.tables:
            row = {table.index_label: "1"}
            for column in table.columns:
                bad = _snmp_bad(column)
                if bad is not None:
                    name = labelled.join(f"snmp.{table.name}.{column.name}", row)
                    yield Flagged(f"{where}/{table.name}.{column.name}", kind,
                                  _system(kind), "snmp", {name: bad})
            if table.track_presence:
                yield Flagged(f"{where}/{table.name} gone", kind, _system(kind), "snmp",
                              {labelled.join(f"snmp.{table.name}.present", row): 0.0})
            if table.track_loss:
                yield Flagged(f"{where}/{table.name} lost", kind, _system(kind), "snmp",
                              {labelled.join(f"snmp.{table.name}.lost", row): 1.0})


def modbus_flagged() -> Iterator[Flagged]:
    for name in shipped_profiles():
        kind, system = MODBUS_DEVICES[name]
        for point in load_profile(name).points:
            where = f"modbus/{name}/{point.name}"
            for bit in point.bits:
                if bit.fault_when is not None:
                    yield Flagged(f"{where}.{bit.name}", kind, system, "modbus",
                                  {f"modbus.{bit.name}": float(bit.fault_when)})
            for fault in point.faults:
                values: dict[str, float | str]
                if isinstance(fault.equals, str):
                    code = next(c for c, label in point.enum.items() if label == fault.equals)
                    values = {f"modbus.{point.name}": float(code),
                              f"modbus.{point.name}_label": fault.equals}
                elif fault.equals is not None:
                    values = {f"modbus.{point.name}": fault.equals}
                elif fault.above is not None:
                    values = {f"modbus.{point.name}": fault.above + abs(fault.above) * 0.1 + 1}
                else:
                    assert fault.below is not None
                    values = {f"modbus.{point.name}": fault.below - abs(fault.below) * 0.1 - 1}
                yield Flagged(f"{where} {fault.reason}", kind, system, "modbus", values)


_NAMED = re.compile(r"{\+([a-z_][a-z0-9_]*)}")


def mqtt_flagged() -> Iterator[Flagged]:
    for name, profile in builtin_profiles().items():
        kind, system = MQTT_DEVICES[name]
        for topic in profile.topics:
            labels = {label: "x" for label in _NAMED.findall(topic.topic)}
            labels.update({label: "x" for label in topic.labels})
            for value in topic.values:
                bad: float | None = None
                if value.fault_if:
                    bad = value.fault_if[0]
                elif value.fault_below is not None:
                    bad = value.fault_below - 1
                if bad is not None:
                    yield Flagged(f"mqtt/{name}/{topic.topic}/{value.name}", kind, system,
                                  "mqtt", {labelled.join(value.name, labels): bad})


FLAGGED = [*snmp_flagged(), *modbus_flagged(), *mqtt_flagged()]


def test_every_protocol_flags_faults_and_all_are_collected() -> None:
    # A collector that found nothing would make the test below vacuous.
    protocols = {f.where.split("/", 1)[0] for f in FLAGGED}
    assert protocols == {"snmp", "modbus", "mqtt"}
    assert len(FLAGGED) > 150


@pytest.mark.parametrize("flagged", FLAGGED, ids=[f.where for f in FLAGGED])
def test_every_fault_a_shipped_profile_flags_fires_a_builtin_rule(flagged: Flagged) -> None:
    spec = device("dev-1", flagged.kind, flagged.system, {flagged.check: flagged.check})
    eng, clock = engine([spec])
    fired: list[str] = []
    for _ in range(POLLS):
        clock.advance(60)
        out = eng.observe(ob("dev-1", flagged.check, Status.DEGRADED, flagged.values), "up")
        fired += [t.rule for t in out if t.state is FaultState.FIRING]
    assert fired, f"no built-in rule reads {flagged.values} ({flagged.kind}/{flagged.system})"
