"""The one map from a check type to what runs it.  Unknown types fail at config load.

* Pull probes are coroutines the scheduler calls every interval
  (``async def probe_x(target, check) -> Observation``).
* Push sources (SNMP traps, ONVIF events, MQTT) are managers that receive data on
  their own and emit the same Observations; the daemon starts one manager per source
  type, gives it every (target, check) of that type, and updates it on reload.

Each may declare a pydantic model for its check ``params`` (validated at config load,
errors with file:line; the instance is passed as ``check.options``), and a push source
a model for its top-level ``sources.<type>`` section.  Everything is named here by
where it lives and imported on first use, so loading a config imports the probe modules
of the check types it uses, nothing more.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from pydantic import BaseModel

from elvwatch.probes.base import Check, Credential, Observation, Prober, Target

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


def _resolve(where: str | None) -> Any:
    """``"module:name"`` → that object, the module imported on first use: a probe's
    library (pysnmp, pymodbus, zeep …) loads only when a check of its type is used, so
    the command line starts without them."""
    if where is None:
        return None
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(f"elvwatch.probes.{module}"), name)


class _Lazy:
    """What a registry entry names, each part resolved on first use and kept."""

    __slots__ = ("_resolved",)

    def __init__(self) -> None:
        self._resolved: dict[str, Any] = {}

    def _get(self, what: str, where: str | None) -> Any:
        if what not in self._resolved:
            self._resolved[what] = _resolve(where)
        return self._resolved[what]


class PullProbe(_Lazy):
    """A pull probe, named by where it lives (``"module:name"`` under probes/)."""

    __slots__ = ("_close", "_options", "_prober", "_start")

    def __init__(self, prober: str, options: str | None = None, close: str | None = None,
                 start: str | None = None) -> None:
        super().__init__()
        self._prober, self._options, self._close, self._start = prober, options, close, start

    @property
    def prober(self) -> Prober:
        return cast(Prober, self._get("prober", self._prober))

    @property
    def options(self) -> type[BaseModel] | None:
        return cast("type[BaseModel] | None", self._get("options", self._options))

    @property
    def close(self) -> Callable[[], Awaitable[None]] | None:
        """Closes what the probe keeps per event loop rather than in the daemon's Shared
        (probes/sharing.py): called when the daemon stops; None if its module never
        loaded (then it has nothing open)."""
        if self._close is None or not self._loaded():
            return None
        return cast("Callable[[], Awaitable[None]]", self._get("close", self._close))

    @property
    def start(self) -> Starter | None:
        """The scheduler's fast path for checks that are one request and one answer."""
        return cast("Starter | None", self._get("start", self._start))

    def _loaded(self) -> bool:
        module = self._prober.partition(":")[0]
        return f"elvwatch.probes.{module}" in sys.modules


class PushSource(_Lazy):
    """A push source, named like a pull probe: its manager's factory, and the models of
    its ``sources.<type>`` settings and of its checks' params."""

    __slots__ = ("_factory", "_options", "_settings")

    def __init__(self, factory: str, settings: str | None = None,
                 options: str | None = None) -> None:
        super().__init__()
        self._factory, self._settings, self._options = factory, settings, options

    @property
    def factory(self) -> PushFactory:
        return cast(PushFactory, self._get("factory", self._factory))

    @property
    def settings(self) -> type[BaseModel] | None:
        return cast("type[BaseModel] | None", self._get("settings", self._settings))

    @property
    def options(self) -> type[BaseModel] | None:
        return cast("type[BaseModel] | None", self._get("options", self._options))


PULL: dict[str, PullProbe] = {
    "icmp": PullProbe("icmp:probe_icmp", start="icmp:start_icmp"),
    "tcp": PullProbe("tcp:probe_tcp"),
    "modbus": PullProbe("modbus:probe_modbus", "modbus_options:ModbusOptions"),
    "sip": PullProbe("sip:probe_sip", "sip:SipOptions"),
    "sip_registration": PullProbe("sip_registration:probe_sip_registration",
                                  "sip_registration:SipRegistrationOptions"),
    "snmp": PullProbe("snmp:probe_snmp", "snmp_options:SnmpOptions",
                      "snmp_session:close_engine"),
    "onvif": PullProbe("onvif:probe_onvif", "onvif_options:OnvifOptions"),
    "rtsp": PullProbe("rtsp:probe_rtsp", "rtsp:RtspOptions"),
}

PUSH: dict[str, PushSource] = {
    "mqtt": PushSource("mqtt:mqtt_source", "mqtt_settings:MqttSettings",
                       "mqtt_settings:MqttCheckOptions"),
    "snmp_trap": PushSource("snmp_trap:snmp_trap_source", "snmp_trap_options:SnmpTrapSettings",
                            "snmp_trap_options:SnmpTrapOptions"),
    "onvif_events": PushSource("onvif_event_source:onvif_events_source", None,
                               "onvif_event_options:OnvifEventsOptions"),
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
