"""The one map from a check type to what runs it.  Unknown types fail at config load.

* Pull probes are coroutines the scheduler calls every interval
  (``async def probe_x(target, check) -> Observation``).
* Push sources (SNMP traps, ONVIF events, MQTT) are managers that receive data on
  their own and emit the same Observations; the daemon starts one manager per source
  type, gives it every (target, check) of that type, and updates it on reload.

Each may declare a pydantic model for its check ``params`` (validated at config load,
errors with file:line; the instance is passed as ``check.options``), and a push source
a model for its top-level ``sources.<type>`` section.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from elvwatch.probes.base import Check, Credential, Observation, Prober, Target
from elvwatch.probes.icmp import probe_icmp, start_icmp
from elvwatch.probes.modbus import ModbusOptions, probe_modbus
from elvwatch.probes.mqtt import MqttCheckOptions, MqttSettings, mqtt_source
from elvwatch.probes.onvif import OnvifOptions, probe_onvif
from elvwatch.probes.onvif_event_options import OnvifEventsOptions
from elvwatch.probes.onvif_event_source import onvif_events_source
from elvwatch.probes.rtsp import RtspOptions, probe_rtsp
from elvwatch.probes.sip import SipOptions, probe_sip
from elvwatch.probes.sip_registration import SipRegistrationOptions, probe_sip_registration
from elvwatch.probes.snmp import SnmpOptions, probe_snmp
from elvwatch.probes.snmp_session import close_engine as close_snmp_engine
from elvwatch.probes.snmp_trap import SnmpTrapOptions, SnmpTrapSettings, snmp_trap_source
from elvwatch.probes.tcp import probe_tcp

Emit = Callable[[Observation], None]
# Starts a check without a task of its own; the Observation goes to the callback when it
# is ready.  Returns False (having started nothing) when this check needs the prober.
Starter = Callable[[Target, Check, Emit], bool]


class PushManager(Protocol):
    async def start(self) -> None:
        """Connect/listen; must return promptly (work continues in tasks)."""

    async def update(self, targets: Sequence[tuple[Target, Check]]) -> None:
        """The checks of this type, after start and after every reload."""

    async def stop(self) -> None:
        """Close every connection and task."""


PushFactory = Callable[[BaseModel | None, Mapping[str, Credential], Emit], PushManager]


@dataclass(frozen=True, slots=True)
class PullProbe:
    prober: Prober
    options: type[BaseModel] | None = None
    # Closes what the probe keeps per event loop rather than in the daemon's Shared
    # (probes/sharing.py): called when the daemon stops.
    close: Callable[[], Awaitable[None]] | None = None
    # The scheduler's fast path for checks that are one request and one answer.
    start: Starter | None = None


@dataclass(frozen=True, slots=True)
class PushSource:
    factory: PushFactory
    settings: type[BaseModel] | None = None
    options: type[BaseModel] | None = None


PULL: dict[str, PullProbe] = {
    "icmp": PullProbe(probe_icmp, start=start_icmp),
    "tcp": PullProbe(probe_tcp),
    "modbus": PullProbe(probe_modbus, ModbusOptions),
    "sip": PullProbe(probe_sip, SipOptions),
    "sip_registration": PullProbe(probe_sip_registration, SipRegistrationOptions),
    "snmp": PullProbe(probe_snmp, SnmpOptions, close_snmp_engine),
    "onvif": PullProbe(probe_onvif, OnvifOptions),
    "rtsp": PullProbe(probe_rtsp, RtspOptions),
}

PUSH: dict[str, PushSource] = {
    "mqtt": PushSource(mqtt_source, MqttSettings, MqttCheckOptions),
    "snmp_trap": PushSource(snmp_trap_source, SnmpTrapSettings, SnmpTrapOptions),
    "onvif_events": PushSource(onvif_events_source, None, OnvifEventsOptions),
}


def known_types() -> list[str]:
    return sorted([*PULL, *PUSH])


def prober_for(check_type: str) -> Prober:
    """The prober for ``check_type``; KeyError names the known ones."""
    try:
        return PULL[check_type].prober
    except KeyError:
        raise KeyError(f"unknown check type {check_type!r} "
                       f"(known: {', '.join(known_types())})") from None


def starter_for(check_type: str) -> Starter | None:
    """The fast-path starter of ``check_type``, if its probe has one."""
    spec = PULL.get(check_type)
    return spec.start if spec else None


def options_model(check_type: str) -> type[BaseModel] | None:
    spec = PULL.get(check_type) or PUSH.get(check_type)
    return spec.options if spec else None
